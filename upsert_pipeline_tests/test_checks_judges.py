"""The pure judges: the volume band's low edge and no-op re-runs, counts_reconcile's comparisons,
and maintenance commits in the out-of-band judge. No Dagster run needed."""

import dataclasses

import pytest

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.checks.judges import (
    VolumeBand,
    is_no_op,
    judge_out_of_band,
    judge_reconcile,
    judge_volume,
    one_per_partition,
)
from upsert_pipeline.delta.history import Commit
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline_tests.test_checks import _result


def _day(inserted: int, updated: int = 0, deleted: int = 0, source: int | None = None) -> dict:
    return {
        keys.ROWS_INSERTED: inserted,
        keys.ROWS_UPDATED: updated,
        keys.ROWS_DELETED: deleted,
        keys.SOURCE_ROWS: inserted + updated if source is None else source,
    }


USUAL = [_day(n) for n in (1000, 980, 1010, 995, 1020, 1005, 990)]


# volume_within_history ----------------------------------------------------------------------


@pytest.mark.parametrize("inserted", [600, 1000, 1400, 2000])
def test_volume_passes_usual_days(inserted):
    assert judge_volume(_day(inserted), USUAL).passed


def test_volume_fails_a_day_far_below_the_usual():
    verdict = judge_volume(_day(10), USUAL)
    assert not verdict.passed
    assert "source_rows 10 below" in (verdict.description or "")
    low = int(str(verdict.metadata["source_rows_band"]).strip("[]").split(", ")[0])
    assert 10 < low < 1000


def test_a_redelivery_of_a_loaded_day_is_no_shortfall():
    """A re-delivery sends the day again: a few late rows inserted, some updated, the rest
    unchanged. Its small insert count is not a day far below the usual."""
    redelivery = _day(5, updated=30, source=1000)
    verdict = judge_volume(redelivery, USUAL)
    assert verdict.passed, verdict.description
    assert not judge_volume(_day(5, updated=30, source=40), USUAL).passed


def test_volume_fails_a_day_far_above_the_usual():
    verdict = judge_volume(_day(10_000), USUAL)
    assert not verdict.passed and "above" in (verdict.description or "")


def test_the_low_edge_stays_clear_of_small_counts():
    """3 where 5 are usual is a few rows, not an outlier: the low edge keeps min_spread_rows."""
    history = [_day(1000, updated=n) for n in (5, 4, 6, 5, 5)]
    assert judge_volume(_day(1000, updated=0), history).passed
    median, low, high = VolumeBand().edges([5, 4, 6, 5, 5])
    assert low < 0 < median < high


def test_band_edges():
    assert VolumeBand().edges([1000] * 5) == (1000, 250.0, 2250.0)
    assert VolumeBand(min_fraction=0.5).edges([1000] * 5)[1] == 500.0


def test_a_no_op_rerun_is_not_judged():
    rerun = _day(0, source=1000)
    assert is_no_op(rerun)
    verdict = judge_volume(rerun, USUAL)
    assert verdict.passed and "changed nothing" in (verdict.description or "")


def test_an_empty_delivery_is_not_a_no_op_and_fails_low():
    empty = _day(0, source=0)
    assert not is_no_op(empty)
    assert not judge_volume(empty, USUAL).passed


def test_no_op_reruns_are_not_history():
    reruns = [_day(0, source=1000)] * 10
    # ten re-runs and four real days: not enough history yet, and the re-runs do not widen it
    verdict = judge_volume(_day(10), reruns + USUAL[:4])
    assert verdict.passed and "no verdict" in (verdict.description or "")
    assert verdict.metadata["no_op_reruns_ignored"] == 10
    # with them counted, a median of 0 would have made a usual day of 1,000 an outlier
    verdict = judge_volume(_day(1000), reruns[:5] + USUAL)
    assert verdict.passed and verdict.metadata["history"] == len(USUAL)


# counts_reconcile ---------------------------------------------------------------------------


