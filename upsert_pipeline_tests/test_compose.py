"""docker-compose.yml as Debian's ``docker-compose config`` resolves it (no Docker engine needed):
its services, commands, health-check dependencies, the object store holding the lake and landing
zone, volumes and loopback-only ports."""

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from urllib.parse import urlsplit

import pytest
import yaml

from upsert_pipeline.delta.storage import S3_VARIABLES
from upsert_pipeline.resources import LAKE_URI_ENV, LANDING_URI_ENV
from upsert_pipeline_tests.deployment import (
    CODE_LOCATION,
    COMPOSE_FILE,
    CREATE_BUCKETS,
    DAEMON,
    MIGRATE_INSTANCE,
    OBJECT_STORE,
    PROJECT_DIR,
    SAMPLE_DATA,
    WEBSERVER,
)
from upsert_pipeline_tests.docker_engine import ENV_FILE_PREFIXES

DAGSTER_SERVICES = (CODE_LOCATION, WEBSERVER, DAEMON)
# Every service that reads or writes the lake or the landing zone.
S3_CLIENTS = (SAMPLE_DATA, *DAGSTER_SERVICES)
SECRET_REFERENCES = ("${POSTGRES_PASSWORD:?", "${MINIO_ROOT_PASSWORD:?")
WORKSPACE = "/opt/dagster/dagster_home/workspace.yaml"


