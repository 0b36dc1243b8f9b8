"""docker-compose.yml on a real Docker engine, as a user runs it.

Debian's ``dockerd`` is started when none runs (and stopped again); every image the compose file
and the Dockerfile name is used as is, pulled, or (no registry reachable) replaced by a stand-in
built under that exact name (``docker_standins``); the project's image is built with BuildKit;
then Debian's docker-compose 1.29 brings the unchanged compose file up and the test drives it
through the webserver's GraphQL API as the UI does: one partition of orders, then a 3-day
backfill. Each run must have run in a container of its own, the counts on the materializations
must equal the rows in the Delta table on the object store, and no service may log a warning.
``docker-compose restart`` and ``down`` + ``up`` must keep the runs, their event logs and the
lake, and every one-shot service must exit 0 each time.
"""

import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from upsert_pipeline_tests.deployment import (
    CODE_LOCATION,
    CREATE_BUCKETS,
    DAEMON,
    MIGRATE_INSTANCE,
    SAMPLE_DATA,
    WEBSERVER,
    launch_backfill,
    launch_partition_run,
    wait_for_backfill_runs,
    wait_for_run,
)
from upsert_pipeline_tests.docker_engine import (
    APP_IMAGE,
    ComposeStack,
    build_app_image,
    compose_stack,
    docker_engine,
)
from upsert_pipeline_tests.docker_standins import dockerfile_images, ensure_images
from upsert_pipeline_tests.webserver import graphql, location_loaded

ONE_SHOTS = (CREATE_BUCKETS, MIGRATE_INSTANCE, SAMPLE_DATA)
LONG_RUNNING = ("postgres", "minio", CODE_LOCATION, WEBSERVER, DAEMON)
PARTITION = "2026-11-02"
BACKFILL_DAYS = ("2026-11-03", "2026-11-04", "2026-11-05")
IN_FLIGHT_PARTITION = "2026-11-06"
READY_TIMEOUT_S = 180.0
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
WARNING_MARKERS = (" - WARNING - ", "Warning:", "WARNING:", "[WARN", "level=warning")

MATERIALIZATIONS = """
query Materializations($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(limit: 100) {
        runId
        partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""

RUNS = """
{
  runsOrError(limit: 100) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""

EVENT_COUNT = """
query Events($runId: ID!) {
  logsForRun(runId: $runId, limit: 10000) {
    __typename
    ... on EventConnection { events { __typename } }
  }
}
"""


class Stack:
    """What ``wait_for_run`` / ``wait_for_backfill_runs`` need: the URL and a log tail."""

    def __init__(self, stack: ComposeStack) -> None:
        self.stack = stack
        self.base_url = stack.webserver_url

    def log_tail(self, characters: int = 6000) -> str:
        return self.stack.logs()[-characters:]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[ComposeStack]:
    work = tmp_path_factory.mktemp("compose-engine")
    with docker_engine(work / "dockerd.log"), compose_stack(work) as stack:
        # The Dockerfile's bases first (the MinIO stand-ins build on them), then the compose
        # file's own images as it names them.
        named = [s["image"] for s in stack.config()["services"].values()]
        ensure_images([*dockerfile_images(), *sorted(set(named) - {APP_IMAGE})])
        build_app_image()
        started = time.monotonic()
        up(stack)
        stack.up_seconds = time.monotonic() - started
        yield stack


def up(stack: ComposeStack) -> None:
    """``docker-compose up -d`` (it returns once each dependency condition was met), then wait
    until the long-running services are healthy and the webserver has the code location."""
    stack.compose("up", "--detach", "--no-build")
    wait_until_ready(stack)


def wait_until_ready(stack: ComposeStack) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        states = {name: stack.container(name)["State"] for name in LONG_RUNNING + ONE_SHOTS}
        healthy = all(
            states[name]["Status"] == "running"
            and states[name].get("Health", {}).get("Status", "healthy") == "healthy"
            for name in LONG_RUNNING
        )
        one_shots_done = all(states[name]["Status"] == "exited" for name in ONE_SHOTS)
        if healthy and one_shots_done and location_loaded(stack.webserver_url):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"stack not ready: {states}\n{stack.logs()[-6000:]}")
        time.sleep(1)


