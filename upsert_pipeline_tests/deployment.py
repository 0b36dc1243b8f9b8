"""The deployment's topology without Docker: the commands docker-compose.yml gives the code
location, the webserver and the daemon, run as local processes on free loopback ports.

The commands are read from docker-compose.yml itself; only the values of ``--host``, ``--port``
and ``--workspace`` change (loopback, free ports, a temporary DAGSTER_HOME), so the topology the
tests run is the one the compose file deploys. Every process starts in its own process group, and
leaving ``running_topology`` ends each group (run workers included) and waits for it to be gone.
"""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from upsert_pipeline_tests.processes import free_port, stop_group
from upsert_pipeline_tests.webserver import LOCATION_NAME, PROJECT_DIR, graphql, location_loaded

COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
CODE_LOCATION = "code-location"
WEBSERVER = "dagster-webserver"
DAEMON = "dagster-daemon"
OBJECT_STORE = "minio"
CREATE_BUCKETS = "create-buckets"
SAMPLE_DATA = "sample-data"
MIGRATE_INSTANCE = "migrate-instance"
REPOSITORY_NAME = "__repository__"
ASSET_JOB = "__ASSET_JOB"
READY_TIMEOUT_S = 90.0
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def compose_services() -> dict[str, dict[str, Any]]:
    """The services of docker-compose.yml, YAML anchors and merge keys resolved."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def with_option(command: Sequence[str], option: str, value: str) -> list[str]:
    """``command`` with the value that follows ``option`` replaced; the option must be there."""
    if option not in command:
        raise ValueError(f"{option} not in {list(command)}")
    index = list(command).index(option) + 1
    return [*command[:index], value, *command[index + 1 :]]


def without_option(command: Sequence[str], option: str) -> list[str]:
    """``command`` without ``option`` and the value that follows it; the option must be there."""
    if option not in command:
        raise ValueError(f"{option} not in {list(command)}")
    index = list(command).index(option)
    return [*command[:index], *command[index + 2 :]]


def _local(command: Sequence[str]) -> list[str]:
    """The command with its executable taken from this virtualenv (what the image's PATH does)."""
    executable = Path(sys.executable).with_name(command[0])
    return [str(executable) if executable.exists() else command[0], *command[1:]]


def migrate_instance(*, dagster_home: Path, env: Mapping[str, str]) -> None:
    """Runs the one-shot ``migrate-instance`` service's command, as compose does before any
    Dagster service starts: it creates the instance's tables in the (empty) database.

    Raises:
        RuntimeError: The command failed; its output is in the message.
    """
    command = compose_services()[MIGRATE_INSTANCE]["command"]
    result = subprocess.run(
        _local(command),
        cwd=dagster_home,
        env={**os.environ, **env, "DAGSTER_HOME": str(dagster_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


@dataclass
class Topology:
    """The running processes and where to reach them."""

    base_url: str
    code_server_port: int
    logs: dict[str, Path]
    processes: dict[str, "subprocess.Popen[bytes]"] = field(default_factory=dict)

    @property
    def process_groups(self) -> list[int]:
        return [process.pid for process in self.processes.values()]

    def log_tail(self, characters: int = 4000) -> str:
        return "\n".join(
            f"--- {name}:\n{path.read_text(errors='replace')[-characters:]}"
            for name, path in self.logs.items()
            if path.exists()
        )


def _wait(ready: Any, what: str, topology: Topology) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        for name, process in topology.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{topology.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {READY_TIMEOUT_S}s:\n{topology.log_tail()}")
        time.sleep(0.25)


@contextlib.contextmanager
def running_topology(
    *, dagster_home: Path, env: Mapping[str, str], log_dir: Path
) -> Iterator[Topology]:
    """Migrates the instance, runs the code server, then the webserver and the daemon, until the
    block exits.

    Args:
        dagster_home: The DAGSTER_HOME of every process: the project's ``dagster.yaml`` and
            ``workspace.yaml`` (see ``upsert_pipeline_tests.postgres.project_dagster_home``).
        env: The PostgreSQL, lake and landing variables; the code server's address is added.
        log_dir: Where each process's output goes.

    Raises:
        ValueError: A variable compose gives a Dagster service is missing here.
    """
    services = compose_services()
    code_port, web_port = free_port(), free_port()
    environment = {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(dagster_home),
        "UPSERT_PIPELINE_CODE_SERVER_HOST": "127.0.0.1",
        "UPSERT_PIPELINE_CODE_SERVER_PORT": str(code_port),
    }
    for name in (CODE_LOCATION, WEBSERVER, DAEMON):
        missing = set(services[name]["environment"]) - set(environment)
        if missing:
            raise ValueError(f"{name} gets {sorted(missing)} in compose but not here")

    workspace = str(dagster_home / "workspace.yaml")
    code_server = with_option(services[CODE_LOCATION]["command"], "--host", "127.0.0.1")
    code_server = with_option(code_server, "--port", str(code_port))
    # What the DockerRunLauncher makes of each run's container (its value holds compose's
    # ${...} defaults); the runs here are children of the local code server instead.
    for option in ("--container-image", "--container-context"):
        code_server = without_option(code_server, option)
    # The compose health check ("CMD", ...) of the code location, against the local port.
    health_check = with_option(
        services[CODE_LOCATION]["healthcheck"]["test"][1:], "--port", str(code_port)
    )
    webserver = with_option(services[WEBSERVER]["command"], "--host", "127.0.0.1")
    webserver = with_option(webserver, "--port", str(web_port))
    webserver = with_option(webserver, "--workspace", workspace)
    daemon = with_option(services[DAEMON]["command"], "--workspace", workspace)

    log_dir.mkdir(parents=True, exist_ok=True)
    topology = Topology(
        base_url=f"http://127.0.0.1:{web_port}",
        code_server_port=code_port,
        logs={name: log_dir / f"{name}.log" for name in (CODE_LOCATION, WEBSERVER, DAEMON)},
    )

    def start(name: str, command: Sequence[str]) -> None:
        with topology.logs[name].open("wb") as log:
            topology.processes[name] = subprocess.Popen(
                _local(command),
                cwd=dagster_home,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def code_server_healthy() -> bool:
        result = subprocess.run(
            _local(health_check), env=environment, capture_output=True, timeout=60
        )
        return result.returncode == 0

    migrate_instance(dagster_home=dagster_home, env=environment)
    try:
        start(CODE_LOCATION, code_server)
        _wait(code_server_healthy, "code server (compose health check)", topology)
        start(WEBSERVER, webserver)
        start(DAEMON, daemon)
        _wait(lambda: location_loaded(topology.base_url), "webserver", topology)
        yield topology
    finally:
        for process in reversed(list(topology.processes.values())):
            stop_group(process)


LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
}
"""


def launch_partition_run(
    base_url: str, asset: str, partition: str, *, run_config: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """Launches a run of one asset's partition (its checks included) the way the UI does: the
    implicit asset job, the asset selected, the partition as the ``dagster/partition`` tag.

    Returns:
        The run id and the status the launch reported.
    """
    params = {
        "selector": {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY_NAME,
            "jobName": ASSET_JOB,
            "assetSelection": [{"path": [asset]}],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
        "runConfigData": dict(run_config or {}),
    }
    result = graphql(base_url, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun failed: {result}")
    return result["run"]["runId"], result["run"]["status"]


def wait_for_run(topology: Topology, run_id: str, timeout_s: float = 120.0) -> str:
    """Polls the run's status through the webserver until it finishes; returns that status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = graphql(topology.base_url, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in FINISHED:
            return str(status)
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status}:\n{topology.log_tail()}")
        time.sleep(0.5)


LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

BACKFILL_RUNS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status runs(limit: 100) { runId status } }
  }
}
"""


def launch_backfill(base_url: str, asset: str, partitions: Sequence[str]) -> str:
    """Launches a backfill of ``partitions`` of one asset as the UI's Materialize dialog does
    (``launchPartitionBackfill`` with the asset and the partition keys); returns its id."""
    params = {
        "partitionNames": list(partitions),
        "assetSelection": [{"path": [asset]}],
        "fromFailure": False,
        "tags": [],
    }
    result = graphql(base_url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill failed: {result}")
    return str(result["backfillId"])


def wait_for_backfill_runs(
    topology: Topology, backfill_id: str, timeout_s: float = 150.0
) -> dict[str, str]:
    """Polls until the backfill has runs and every one finished (the daemon submits them on its
    next tick, within 30 s); returns each run's status by run id."""
    deadline = time.monotonic() + timeout_s
    while True:
        backfill = graphql(topology.base_url, BACKFILL_RUNS, {"id": backfill_id})
        runs = backfill["partitionBackfillOrError"]["runs"]
        if runs and all(run["status"] in FINISHED for run in runs):
            return {run["runId"]: str(run["status"]) for run in runs}
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id}: {runs}\n{topology.log_tail()}")
        time.sleep(0.5)
