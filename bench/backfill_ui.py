"""A backfill of ``orders`` launched the way the UI launches it, timed end to end.

For each project checkout given (``--project``; by default this one), the bench starts
``dagster dev -m upsert_pipeline.definitions`` (webserver + daemon) on a fresh temporary instance,
with that checkout's own sample data and an empty lake, and sends the GraphQL mutation the UI's
"Materialize" dialog sends (``launchPartitionBackfill`` with the asset and N partition keys). It
then polls the backfill and reports:

- ``runs_done_s``: launch until every run of the backfill has finished (what the partitions
  view shows as materialized);
- ``backfill_done_s``: launch until the backfill itself is marked completed (the backfill daemon
  looks at it every 30 s, so this lags the runs by up to that much).

Afterwards it reads the instance: every partition must have a materialization with its integer
counts and an evaluation of each of its checks, or the measurement is refused.

Each checkout's instance is what its ``make dev`` would write (``deploy/dev_instance.yaml`` when
the checkout has one, else Dagster's defaults). Checkouts alternate when ``--repeats`` > 1, so
both see the same machine load; the report gives the load average before each measurement.

Usage::

    git worktree add /tmp/before <commit>
    python -m bench.backfill_ui --project /tmp/before --project . --repeats 2
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
ASSET = "orders"
START = "2026-11-01"
POLL_S = 0.5
TIMEOUT_S = 900.0

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""

STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status runs(limit: 1000) { runId status tags { key value } } }
  }
}"""

LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return dict(body["data"])


def _loaded(url: str) -> bool:
    try:
        data = _graphql(url, LOCATIONS)
    except OSError:
        return False
    for entry in data["workspaceOrError"].get("locationEntries") or []:
        location = entry["locationOrLoadError"] or {}
        if location.get("__typename") == "PythonError":
            raise RuntimeError(f"{entry['name']} failed to load: {location['message']}")
        if entry["loadStatus"] == "LOADED":
            return True
    return False


def _load_average() -> float:
    return os.getloadavg()[0]


@contextlib.contextmanager
def _dagster_dev(project: Path, root: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``dagster dev`` of ``project`` on a fresh instance under ``root``; yields (url, env)."""
    home, landing, lake = root / "home", root / "landing", root / "lake"
    home.mkdir(parents=True)
    dev_instance = project / "deploy" / "dev_instance.yaml"
    if dev_instance.is_file():
        shutil.copy(dev_instance, home / "dagster.yaml")
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}},
        "PYTHONPATH": str(project),
        "DAGSTER_HOME": str(home),
        "UPSERT_PIPELINE_LANDING_URI": str(landing),
        "UPSERT_PIPELINE_LAKE_URI": str(lake),
    }
    subprocess.run(
        [sys.executable, "-m", "upsert_pipeline.sample_data", "--landing", str(landing)],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    log = (root / "dagster_dev.log").open("wb")
    process = subprocess.Popen(
        [str(bin_dir / "dagster"), "dev", "-m", "upsert_pipeline.definitions", "-p", str(port)],
        cwd=project,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _loaded(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dagster dev did not come up: {(root / 'dagster_dev.log')}")
            time.sleep(0.5)
        yield url, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def _covered(partitions: list[str], tags: dict[str, str]) -> list[str]:
    """The partitions of ``partitions`` (daily keys, ISO dates) a run with ``tags`` covers: its
    one partition, or the range of a single-run backfill."""
    if "dagster/partition" in tags:
        return [key for key in partitions if key == tags["dagster/partition"]]
    first = tags.get("dagster/asset_partition_range_start")
    last = tags.get("dagster/asset_partition_range_end")
    if first is None or last is None:
        return []
    return [key for key in partitions if first <= key <= last]


def _verify(home: Path, backfill_id: str, partitions: list[str]) -> dict[str, Any]:
    """Per partition: the counts recorded and each check's evaluation, read from the instance."""
    import dagster as dg
    from dagster._core.events import DagsterEventType

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        backfill = instance.get_backfill(backfill_id)
        launched_at = backfill.backfill_timestamp if backfill else 0.0
        run_records = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id for run in runs]))
        # Where the time went, from the run records: created (submitted by the backfill
        # daemon), started (its process began executing) and ended, relative to the launch.
        timeline = sorted(
            (
                round(record.create_timestamp.timestamp() - launched_at, 1),
                round((record.start_time or launched_at) - launched_at, 1),
                round((record.end_time or launched_at) - launched_at, 1),
            )
            for record in run_records
        )
        # A backfill's run covers one partition or (single-run backfill policy) a range of
        # them; each check evaluation names its partition either way.
        by_partition: dict[str, Any] = {key: {"runs": [], "checks": {}} for key in partitions}
        for run in runs:
            for record in instance.all_logs(
                run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            ):
                evaluation = (
                    record.dagster_event.event_specific_data if record.dagster_event else None
                )
                if evaluation is not None and evaluation.partition in by_partition:
                    by_partition[evaluation.partition]["checks"][evaluation.check_name] = (
                        evaluation.passed
                    )
            for partition in _covered(partitions, run.tags):
                by_partition[partition]["runs"].append(run.status.value)
        for partition in partitions:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(ASSET), asset_partitions=[partition]),
                limit=1,
            ).records
            metadata = records[0].asset_materialization.metadata if records else {}
            counts = {
                key: value.value
                for key, value in metadata.items()
                if key in {"upsert/rows_inserted", "dagster/partition_row_count"}
                and isinstance(value, dg.IntMetadataValue)
            }
            by_partition.setdefault(partition, {})["counts"] = counts
    complete = all(
        entry["runs"]
        and all(status == "SUCCESS" for status in entry["runs"])
        and len(entry.get("counts", {})) == 2
        and {"counts_reconcile", "no_out_of_band_writes", "not_empty", "volume_within_history"}
        <= set(entry.get("checks", {}))
        for entry in by_partition.values()
    ) and set(by_partition) == set(partitions)
    return {
        "complete": complete,
        "first_run_created_s": timeline[0][0] if timeline else None,
        "first_run_started_s": min((t[1] for t in timeline), default=None),
        "run_seconds": sorted(round(end - started, 1) for _, started, end in timeline),
        "runs_created_started_ended_s": timeline,
        "partitions": by_partition,
    }


