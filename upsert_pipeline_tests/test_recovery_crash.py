"""Runs SIGKILLed at a kill point, then the next run: every committed day recorded exactly once
with its commit's counts, and the table equal to its landing batches.

Each run that is killed is a real process (``killed_run.py``) running ``dg.materialize`` on an
instance in a folder; it stops at its kill point (before the commit of a day, or right after it,
before Dagster records it), writes a marker file, and the test kills it with SIGKILL from outside.
The instance still calls that run started. The next run, in this process on the same instance and
lake, records the dead run's commit as recovered before it merges, then merges its range. On the
local disk and on moto's S3.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.definitions import defs
from upsert_pipeline.delta.recovery import pipeline_commits
from upsert_pipeline.delta.storage import storage_options_for
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.recovery import RECOVER_JOB
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.killed_run import materialize_range
from upsert_pipeline_tests.object_store import moto_server, new_bucket, s3_env

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
MARKER_TIMEOUT_S = 180.0

# (kill point, the killed run's range, the day it is killed on)
SEQUENCES = {
    "before_commit": ("before_commit", (DAYS[0], DAYS[2]), DAYS[1]),
    "after_commit": ("after_commit", (DAYS[0], DAYS[0]), DAYS[0]),
    "mid_range_after_commit": ("after_commit", (DAYS[0], DAYS[3]), DAYS[2]),
}


def kill_run_at(
    *,
    home: Path,
    lake: str,
    landing: str,
    first: str,
    last: str,
    kill_point: str,
    kill_day: str,
    env: dict[str, str],
) -> None:
    """Starts the run in its own process and SIGKILLs it once it reached its kill point."""
    marker = home / f"killed-{kill_point}-{kill_day}"
    # The run's log goes to a file: a pipe nobody reads until the end would fill up and block it.
    log = home / f"killed-{kill_point}-{kill_day}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "upsert_pipeline_tests.killed_run"),
                *("--home", str(home), "--lake", lake, "--landing", landing),
                *("--first", first, "--last", last),
                *("--kill-point", kill_point, "--kill-day", kill_day, "--marker", str(marker)),
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + MARKER_TIMEOUT_S
    try:
        while not marker.exists():
            if process.poll() is not None:
                raise AssertionError(
                    f"the run ended before its kill point: {log.read_text()[-3000:]}"
                )
            assert time.monotonic() < deadline, "the run never reached its kill point"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def committed_records(instance: dg.DagsterInstance) -> list[tuple[str, int, dict[str, object]]]:
    """``(partition, version, metadata)`` of every materialization of orders that recorded a
    commit (a merge that committed nothing records none)."""
    records = instance.fetch_materializations(dg.AssetKey("orders"), limit=1000).records
    found = []
    for record in records:
        metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        if metadata[keys.VERSION] != metadata[keys.READ_VERSION]:
            found.append((str(record.partition_key), metadata[keys.VERSION], metadata))
    return found


def assert_every_commit_recorded_once(instance, lake: str, options) -> list[dict[str, object]]:
    """Each pipeline commit of orders is exactly one materialization of its day, carrying its
    version and its metrics' counts; returns the recovered ones' metadata."""
    commits, _ = pipeline_commits(f"{lake}/orders", "orders", storage_options=options)
    recorded = committed_records(instance)
    assert sorted((p, v) for p, v, _ in recorded) == sorted(
        (c.pipeline_partition, c.version) for c in commits
    )
    by_version = {v: metadata for _, v, metadata in recorded}
    for commit in commits:
        metadata = by_version[commit.version]
        assert metadata[keys.ROWS_INSERTED] == commit.metrics["num_target_rows_inserted"]
        assert metadata[keys.ROWS_UPDATED] == commit.metrics["num_target_rows_updated"]
        assert metadata[keys.ROWS_DELETED] == commit.metrics["num_target_rows_deleted"]
    return [metadata for _, _, metadata in recorded if metadata.get(keys.RECOVERED)]


def assert_table_is_its_landing(lake: str, landing: str, options) -> None:
    source = LandingResource(uri=landing)
    landed = pl.concat([pl.from_arrow(source.read_batch(ORDERS, day)) for day in DAYS])
    table = pl.read_delta(f"{lake}/orders", storage_options=options)
    columns = ["order_id", "order_date", "status", "amount"]
    assert table.select(columns).sort("order_id").equals(landed.select(columns).sort("order_id"))


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, monkeypatch):
    """The lake's URI, its delta-rs options and the environment of a run's process."""
    if request.param == "local":
        yield str(tmp_path / "lake"), None, dict(os.environ)
        return
    endpoint = request.getfixturevalue("endpoint")
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{new_bucket(endpoint)}/lake"
    yield uri, storage_options_for(uri), dict(os.environ)


@pytest.mark.parametrize("sequence", list(SEQUENCES))
def test_a_killed_run_is_recorded_by_the_next_run_exactly_once(sequence, lake, tmp_path):
    kill_point, (first, last), kill_day = SEQUENCES[sequence]
    lake_uri, options, env = lake
    landing = str(tmp_path / "landing")
    generate(landing, days=len(DAYS))
    home = tmp_path / "dagster_home"
    home.mkdir()

    kill_run_at(
        home=home,
        lake=lake_uri,
        landing=landing,
        first=first,
        last=last,
        kill_point=kill_point,
        kill_day=kill_day,
        env=env,
    )

    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        [dead_run] = instance.get_runs()
        assert dead_run.status == dg.DagsterRunStatus.STARTED  # nobody saw it die
        # Before recovery: the days before the kill day were recorded as their commits landed;
        # a commit made right before the kill is in the log and recorded nowhere.
        commits, _ = pipeline_commits(f"{lake_uri}/orders", "orders", storage_options=options)
        recorded = {(p, v) for p, v, _ in committed_records(instance)}
        days_before = DAYS[DAYS.index(first) : DAYS.index(kill_day)]
        assert sorted(p for p, _ in recorded) == days_before
        unrecorded = [c for c in commits if (c.pipeline_partition, c.version) not in recorded]
        if kill_point == "after_commit":
            assert [c.pipeline_partition for c in unrecorded] == [kill_day]
            assert unrecorded[0].run_id == dead_run.run_id
        else:
            assert unrecorded == []

        result = materialize_range(
            instance, lake=lake_uri, landing=landing, first=DAYS[0], last=DAYS[-1], grace_s=0
        )
        assert result.success

        recovered = assert_every_commit_recorded_once(instance, lake_uri, options)
        if kill_point == "after_commit":
            [metadata] = recovered
            assert metadata[keys.RECOVERED_RUN_ID] == dead_run.run_id
            assert metadata[keys.VERSION] == unrecorded[0].version
            assert metadata[keys.ROWS_INSERTED] > 0
            # Its checks judged it like any other materialization.
            evaluations = [
                e.check_name
                for e in result.get_asset_check_evaluations()
                if e.partition == kill_day and e.target_materialization_data is not None
            ]
            assert "counts_reconcile" in evaluations
        else:
            assert recovered == []
        assert_table_is_its_landing(lake_uri, landing, options)

        # Recovering again (the operator's job) records nothing twice.
        count = len(instance.fetch_materializations(dg.AssetKey("orders"), limit=1000).records)
        job = defs.resolve_job_def(RECOVER_JOB)
        again = job.execute_in_process(
            instance=instance,
            resources={"lake": DeltaMergeResource(lake_uri=lake_uri)},
            run_config={"ops": {"recover_commits": {"config": {"grace_s": 0}}}},
        )
        assert again.success
        assert len(instance.fetch_materializations(dg.AssetKey("orders"), limit=1000).records) == (
            count
        )
        assert_every_commit_recorded_once(instance, lake_uri, options)