def test_reconcile_of_a_merge_that_wrote_no_version_passes_when_it_reports_no_change():
    counts = _result().before
    no_commit = _result(inserted=0, unchanged=4, version=3, after=counts)
    verdict = judge_reconcile(no_commit, landing_rows=4, table_rows_before_commit=None)
    assert verdict.passed
    # nothing tautological is compared: the same snapshot counted twice is not reported
    assert "partition_rows_before" not in verdict.metadata


def test_reconcile_fails_a_merge_that_reports_changes_but_wrote_no_version():
    counts = _result().before
    phantom = _result(inserted=4, version=3, after=counts)
    verdict = judge_reconcile(phantom, landing_rows=4, table_rows_before_commit=None)
    assert not verdict.passed and "no version written" in (verdict.description or "")


def test_reconcile_fails_a_merge_that_wrote_rows_outside_its_partition():
    # the partition gained its 4 rows, but the table gained 6: something else was written
    after = dataclasses.replace(_result().after, table_rows=106)
    verdict = judge_reconcile(_result(after=after), landing_rows=4, table_rows_before_commit=None)
    assert not verdict.passed and "table: 100 + 4 != 106" in (verdict.description or "")


# no_out_of_band_writes: maintenance -------------------------------------------------------


def _commit(version, operation, *, asset=None, partition=None, data_change=True, metrics=None):
    return Commit(
        version=version,
        operation=operation,
        pipeline_asset=asset,
        pipeline_partition=partition,
        metrics=metrics or {},
        data_change=data_change,
        removed_rows=0,
    )


PREVIOUS = {keys.VERSION: 2, keys.PARTITION_ROW_COUNT: 10}


@pytest.mark.parametrize(
    "commit",
    [
        _commit(3, "OPTIMIZE", asset="orders", data_change=False),  # maintain_lake's own
        _commit(3, "OPTIMIZE", data_change=False),  # another engine's compaction
        _commit(3, "VACUUM START"),
        _commit(3, "VACUUM END"),
        _commit(3, None, data_change=False),  # no commitInfo, no data change
    ],
)
def test_maintenance_commits_are_not_out_of_band(commit):
    verdict = judge_out_of_band(
        ORDERS, _result(), partition_key="2026-11-02", previous=PREVIOUS, commits=[commit]
    )
    assert verdict.passed, verdict.description
    assert verdict.metadata["foreign_commits"] == 0
    assert verdict.metadata["maintenance_commits"] == 1


def test_a_foreign_data_change_is_out_of_band_even_beside_maintenance():
    commits = [
        _commit(3, "OPTIMIZE", data_change=False),
        _commit(4, None),  # a data-changing commit without commitInfo
    ]
    verdict = judge_out_of_band(
        ORDERS, _result(), partition_key="2026-11-02", previous=PREVIOUS, commits=commits
    )
    assert not verdict.passed
    assert "v4 unknown operation" in (verdict.description or "")


def test_pipeline_commits_with_spark_metrics_count_toward_rows_before():
    commits = [
        _commit(
            3,
            "MERGE",
            asset="orders",
            partition="2026-11-02",
            metrics={"numTargetRowsInserted": "3", "numTargetRowsDeleted": "1"},
        )
    ]
    result = _result(before=dataclasses.replace(_result().before, partition_rows=12))
    verdict = judge_out_of_band(
        ORDERS, result, partition_key="2026-11-02", previous=PREVIOUS, commits=commits
    )
    assert verdict.passed and verdict.metadata["expected_rows_before"] == 12


def test_one_per_partition_keeps_each_days_newest_and_leaves_the_judged_day_out():
    history = [("d3", _day(1)), ("d2", _day(2)), ("d3", _day(3)), ("d1", _day(4)), ("d4", _day(5))]

    kept = one_per_partition(history, judged="d4", limit=30)

    assert kept == [_day(1), _day(2), _day(4)]
    assert one_per_partition(history, judged="d9", limit=2) == [_day(1), _day(2)]