def measure(project: Path, partitions: int) -> dict[str, Any]:
    """One backfill of ``partitions`` days of orders on a fresh ``dagster dev`` of ``project``."""
    import datetime as dt

    first = dt.date.fromisoformat(START)
    keys = [(first + dt.timedelta(days=offset)).isoformat() for offset in range(partitions)]
    with tempfile.TemporaryDirectory(prefix="backfill_ui_") as tmp:
        root = Path(tmp)
        with _dagster_dev(project, root) as (url, _env):
            time.sleep(2)  # let the daemon's first iterations start
            load_before = _load_average()
            params = {
                "partitionNames": keys,
                "assetSelection": [{"path": [ASSET]}],
                "fromFailure": False,
                "tags": [],
            }
            start = time.perf_counter()
            launched = _graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
            if launched["__typename"] != "LaunchBackfillSuccess":
                raise RuntimeError(f"launch failed: {launched}")
            backfill_id = launched["backfillId"]
            runs_done = None
            while True:
                if time.perf_counter() - start > TIMEOUT_S:
                    raise TimeoutError(f"backfill {backfill_id} not done in {TIMEOUT_S} s")
                status = _graphql(url, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
                runs = status["runs"]
                finished = {
                    key
                    for run in runs
                    if run["status"] in {"SUCCESS", "FAILURE", "CANCELED"}
                    for key in _covered(keys, {tag["key"]: tag["value"] for tag in run["tags"]})
                }
                if runs_done is None and finished == set(keys):
                    runs_done = time.perf_counter() - start
                if status["status"] not in {"REQUESTED", "CANCELING"}:
                    backfill_done = time.perf_counter() - start
                    break
                time.sleep(POLL_S)
            load_after = _load_average()
        verified = _verify(root / "home", backfill_id, keys)
        console = (root / "dagster_dev.log").read_text(errors="replace")
    return {
        "project": str(project),
        "partitions": partitions,
        "runs_done_s": round(runs_done, 1) if runs_done is not None else None,
        "backfill_done_s": round(backfill_done, 1),
        "backfill_status": status["status"],
        "load_average_1m": {"before": round(load_before, 2), "after": round(load_after, 2)},
        # What the user sees in the `dagster dev` console during the backfill.
        "console_warnings": {
            name: console.count(name) for name in ("PreviewWarning", "BetaWarning", "UserWarning")
        },
        **verified,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", action="append", type=Path, help="checkout(s) to measure")
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args(argv)
    projects = [path.resolve() for path in args.project or [PROJECT_DIR]]
    results = []
    for repeat in range(args.repeats):
        order = projects if repeat % 2 == 0 else list(reversed(projects))
        for project in order:
            result = measure(project, args.partitions)
            omitted = {"partitions", "runs_created_started_ended_s"}
            summary = {k: v for k, v in result.items() if k not in omitted} | {
                "partitions": args.partitions
            }
            print(json.dumps(summary), flush=True)
            results.append(result)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0 if all(result["complete"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
