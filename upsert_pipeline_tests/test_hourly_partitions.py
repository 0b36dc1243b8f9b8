"""An hourly feed partitioned by a timestamp column: each hour merges into its own Delta
partition (the hour's start, in UTC), its counts come from the log, its merge prunes the other
hours' files, and a row of another hour is refused without a commit."""

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from upsert_pipeline.assets import build_upsert_asset
from upsert_pipeline.delta import PartitionMismatchError, read_partition_row_counts, upsert
from upsert_pipeline.delta.partition_counts import partition_row_counts
from upsert_pipeline.feeds import cross_field_problems
from upsert_pipeline.partitions import feed_partitions, partition_scope
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline.sample_feed import write_samples
from upsert_pipeline_tests.test_landing_layouts import write_feed

CLICKS = """\
type: upsert_pipeline.components.FeedComponent
attributes:
  name: clicks
  description: Clicks landing as one parquet file an hour.
  columns:
    - {name: click_id, type: int64, nullable: false}
    - {name: hour, type: "timestamp[us, tz=UTC]", nullable: false}
    - {name: page, type: string}
  keys: [click_id]
  partition_column: hour
  partitions: {start: "2026-11-01 00:00", cadence: hourly, timezone: Europe/Berlin}
  landing: {path: "clicks/{date}/{hour}.parquet"}
"""

# Berlin is UTC+1 in November: the partition 14:00 Berlin starts at 13:00 UTC.
HOURS = {
    "2026-11-02-14:00": dt.datetime(2026, 11, 2, 13, tzinfo=dt.UTC),
    "2026-11-02-15:00": dt.datetime(2026, 11, 2, 14, tzinfo=dt.UTC),
}
ROWS = {"2026-11-02-14:00": range(1, 4), "2026-11-02-15:00": range(10, 15)}


def land(landing, key, ids, hour):
    date, clock = key.rsplit("-", 1)
    folder = landing / "clicks" / date
    folder.mkdir(parents=True, exist_ok=True)
    batch = pa.table(
        {
            "click_id": pa.array(list(ids), pa.int64()),
            "hour": pa.array([hour] * len(ids), pa.timestamp("us", tz="UTC")),
            "page": pa.array([f"/p{i}" for i in ids], pa.string()),
        }
    )
    pq.write_table(batch, folder / f"{clock[:2]}.parquet")


def materialize(feed, key, landing, lake, instance):
    return dg.materialize(
        [build_upsert_asset(feed)],
        partition_key=key,
        resources={
            "landing": LandingResource(uri=str(landing)),
            "lake": DeltaMergeResource(lake_uri=str(lake)),
        },
        instance=instance,
        raise_on_error=False,
    )


@pytest.fixture
def clicks(tmp_path):
    return write_feed(tmp_path / "defs", CLICKS)


def test_the_scope_of_an_hour_is_its_start_in_utc(clicks):
    for key, start in HOURS.items():
        assert partition_scope(clicks, key) == {"hour": start}