def one_shot_exit_codes(stack: ComposeStack) -> dict[str, int]:
    return {name: stack.container(name)["State"]["ExitCode"] for name in ONE_SHOTS}


def warnings_in(logs: str) -> list[str]:
    """The lines of ``logs`` that warn; Dagster colours its levels, so colours are dropped first."""
    plain = ANSI_ESCAPE.sub("", logs)
    return [line for line in plain.splitlines() if any(m in line for m in WARNING_MARKERS)]


def test_the_warning_check_sees_dagsters_coloured_warnings():
    # The line a code location under another name than [tool.dg.project]'s logs on load.
    line = (
        "code-location_1 | \x1b[32m2026-12-05 17:27:38 +0000\x1b[0m - dagster.components.core."
        "component_tree - \x1b[34mWARNING\x1b[0m - The code location name 'a' configured on this"
    )
    assert len(warnings_in(f"{line}\nother line\n")) == 1


def materializations(stack: ComposeStack) -> list[dict[str, Any]]:
    asset = graphql(stack.webserver_url, MATERIALIZATIONS, {"key": {"path": ["orders"]}})
    return [
        {
            "run_id": record["runId"],
            "partition": record["partition"],
            **{
                entry["label"]: entry["intValue"]
                for entry in record["metadataEntries"]
                if "intValue" in entry
            },
        }
        for record in asset["assetOrError"]["assetMaterializations"]
    ]


def runs(stack: ComposeStack) -> dict[str, dict[str, Any]]:
    results = graphql(stack.webserver_url, RUNS)["runsOrError"]["results"]
    return {
        run["runId"]: {"status": run["status"], **{t["key"]: t["value"] for t in run["tags"]}}
        for run in results
    }


def event_counts(stack: ComposeStack, run_ids: Sequence[str]) -> dict[str, int]:
    return {
        run_id: len(
            graphql(stack.webserver_url, EVENT_COUNT, {"runId": run_id})["logsForRun"]["events"]
        )
        for run_id in run_ids
    }


def lake_rows_by_day(stack: ComposeStack) -> tuple[int, Counter[str]]:
    """The orders table on the object store, read from the host through the published S3 port:
    its version and the rows of every order_date partition, counted from the data itself."""
    table = DeltaTable(
        "s3://lake/orders",
        storage_options={
            "AWS_ENDPOINT_URL": stack.s3_endpoint,
            "AWS_ACCESS_KEY_ID": stack.settings["MINIO_ROOT_USER"],
            "AWS_SECRET_ACCESS_KEY": stack.settings["MINIO_ROOT_PASSWORD"],
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        },
    )
    days = table.to_pyarrow_table(columns=["order_date"]).column("order_date")
    counted = pc.value_counts(days).to_pylist()
    return table.version(), Counter({str(e["values"]): e["counts"] for e in counted})


def state(stack: ComposeStack) -> dict[str, Any]:
    """What must survive restarts: the runs, their event logs, the materializations, the lake."""
    known = runs(stack)
    return {
        "runs": {run_id: run["status"] for run_id, run in known.items()},
        "events": event_counts(stack, sorted(known)),
        "materializations": sorted(
            (m["run_id"], m["partition"], m["dagster/partition_row_count"])
            for m in materializations(stack)
        ),
        "lake": lake_rows_by_day(stack),
    }


def test_the_stack_comes_up_healthy_with_no_warning_and_every_one_shot_exits_0(stack):
    config = stack.config()
    images = {name: service["image"] for name, service in config["services"].items()}
    assert not [image for image in images.values() if image.startswith("minio/")]
    assert images["minio"].startswith("quay.io/minio/minio:RELEASE.")
    assert one_shot_exit_codes(stack) == dict.fromkeys(ONE_SHOTS, 0)
    logs = stack.logs()
    assert "upsert_pipeline" in stack.logs([CODE_LOCATION])  # the logs are really read
    assert warnings_in(logs) == []
    print(f"up to ready: {stack.up_seconds:.1f} s")


