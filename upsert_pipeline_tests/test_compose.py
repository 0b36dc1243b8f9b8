"""docker-compose.yml as Debian's ``docker-compose config`` resolves it (no Docker engine needed):
its services, commands, health-check dependencies, volumes and loopback-only ports."""

import os
import shutil
import subprocess

import pytest
import yaml

from upsert_pipeline.resources import LAKE_URI_ENV, LANDING_URI_ENV
from upsert_pipeline_tests.deployment import (
    CODE_LOCATION,
    COMPOSE_FILE,
    DAEMON,
    PROJECT_DIR,
    WEBSERVER,
)

DAGSTER_SERVICES = (CODE_LOCATION, WEBSERVER, DAEMON)
WORKSPACE = "/opt/dagster/dagster_home/workspace.yaml"


def _compose_config(env_file):
    """``docker-compose config`` of the project's file with ``env_file`` as its ``.env``."""
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is not installed (.ci/run installs Debian's package)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "WEBSERVER_"))}
    return subprocess.run(
        [docker_compose, "--env-file", str(env_file), "--file", str(COMPOSE_FILE), "config"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config():
    result = _compose_config(PROJECT_DIR / ".env.example")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _env_references(path):
    """Every ``{env: NAME}`` a Dagster YAML file reads."""
    names = []

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"env"}:
                names.append(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(path.read_text()))
    return names


def test_the_services_of_the_reference_deployment(config):
    services = config["services"]
    assert set(services) == {"postgres", "sample-data", *DAGSTER_SERVICES}
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    # One image, built from the project's Dockerfile, for every Dagster service.
    for name in ("sample-data", *DAGSTER_SERVICES):
        assert services[name]["image"] == "upsert-pipeline:latest", name
        assert services[name]["build"]["context"] == str(PROJECT_DIR), name


def test_the_commands_serve_the_code_location_over_grpc_to_webserver_and_daemon(config):
    services = config["services"]
    code_server = services[CODE_LOCATION]["command"]
    assert code_server[:3] == ["dagster", "code-server", "start"]
    assert code_server[code_server.index("--module-name") + 1] == "upsert_pipeline.definitions"
    assert code_server[code_server.index("--host") + 1] == "0.0.0.0"
    port = code_server[code_server.index("--port") + 1]

    assert services[WEBSERVER]["command"][0] == "dagster-webserver"
    assert services[DAEMON]["command"][:2] == ["dagster-daemon", "run"]
    for name in (WEBSERVER, DAEMON):
        command = services[name]["command"]
        assert command[command.index("--workspace") + 1] == WORKSPACE
        environment = services[name]["environment"]
        # workspace.yaml reads the code server's address from these.
        assert environment["UPSERT_PIPELINE_CODE_SERVER_HOST"] == CODE_LOCATION
        assert environment["UPSERT_PIPELINE_CODE_SERVER_PORT"] == port

    health = services[CODE_LOCATION]["healthcheck"]["test"]
    assert health[:4] == ["CMD", "dagster", "api", "grpc-health-check"]
    assert health[health.index("--port") + 1] == port


def test_every_dagster_service_waits_for_a_healthy_postgres(config):
    services = config["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in DAGSTER_SERVICES:
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    for name in (WEBSERVER, DAEMON):
        assert services[name]["depends_on"][CODE_LOCATION] == {"condition": "service_healthy"}


def test_named_volumes_hold_postgres_the_lake_and_the_landing_where_runs_execute(config):
    services = config["services"]
    assert set(config["volumes"]) >= {"postgres-data", "lake", "landing"}

    def mounts(name):
        return {volume.split(":")[1]: volume.split(":")[0] for volume in services[name]["volumes"]}

    assert mounts("postgres")["/var/lib/postgresql/data"] == "postgres-data"
    # Runs execute under the code server (DefaultRunLauncher): the lake is mounted there, at the
    # path the lake resource reads.
    code_location = services[CODE_LOCATION]
    assert mounts(CODE_LOCATION)[code_location["environment"][LAKE_URI_ENV]] == "lake"
    assert mounts(CODE_LOCATION)[code_location["environment"][LANDING_URI_ENV]] == "landing"
    assert mounts("sample-data")["/opt/dagster/landing"] == "landing"


def test_ports_are_published_on_loopback_only(config):
    published = [
        (name, port)
        for name, service in config["services"].items()
        for port in service.get("ports", [])
    ]
    assert published == [(WEBSERVER, "127.0.0.1:3000:3000/tcp")]


def test_every_variable_the_instance_and_workspace_read_is_set_for_each_dagster_service(config):
    names = _env_references(PROJECT_DIR / "dagster.yaml") + _env_references(
        PROJECT_DIR / "workspace.yaml"
    )
    assert {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PASSWORD"} <= set(names)
    for name in DAGSTER_SERVICES:
        environment = config["services"][name]["environment"]
        assert set(names) <= set(environment), name
        assert environment["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert (
            environment["DAGSTER_POSTGRES_PASSWORD"]
            == (config["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"])
        )


def test_secrets_come_from_the_env_file_and_none_is_committed(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("POSTGRES_USER=u\nPOSTGRES_PASSWORD=from-the-env-file\nPOSTGRES_DB=d\n")
    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "from-the-env-file"
    assert services[DAEMON]["environment"]["DAGSTER_POSTGRES_PASSWORD"] == "from-the-env-file"

    env_file.write_text("POSTGRES_USER=u\nPOSTGRES_DB=d\n")
    missing = _compose_config(env_file)
    assert missing.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in missing.stderr

    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    for service in raw["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert str(value).startswith("${POSTGRES_PASSWORD:?"), key
    ignored = (PROJECT_DIR / ".gitignore").read_text().splitlines()
    assert ".env" in ignored, ".env must be git-ignored"
