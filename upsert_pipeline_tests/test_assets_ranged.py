"""A backfill's single run over a range of days: each day merged as its own commit, recorded as
its own materialization with its own counts, and judged by every check per day; what the same
days get one run each is what they get in one ranged run."""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from deltalake import DeltaTable

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.checks import (
    COUNTS_RECONCILE,
    NO_OUT_OF_BAND_WRITES,
    NOT_EMPTY,
    VOLUME_WITHIN_HISTORY,
)
from upsert_pipeline.checks.names import expectation_check
from upsert_pipeline.delta.history import PARTITION_MARKER
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.landing import LandingFileNotFoundError
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.conftest import (
    feed_asset,
    feed_checks,
    partition_materializations,
    run_check_evaluations,
    scan_rows,
    verdicts_by_partition,
)

orders, customers = feed_asset("orders"), feed_asset("customers")
ASSETS = [orders, customers, *feed_checks("orders", "customers")]
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]
CHECKS = {COUNTS_RECONCILE, NO_OUT_OF_BAND_WRITES, NOT_EMPTY, VOLUME_WITHIN_HISTORY}
CHECKS_OF = {
    "orders": CHECKS | {expectation_check(rule.name) for rule in ORDERS.expectations},
    "customers": CHECKS,
}
# What differs between two loads of the same batches: timings, memory, the run, and how far the
# log was found recorded when each run started.
VOLATILE = {
    "delta/merge_ms",
    "recovery/log_checked_through",
    *(key for key in vars(keys).values() if isinstance(key, str) and key.startswith("cost/")),
}


@pytest.fixture
def landing_dir(tmp_path):
    landing = tmp_path / "landing"
    generate(landing, days=len(DAYS))
    return landing


def _range_tags(first: str, last: str) -> dict[str, str]:
    """The tags a single-run backfill's run carries (Dagster sets them from the range)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def _recorded(instance, asset: str, day: str) -> dict[str, object]:
    records = partition_materializations(instance, asset, [day], limit=2)[day]
    assert len(records) == 1, (asset, day, len(records))
    metadata = records[0].asset_materialization.metadata
    return {key: value.value for key, value in metadata.items() if key not in VOLATILE}


def test_a_ranged_run_records_each_day_as_runs_of_one_day_would(resources, tmp_path):
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ASSETS, resources=resources, instance=instance, tags=_range_tags(DAYS[0], DAYS[-1])
        )
        assert result.success
        ranged = {
            (asset, day): _recorded(instance, asset, day)
            for asset in ("orders", "customers")
            for day in DAYS
        }
        evaluations = result.get_asset_check_evaluations()
        verdicts = {
            asset: verdicts_by_partition(evaluations, asset) for asset in ("orders", "customers")
        }
        # What the UI lists per partition: one execution of each check per day of the range,
        # succeeded, judging that day's materialization.
        for day in DAYS:
            [materialization] = partition_materializations(instance, "orders", [day])[day]
            for check in CHECKS:
                [execution] = instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(dg.AssetKey("orders"), check),
                    limit=5,
                    partition_filter=PartitionKeyFilter(key=day),
                )
                assert execution.status == AssetCheckExecutionRecordStatus.SUCCEEDED, (day, check)
                assert execution.run_id == result.run_id
                target = (
                    execution.event.dagster_event.event_specific_data.target_materialization_data
                )
                assert target.storage_id == materialization.storage_id, (day, check)

    lake = tmp_path / "lake"
    table = DeltaTable(str(lake / "orders"))
    # One commit per day (after the create), each marked with its day.
    commits = [c for c in table.history() if c.get("operation") == "MERGE"]
    assert sorted(c[PARTITION_MARKER] for c in commits) == DAYS
    for day in DAYS:
        metadata = ranged[("orders", day)]
        assert metadata["dagster/partition_row_count"] == scan_rows(
            str(lake / "orders"), dt.date.fromisoformat(day)
        )
        assert metadata["upsert/rows_inserted"] == metadata["upsert/source_rows"] > 0
    assert ranged[("orders", DAYS[-1])]["dagster/row_count"] == scan_rows(str(lake / "orders"))
    # Every check judged every day of the range, and passed (volume: too little history is a pass).
    for asset in ("orders", "customers"):
        assert set(verdicts[asset]) == set(DAYS)
        for day in DAYS:
            assert set(verdicts[asset][day]) == CHECKS_OF[asset], (asset, day)
            assert all(verdicts[asset][day].values()), (asset, day, verdicts[asset][day])

    # The same days, one run each, on a fresh lake and instance: the same records.
    single = tmp_path / "single"
    single_resources = {
        "landing": resources["landing"],
        "lake": type(resources["lake"])(lake_uri=str(single / "lake")),
    }
    with dg.instance_for_test() as instance:
        for day in DAYS:
            assert dg.materialize(
                ASSETS, partition_key=day, resources=single_resources, instance=instance
            ).success
        for (asset, day), metadata in ranged.items():
            one_day = _recorded(instance, asset, day)
            differing = {
                key
                for key in metadata.keys() | one_day.keys()
                if key != "dagster/uri" and metadata.get(key) != one_day.get(key)
            }
            assert not differing, (
                asset,
                day,
                {k: (metadata.get(k), one_day.get(k)) for k in differing},
            )


def test_a_day_that_fails_mid_range_leaves_the_days_before_it_recorded(
    resources, landing_dir, tmp_path
):
    (landing_dir / "orders" / f"{DAYS[3]}.parquet").unlink()
    with dg.instance_for_test() as instance:
        with pytest.raises(LandingFileNotFoundError, match=DAYS[3]):
            dg.materialize(
                [orders, *feed_checks("orders")],
                resources=resources,
                instance=instance,
                tags=_range_tags(DAYS[0], DAYS[-1]),
            )
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE
        evaluations = run_check_evaluations(instance, run.run_id)
        recorded = partition_materializations(instance, "orders", DAYS, limit=1)
        verdicts = verdicts_by_partition(evaluations, "orders")
    # The three days before the missing batch were committed and are recorded with their
    # counts and every check's verdict, each as its commit landed; the missing day and the days
    # after it are neither.
    assert [day for day in DAYS if recorded[day]] == DAYS[:3]
    for day in DAYS[:3]:
        metadata = recorded[day][0].asset_materialization.metadata
        assert metadata["dagster/partition_row_count"].value == scan_rows(
            str(tmp_path / "lake" / "orders"), dt.date.fromisoformat(day)
        )
    assert set(verdicts) == set(DAYS[:3])
    assert all(set(verdicts[day]) == CHECKS_OF["orders"] for day in DAYS[:3])
    table = DeltaTable(str(tmp_path / "lake" / "orders"))
    assert table.version() == 3  # create + three merges; nothing for the days after


def test_backfills_of_the_feeds_run_as_one_run_over_their_range():
    for asset in (orders, customers):
        assert asset.backfill_policy == dg.BackfillPolicy.single_run()