def test_a_partition_and_a_backfill_each_run_in_a_container_of_its_own_with_lake_counts(stack):
    view = Stack(stack)
    started = time.monotonic()
    run_id, _ = launch_partition_run(stack.webserver_url, "orders", PARTITION)
    assert wait_for_run(view, run_id, timeout_s=180) == "SUCCESS", view.log_tail()
    print(f"one partition materialized {time.monotonic() - started:.1f} s after its launch")
    backfill_id = launch_backfill(stack.webserver_url, "orders", BACKFILL_DAYS)
    statuses = wait_for_backfill_runs(view, backfill_id, timeout_s=240)
    assert set(statuses.values()) == {"SUCCESS"}, statuses
    run_ids = {run_id, *statuses}

    # Each run in a container of its own: the one the launcher tagged the run with, started
    # from the project's image on the stack's network, exited 0, none shared.
    containers = {c["Config"]["Labels"]["dagster/run_id"]: c for c in stack.run_containers()}
    assert set(containers) == run_ids
    tags = runs(stack)
    services = {stack.container(name)["Id"] for name in LONG_RUNNING}
    for rid in run_ids:
        container = containers[rid]
        assert tags[rid]["docker/container_id"] == container["Id"]
        assert container["Id"] not in services
        assert container["Config"]["Image"] == APP_IMAGE
        assert stack.network in container["NetworkSettings"]["Networks"]
        assert container["State"]["ExitCode"] == 0
        assert container["HostConfig"]["Memory"] > 0 and container["HostConfig"]["NanoCpus"] > 0
    assert len({c["Id"] for c in containers.values()}) == len(run_ids)

    # The counts on the materializations are the rows in the MinIO table.
    _, rows = lake_rows_by_day(stack)
    recorded = {m["partition"]: m for m in materializations(stack)}
    assert set(recorded) >= {PARTITION, *BACKFILL_DAYS}
    for day, metadata in recorded.items():
        assert metadata["dagster/partition_row_count"] == rows[day], day
        assert metadata["upsert/rows_inserted"] == rows[day], day
    latest = max(recorded.values(), key=lambda m: m["delta/version"])
    assert latest["dagster/row_count"] == sum(rows.values())
    assert warnings_in(stack.logs()) == []


def test_restarting_the_code_location_leaves_a_run_in_flight_alone(stack):
    view = Stack(stack)
    run_id, _ = launch_partition_run(stack.webserver_url, "orders", IN_FLIGHT_PARTITION)
    deadline = time.monotonic() + 120
    while not [
        c
        for c in stack.run_containers()
        if c["Config"]["Labels"]["dagster/run_id"] == run_id and c["State"]["Running"]
    ]:
        assert time.monotonic() < deadline, f"no running container for {run_id}"
        time.sleep(0.2)
    stack.compose("restart", CODE_LOCATION)
    assert wait_for_run(view, run_id, timeout_s=180) == "SUCCESS", view.log_tail()
    [recorded] = [m for m in materializations(stack) if m["partition"] == IN_FLIGHT_PARTITION]
    assert recorded["run_id"] == run_id
    assert (
        recorded["dagster/partition_row_count"] == lake_rows_by_day(stack)[1][IN_FLIGHT_PARTITION]
    )


def test_restart_and_down_up_keep_runs_event_logs_and_the_lake(stack):
    before = state(stack)
    assert len(before["runs"]) >= 2 and before["lake"][1], "the run test must run first"

    stack.compose("restart")
    wait_until_ready(stack)
    assert one_shot_exit_codes(stack) == dict.fromkeys(ONE_SHOTS, 0)
    assert state(stack) == before

    stack.compose("down")  # containers and network gone; the named volumes stay
    up(stack)
    assert one_shot_exit_codes(stack) == dict.fromkeys(ONE_SHOTS, 0)
    assert state(stack) == before