def _compose_config(env_file):
    """``docker-compose config`` of the project's file with ``env_file`` as its ``.env``."""
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is not installed (.ci/run installs Debian's package)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_FILE_PREFIXES)}
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
    infrastructure = {"postgres", OBJECT_STORE, CREATE_BUCKETS}
    assert set(services) == {*infrastructure, SAMPLE_DATA, MIGRATE_INSTANCE, *DAGSTER_SERVICES}
    # Every image pinned to an exact release: PostgreSQL to a minor release and Debian release,
    # MinIO's from quay.io (its Docker Hub repositories are gone) to a RELEASE tag.
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", services["postgres"]["image"])
    assert services[OBJECT_STORE]["image"].startswith("quay.io/minio/minio:RELEASE.")
    assert services[CREATE_BUCKETS]["image"].startswith("quay.io/minio/mc:RELEASE.")
    assert not [s["image"] for s in services.values() if s["image"].startswith("minio/")]
    # One image, built from the project's Dockerfile, for every Dagster service.
    for name in (SAMPLE_DATA, MIGRATE_INSTANCE, *DAGSTER_SERVICES):
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


def test_the_instance_tables_are_made_once_before_any_dagster_service_starts(config):
    services = config["services"]
    migrate = services[MIGRATE_INSTANCE]
    assert migrate["command"] == ["dagster", "instance", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert migrate["environment"] == services[CODE_LOCATION]["environment"]
    for name in DAGSTER_SERVICES:
        assert services[name]["depends_on"][MIGRATE_INSTANCE] == {
            "condition": "service_completed_successfully"
        }, name


def test_the_lake_and_the_landing_live_on_the_object_store_and_no_dagster_volume_holds_them(
    config,
):
    services = config["services"]
    assert set(config["volumes"]) == {"postgres-data", "minio-data", "dagster-storage"}

    def mounts(name):
        return {
            volume.split(":")[1]: volume.split(":")[0]
            for volume in services[name].get("volumes", [])
        }

    assert mounts("postgres")["/var/lib/postgresql/data"] == "postgres-data"
    assert mounts(OBJECT_STORE) == {"/data": "minio-data"}
    for name in S3_CLIENTS:
        # Only the runs' captured logs (and, to launch and stop run containers, the Docker
        # socket); nothing of the lake or the landing zone.
        assert set(mounts(name).values()) <= {"dagster-storage", "/var/run/docker.sock"}, name
        environment = services[name]["environment"]
        assert urlsplit(environment[LAKE_URI_ENV]).scheme == "s3", name
        assert urlsplit(environment[LANDING_URI_ENV]).scheme == "s3", name


def test_a_one_shot_service_creates_the_buckets_of_the_lake_and_the_landing_zone(config):
    services = config["services"]
    store = services[OBJECT_STORE]
    assert store["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert store["command"][:2] == ["server", "/data"]

    create = services[CREATE_BUCKETS]
    assert create["depends_on"] == {OBJECT_STORE: {"condition": "service_healthy"}}
    assert create["restart"] == "no"
    script = " ".join([*create["entrypoint"], *create["command"]])
    words = shlex.split(script.replace("$$", "$"))
    mb = words.index("mb")
    created = {word.removeprefix("local/") for word in words[mb + 1 :] if word.startswith("local/")}
    assert "--ignore-existing" in words[mb:]  # a second `up` does not fail
    # `mc alias set local <endpoint> ...` points at the store service's S3 port.
    alias = words.index("alias")
    assert urlsplit(words[alias + 3]).hostname == OBJECT_STORE
    environment = services[CODE_LOCATION]["environment"]
    for uri in (environment[LAKE_URI_ENV], environment[LANDING_URI_ENV]):
        assert urlsplit(uri).netloc in created, uri

    # The code location (whose children run every run) starts after the buckets and the
    # sample data exist; the sample data after the buckets.
    depends = services[CODE_LOCATION]["depends_on"]
    assert depends[CREATE_BUCKETS] == {"condition": "service_completed_successfully"}
    assert depends[SAMPLE_DATA] == {"condition": "service_completed_successfully"}
    assert services[SAMPLE_DATA]["depends_on"] == {
        CREATE_BUCKETS: {"condition": "service_completed_successfully"}
    }
    command = services[SAMPLE_DATA]["command"]
    assert command[:3] == ["python", "-m", "upsert_pipeline.sample_data"]
    assert "--missing-only" in command  # keeps re-deliveries across restarts


def test_every_service_that_reaches_the_lake_gets_the_standard_s3_variables(config):
    services = config["services"]
    store = services[OBJECT_STORE]["environment"]
    for name in S3_CLIENTS:
        environment = services[name]["environment"]
        assert set(S3_VARIABLES) - {"AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"} <= set(
            environment
        ), name
        endpoint = urlsplit(environment["AWS_ENDPOINT_URL"])
        assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", OBJECT_STORE, 9000)
        assert environment["AWS_ALLOW_HTTP"] == "true"  # delta-rs refuses plain HTTP without it
        assert environment["AWS_ACCESS_KEY_ID"] == store["MINIO_ROOT_USER"], name
        assert environment["AWS_SECRET_ACCESS_KEY"] == store["MINIO_ROOT_PASSWORD"], name


def test_ports_are_published_on_loopback_only(config):
    published = [
        (name, port)
        for name, service in config["services"].items()
        for port in service.get("ports", [])
    ]
    assert sorted(published) == [
        (WEBSERVER, "127.0.0.1:3000:3000/tcp"),
        (OBJECT_STORE, "127.0.0.1:9000:9000/tcp"),
        (OBJECT_STORE, "127.0.0.1:9001:9001/tcp"),
    ]


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
    minio = "MINIO_ROOT_USER=m\nMINIO_ROOT_PASSWORD=s3-from-the-env-file\n"
    postgres = "POSTGRES_USER=u\nPOSTGRES_PASSWORD=from-the-env-file\nPOSTGRES_DB=d\n"
    env_file.write_text(postgres + minio)
    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "from-the-env-file"
    assert services[DAEMON]["environment"]["DAGSTER_POSTGRES_PASSWORD"] == "from-the-env-file"
    assert services[OBJECT_STORE]["environment"]["MINIO_ROOT_PASSWORD"] == "s3-from-the-env-file"
    assert services[CODE_LOCATION]["environment"]["AWS_SECRET_ACCESS_KEY"] == (
        "s3-from-the-env-file"
    )

    env_file.write_text("POSTGRES_USER=u\nPOSTGRES_DB=d\n" + minio)
    missing = _compose_config(env_file)
    assert missing.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in missing.stderr
    env_file.write_text(postgres + "MINIO_ROOT_USER=m\n")
    missing = _compose_config(env_file)
    assert missing.returncode != 0
    assert "set MINIO_ROOT_PASSWORD in .env" in missing.stderr

    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    anchors = [raw["x-dagster-environment"], raw["x-minio-credentials"]]
    environments = [service.get("environment") or {} for service in raw["services"].values()]
    for environment in [*anchors, *environments]:
        if not isinstance(environment, dict):
            continue
        for key, value in environment.items():
            if "PASSWORD" in key or "SECRET" in key:
                assert str(value).startswith(SECRET_REFERENCES), key
    ignored = (PROJECT_DIR / ".gitignore").read_text().splitlines()
    assert ".env" in ignored, ".env must be git-ignored"


def test_runs_get_containers_of_their_own_on_the_stack_network_with_limits_from_env(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(
        (PROJECT_DIR / ".env.example").read_text()
        + "RUN_MEMORY_LIMIT=3g\nRUN_NANO_CPUS=1500000000\nUPSERT_PIPELINE_STACK=stack-a\n"
    )
    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    command = services[CODE_LOCATION]["command"]
    # The name the dg project gives the location: no name-mismatch warning on load.
    with (PROJECT_DIR / "pyproject.toml").open("rb") as pyproject:
        dg_name = tomllib.load(pyproject)["tool"]["dg"]["project"]["code_location_name"]
    assert command[command.index("--location-name") + 1] == dg_name
    workspace = yaml.safe_load((PROJECT_DIR / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["location_name"] == dg_name
    # The runs' image is the services' image; their container settings come from .env.
    assert command[command.index("--container-image") + 1] == services[CODE_LOCATION]["image"]
    context = json.loads(command[command.index("--container-context") + 1])["docker"]
    assert context["networks"] == [config["networks"]["default"]["name"]] == ["stack-a"]
    kwargs = context["container_kwargs"]
    assert (kwargs["mem_limit"], kwargs["nano_cpus"]) == ("3g", 1500000000)
    logs_volume = config["volumes"]["dagster-storage"]["name"]
    assert kwargs["volumes"] == [f"{logs_volume}:/opt/dagster/dagster_home/storage"]
    # The daemon (which launches) and the webserver (which terminates) reach the engine.
    instance = yaml.safe_load((PROJECT_DIR / "dagster.yaml").read_text())
    assert instance["run_launcher"]["class"] == "DockerRunLauncher"
    for name in (DAEMON, WEBSERVER):
        assert any(":/var/run/docker.sock" in v for v in services[name]["volumes"]), name
    # Every variable a run needs is passed on to its container.
    passed = set(instance["run_launcher"]["config"]["env_vars"])
    dagster_yaml_vars = set(_env_references(PROJECT_DIR / "dagster.yaml"))
    assert dagster_yaml_vars | set(S3_VARIABLES) - {"AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"} <= (
        passed | {"AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"}
    )
    assert {LAKE_URI_ENV, LANDING_URI_ENV} <= passed
    assert passed <= set(services[DAEMON]["environment"])


def test_every_one_shot_retries_what_it_waits_for_so_a_restart_exits_0(config):
    services = config["services"]
    for name in (CREATE_BUCKETS, MIGRATE_INSTANCE, SAMPLE_DATA):
        entrypoint = services[name]["entrypoint"]
        assert entrypoint[:2] == ["/bin/sh", "-c"] and '"$$@"' in entrypoint[2], name
        assert services[name]["restart"] == "no"
