"""Opening the PostgreSQL-backed instance: settings from dagster.yaml, and a clear error when the
server is down."""

import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest
from dagster._core.storage.runs import SqliteRunStorage
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from deploy.instance import (
    InstanceConfigError,
    PostgresSettings,
    PostgresUnavailableError,
    create_database,
    open_instance,
    postgres_settings,
)
from upsert_pipeline_tests.postgres import (
    PROJECT_DIR,
    database_exists,
    drop_database,
    fresh_database,
    postgres_env,
    project_dagster_home,
    unique_database_name,
)
from upsert_pipeline_tests.processes import free_port


@pytest.fixture
def home(tmp_path):
    return project_dagster_home(tmp_path / "dagster_home")


def test_settings_come_from_the_variables_dagster_yaml_names(home):
    environ = {**postgres_env("instance_db", port=6543), "DAGSTER_POSTGRES_PASSWORD": "s3cret"}
    settings = postgres_settings(home, environ=environ)
    assert settings == PostgresSettings(
        host="127.0.0.1", port=6543, user="postgres", password="s3cret", database="instance_db"
    )
    assert settings.address == "127.0.0.1:6543"


def test_an_unset_variable_is_named(home):
    environ = postgres_env("instance_db")
    del environ["DAGSTER_POSTGRES_HOST"]
    with pytest.raises(InstanceConfigError, match=r"hostname from \$DAGSTER_POSTGRES_HOST"):
        postgres_settings(home, environ=environ)


def test_postgres_down_names_host_and_port_without_driver_internals(home, monkeypatch):
    port = free_port()  # nothing listens there
    for name, value in postgres_env("upsert_pipeline", port=port).items():
        monkeypatch.setenv(name, value)

    with pytest.raises(PostgresUnavailableError) as raised:
        open_instance(home)

    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "Connection refused" in message
    assert "'upsert_pipeline'" in message
    assert "psycopg2" not in message and "\n" not in message
    # Raised from None: no chained driver exception to print beneath it.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_postgres_down_on_the_command_line_is_one_line_and_exit_status_1(home):
    port = free_port()
    env = {**os.environ, **postgres_env("upsert_pipeline", port=port), "DAGSTER_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "deploy.instance", "check"],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot connect to PostgreSQL at 127.0.0.1:{port} (database 'upsert_pipeline', "
        "user 'postgres'): Connection refused"
    ]
    assert "Traceback" not in result.stderr


def test_a_missing_database_is_named_and_can_be_created(home):
    missing = unique_database_name()
    settings = postgres_settings(home, environ=postgres_env(missing))
    try:
        with pytest.raises(PostgresUnavailableError, match=f'database "{missing}" does not exist'):
            settings.connect()
        assert create_database(settings) is True
        assert database_exists(missing)
        assert create_database(settings) is False
        settings.connect().close()
    finally:
        drop_database(missing)


def test_open_instance_builds_the_postgres_instance_of_dagster_yaml(home, monkeypatch):
    with fresh_database() as database:
        for name, value in postgres_env(database).items():
            monkeypatch.setenv(name, value)
        with open_instance(home) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert instance.get_runs() == []


def test_the_dev_instance_is_quiet_and_queues_runs(tmp_path):
    # What `make dev` copies to .dagster_home/dagster.yaml.
    home = tmp_path / "dev_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / "deploy" / "dev_instance.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_settings("telemetry") == {"enabled": False}
        assert instance.get_settings("nux") == {"enabled": False}
        assert isinstance(instance.run_storage, SqliteRunStorage)  # Dagster's default storage
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, dg.QueuedRunCoordinator)
        assert coordinator.get_run_queue_config().max_concurrent_runs == 4
