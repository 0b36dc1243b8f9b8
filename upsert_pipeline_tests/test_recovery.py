"""Which unrecorded commits a run recovers: a finished run's at once, a run still called started
or unknown to the instance only once its commit is older than the grace period; the watermark
stays below a commit left to a live run; and recovered commits enter the volume history like any
other."""

import datetime as dt
import shutil

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER, RUN_MARKER
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.recovery import find_unrecorded
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline_tests.conftest import feed_asset, feed_checks

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def _commit_of_run(lake: DeltaMergeResource, landing: LandingResource, day: str, run_id: str):
    """What a run that died right after its merge leaves: the commit, recorded nowhere."""
    return upsert(
        lake.table_uri("orders"),
        landing.read_batch(ORDERS, day),
        keys=list(ORDERS.keys),
        partition={"order_date": dt.date.fromisoformat(day)},
        commit_metadata={PIPELINE_MARKER: "orders", PARTITION_MARKER: day, RUN_MARKER: run_id},
    )


def _started_run(instance: dg.DagsterInstance) -> str:
    run = instance.add_run(
        DagsterRun(job_name="__ephemeral_asset_job__", status=dg.DagsterRunStatus.STARTED)
    )
    return run.run_id


def _materialize(instance, resources, day: str, grace_s: float | None = None):
    config = {} if grace_s is None else {"recovery_grace_s": grace_s}
    return dg.materialize(
        [feed_asset("orders"), *feed_checks("orders")],
        resources=resources,
        instance=instance,
        partition_key=day,
        run_config={"ops": {"orders": {"config": config}}},
    )


def _recorded(instance, day: str) -> list[dict[str, object]]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("orders"), asset_partitions=[day]), limit=10
    ).records
    return [
        {k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records[::-1]
    ]


def test_a_young_commit_of_a_started_run_waits_and_a_failed_runs_is_recovered(resources):
    lake, landing = resources["lake"], resources["landing"]
    with dg.instance_for_test() as instance:
        assert _materialize(instance, resources, DAYS[0]).success
        run_id = _started_run(instance)
        dead = _commit_of_run(lake, landing, DAYS[1], run_id)

        # The run is still called started and its commit is seconds old: it may be alive.
        recovery = find_unrecorded(instance, ORDERS, lake, current_run_id=None, grace_s=120)
        assert (recovery.commits, [c.version for c in recovery.waiting]) == ([], [dead.version])
        assert recovery.checked_through == dead.version - 1
        assert _materialize(instance, resources, DAYS[2]).success
        assert _recorded(instance, DAYS[1]) == []
        # The watermark recorded stays below the waiting commit.
        assert _recorded(instance, DAYS[2])[0][keys.LOG_CHECKED_THROUGH] == dead.version - 1

        instance.report_run_failed(instance.get_run_by_id(run_id))
        assert _materialize(instance, resources, DAYS[2]).success

        [recovered] = _recorded(instance, DAYS[1])
        assert recovered[keys.RECOVERED] is True
        assert recovered[keys.RECOVERED_RUN_ID] == run_id
        assert (recovered[keys.VERSION], recovered[keys.READ_VERSION]) == (
            dead.version,
            dead.read_version,
        )
        assert recovered[keys.ROWS_INSERTED] == dead.inserted > 0
        assert recovered[keys.PARTITION_ROW_COUNT] == dead.partition_rows
        assert keys.TOMBSTONES not in recovered  # not in the log: unknown, never guessed
        # Nothing is left to recover, and the log is read only past what is recorded.
        recovery = find_unrecorded(instance, ORDERS, lake, current_run_id=None, grace_s=120)
        assert (recovery.commits, recovery.waiting) == ([], [])
        assert recovery.checked_through >= dead.version


def test_a_commit_of_a_run_the_instance_does_not_know_is_recovered_after_the_grace(resources):
    lake, landing = resources["lake"], resources["landing"]
    dead = _commit_of_run(lake, landing, DAYS[0], "0b5e1d3a-0000-4000-8000-000000000000")
    with dg.instance_for_test() as instance:
        # Seconds old: possibly a live run of another instance writing the same lake.
        assert _materialize(instance, resources, DAYS[2]).success
        assert _recorded(instance, DAYS[0]) == []
        result = _materialize(instance, resources, DAYS[1], grace_s=0)
        assert result.success
        [recovered] = _recorded(instance, DAYS[0])
        assert recovered[keys.VERSION] == dead.version
        # Judged like any other: the volume check and counts_reconcile name its materialization.
        judged = {
            e.check_name
            for e in result.get_asset_check_evaluations()
            if e.partition == DAYS[0] and e.target_materialization_data is not None
        }
        assert judged >= {"counts_reconcile", "volume_within_history", "not_empty"}


def test_an_old_commit_of_a_run_still_called_started_is_recovered(resources):
    lake, landing = resources["lake"], resources["landing"]
    with dg.instance_for_test() as instance:
        run_id = _started_run(instance)
        dead = _commit_of_run(lake, landing, DAYS[0], run_id)
        assert _materialize(instance, resources, DAYS[1], grace_s=0).success
        [recovered] = _recorded(instance, DAYS[0])
        assert (recovered[keys.VERSION], recovered[keys.RECOVERED_RUN_ID]) == (
            dead.version,
            run_id,
        )


def test_a_lake_written_again_from_scratch_reuses_versions_and_is_still_recorded(
    resources, tmp_path
):
    with dg.instance_for_test() as instance:
        assert _materialize(instance, resources, DAYS[0]).success
        shutil.rmtree(tmp_path / "lake")  # the lake wiped; the instance kept
        assert _materialize(instance, resources, DAYS[0]).success

        first, second = _recorded(instance, DAYS[0])
        assert first[keys.VERSION] == second[keys.VERSION] == 1
        assert second[keys.ROWS_INSERTED] == first[keys.ROWS_INSERTED] > 0
        assert keys.RECOVERED not in second


def test_a_dead_commit_in_a_lake_written_again_from_scratch_is_found(resources, tmp_path):
    lake, landing = resources["lake"], resources["landing"]
    with dg.instance_for_test() as instance:
        for day in DAYS:
            assert _materialize(instance, resources, day).success  # watermark at v2
        shutil.rmtree(tmp_path / "lake")
        dead = _commit_of_run(lake, landing, DAYS[0], "0b5e1d3a-0000-4000-8000-000000000001")

        recovery = find_unrecorded(instance, ORDERS, lake, current_run_id=None, grace_s=0)

        assert [c.version for c in recovery.commits] == [dead.version] == [1]