def test_two_hours_merge_into_their_own_partitions_with_counts_from_the_log(clicks, tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    for key, start in HOURS.items():
        land(landing, key, ROWS[key], start)

    with dg.instance_for_test() as instance:
        first = {key: materialize(clicks, key, landing, lake, instance) for key in HOURS}
        assert all(result.success for result in first.values())
        again = materialize(clicks, "2026-11-02-14:00", landing, lake, instance)
    assert again.success

    table = DeltaTable(str(lake / "clicks"))
    assert table.metadata().partition_columns == ["hour"]
    truth = table.to_pyarrow_table()  # ground truth: the rows themselves
    for key, start in HOURS.items():
        [materialization] = first[key].asset_materializations_for_node("clicks")
        metadata = materialization.metadata
        rows = pc.sum(pc.equal(truth["hour"], pa.scalar(start, pa.timestamp("us", tz="UTC"))))
        assert rows.as_py() == len(ROWS[key])
        assert metadata["upsert/rows_inserted"].value == len(ROWS[key])
        assert metadata["dagster/partition_row_count"].value == len(ROWS[key])
    # The second hour's merge read only its own (empty) partition: the first hour's file skipped.
    [second] = first["2026-11-02-15:00"].asset_materializations_for_node("clicks")
    assert second.metadata["delta/files_scanned"].value == 0
    assert second.metadata["delta/files_skipped"].value == 1
    # The re-run of the first hour: nothing new, the other hour's file pruned.
    [rerun] = again.asset_materializations_for_node("clicks")
    assert rerun.metadata["upsert/rows_inserted"].value == 0
    assert rerun.metadata["dagster/partition_row_count"].value == 3
    assert rerun.metadata["delta/files_scanned"].value == 1
    assert rerun.metadata["delta/files_skipped"].value == 1
    # Per-partition counts read from the add actions' timestamp partition values.
    by_label = partition_row_counts(table)
    assert sorted(by_label.values()) == [3, 5]
    assert len(by_label) == 2


def test_a_row_of_another_hour_is_refused_and_nothing_is_committed(clicks, tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    key = "2026-11-02-14:00"
    land(landing, key, ROWS[key], HOURS[key])
    with dg.instance_for_test() as instance:
        assert materialize(clicks, key, landing, lake, instance).success
        version = DeltaTable(str(lake / "clicks")).version()
        land(landing, key, [1, 2], HOURS["2026-11-02-15:00"])  # the next hour's rows
        result = materialize(clicks, key, landing, lake, instance)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert "PartitionMismatchError" in (error.cls_name or "") + str(error.cause)
    assert "2026-11-02 14:00:00" in error.message + str(error.cause)
    assert DeltaTable(str(lake / "clicks")).version() == version


def test_the_delta_merge_of_a_naive_hour_prunes_the_other_hour(tmp_path):
    uri = str(tmp_path / "naive")

    def batch(ids, hour):
        return pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "hour": pa.array([hour] * len(ids), pa.timestamp("us")),
            }
        )

    one, two = dt.datetime(2026, 11, 2, 13), dt.datetime(2026, 11, 2, 14)
    upsert(uri, batch([1, 2], one), keys=["id"], partition={"hour": one})
    upsert(uri, batch([3], two), keys=["id"], partition={"hour": two})
    result = upsert(uri, batch([1, 4], one), keys=["id"], partition={"hour": one})
    assert (result.inserted, result.files_scanned, result.files_skipped) == (1, 1, 1)
    assert result.after.partition_rows == 3
    [counts] = read_partition_row_counts(uri, [{"hour": two}])
    assert counts.partition_rows == 1
    with pytest.raises(PartitionMismatchError):
        upsert(uri, batch([5], two), keys=["id"], partition={"hour": one})


@pytest.mark.parametrize(
    ("cadence", "kind", "refused"),
    [
        ("hourly", "timestamp[us, tz=UTC]", False),
        ("hourly", "timestamp[us]", False),
        ("hourly", "date32", True),
        ("daily", "date32", False),
        ("daily", "timestamp[us, tz=UTC]", True),
    ],
)
def test_the_partition_column_type_follows_the_cadence(cadence, kind, refused):
    problems = cross_field_problems(
        name="clicks",
        columns={"id": "int64", "at": kind},
        column_names=["id", "at"],
        keys=["id"],
        partition_column="at",
        cadence=cadence,
        landing_path="clicks/{date}/{hour}.parquet" if cadence == "hourly" else None,
    )
    assert bool(problems) == refused
    if refused:
        assert ("timestamp[us, tz=UTC]" if cadence == "hourly" else "date32") in problems[0]


def test_sample_data_of_an_hourly_feed_holds_each_hours_start_and_merges(clicks, tmp_path):
    write_samples(tmp_path / "landing", clicks, partitions=2)
    landing = LandingResource(uri=str(tmp_path / "landing"))
    uri = str(tmp_path / "lake" / "clicks")
    keys = feed_partitions(clicks.partitions).get_partition_keys()[:2]
    for key in keys:
        batch = landing.read_batch(clicks, key)
        scope = partition_scope(clicks, key)
        assert set(batch["hour"].to_pylist()) == {scope["hour"]}
        assert upsert(uri, batch, keys=["click_id"], partition=scope).inserted == batch.num_rows
    assert len(partition_row_counts(DeltaTable(uri))) == 2


def test_a_naive_hour_is_the_utc_instant_so_the_repeated_hour_of_autumn_stays_two(tmp_path):
    text = CLICKS.replace("timestamp[us, tz=UTC]", "timestamp[us]").replace(
        "2026-11-01", "2026-10-24"
    )
    naive = write_feed(tmp_path / "defs", text)
    # 2026-10-25: Berlin's clocks go back at 03:00 CEST, so 02:00-03:00 happens twice.
    keys = [
        key
        for key in feed_partitions(naive.partitions).get_partition_keys()
        if key.startswith("2026-10-25-0")
    ]
    starts = [partition_scope(naive, key)["hour"] for key in keys]
    assert len(keys) == 11  # 00:00 to 09:00, with the 02:00 hour twice
    assert len(set(starts)) == len(keys)
    assert dt.datetime(2026, 10, 25, 0) in starts and dt.datetime(2026, 10, 25, 1) in starts
    assert all(start.tzinfo is None for start in starts)
