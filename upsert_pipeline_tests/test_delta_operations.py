"""Tombstones, snapshot loads and schema evolution: counted from the commit, refused by name."""

import datetime as dt

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import (
    ColumnTypeError,
    EmptySnapshotError,
    MissingColumnError,
    SnapshotScopeError,
    TombstoneInSnapshotError,
    UnexpectedColumnError,
    upsert,
)
from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.metadata import upsert_metadata
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows

PARTITION = {"order_date": DAY}


def _with_op(batch: pa.Table, ops: list[str | None]) -> pa.Table:
    return batch.append_column(pa.field(OP_COLUMN, pa.string()), pa.array(ops, pa.string()))


# tombstones ---------------------------------------------------------------------------------


def test_tombstones_delete_their_keys_and_count_missing_ones_as_unchanged(two_days):
    batch = _with_op(order_batch([1, 2, 6, 99], status="paid"), [DELETE_OP, None, "U", DELETE_OP])

    result = upsert(two_days, batch, keys=["order_id"], partition=PARTITION)

    # 1 deleted, 2 updated, 6 inserted, 99 (no such key) unchanged.
    assert (result.deleted, result.updated, result.inserted, result.unchanged) == (1, 1, 1, 1)
    assert result.tombstones == 2
    assert result.partition_rows == scan_rows(two_days, DAY) == 5
    assert result.before.partition_rows + result.inserted - result.deleted == result.partition_rows
    table = pl.read_delta(two_days)
    assert OP_COLUMN not in table.columns
    assert sorted(table.filter(pl.col("order_date") == DAY)["order_id"]) == [2, 3, 4, 5, 6]
    assert scan_rows(two_days, OTHER_DAY) == 3


def test_a_tombstone_on_another_partition_never_deletes_there(two_days):
    # order 1 exists on OTHER_DAY too; a tombstone loaded into DAY deletes only DAY's order 1.
    upsert(
        two_days, _with_op(order_batch([1]), [DELETE_OP]), keys=["order_id"], partition=PARTITION
    )
    assert sorted(
        pl.read_delta(two_days).filter(pl.col("order_date") == OTHER_DAY)["order_id"]
    ) == [
        1,
        2,
        3,
    ]


def test_an_untyped_all_null_op_column_is_accepted(two_days):
    batch = order_batch([7]).append_column(OP_COLUMN, pa.nulls(1))
    assert upsert(two_days, batch, keys=["order_id"], partition=PARTITION).inserted == 1


def test_an_op_column_that_is_not_a_string_is_refused(two_days):
    version = DeltaTable(two_days).version()
    batch = order_batch([7]).append_column(OP_COLUMN, pa.array([1]))
    with pytest.raises(ColumnTypeError, match=OP_COLUMN):
        upsert(two_days, batch, keys=["order_id"], partition=PARTITION)
    assert DeltaTable(two_days).version() == version


def test_the_same_tombstones_again_change_nothing(two_days):
    batch = _with_op(order_batch([1, 2]), [DELETE_OP, None])
    upsert(two_days, batch, keys=["order_id"], partition=PARTITION, idempotent=False)
    again = upsert(two_days, batch, keys=["order_id"], partition=PARTITION, idempotent=False)
    assert (again.deleted, again.unchanged, again.committed) == (0, 2, False)


# snapshots ----------------------------------------------------------------------------------


def _add_actions(table_uri: str, day: dt.date) -> list[dict[str, object]]:
    actions = pa.table(DeltaTable(table_uri).get_add_actions(flatten=True)).to_pylist()
    return sorted(
        (action for action in actions if action["partition.order_date"] == day),
        key=lambda action: str(action["path"]),
    )


def test_a_snapshot_deletes_the_partitions_absent_keys_and_touches_no_other_partition(two_days):
    other_before = _add_actions(two_days, OTHER_DAY)

    result = upsert(
        two_days,
        order_batch([2, 3, 8], status="paid"),
        keys=["order_id"],
        partition=PARTITION,
        snapshot=True,
    )

    # 1, 4, 5 absent: deleted; 2, 3 changed; 8 new.
    assert (result.deleted, result.updated, result.inserted, result.unchanged) == (3, 2, 1, 0)
    assert result.snapshot
    assert result.partition_rows == scan_rows(two_days, DAY) == 3
    assert _add_actions(two_days, OTHER_DAY) == other_before
    assert result.table_rows == 6


def test_a_snapshot_counts_rows_it_leaves_as_they_were_as_unchanged(two_days):
    result = upsert(
        two_days, order_batch([1, 2, 3]), keys=["order_id"], partition=PARTITION, snapshot=True
    )
    assert (result.deleted, result.updated, result.inserted, result.unchanged) == (2, 0, 0, 3)


def test_an_empty_snapshot_is_refused_unless_allowed(two_days):
    empty = order_batch([])
    version = DeltaTable(two_days).version()
    with pytest.raises(EmptySnapshotError):
        upsert(two_days, empty, keys=["order_id"], partition=PARTITION, snapshot=True)
    assert DeltaTable(two_days).version() == version

    result = upsert(
        two_days,
        empty,
        keys=["order_id"],
        partition=PARTITION,
        snapshot=True,
        allow_empty_snapshot=True,
    )
    assert (result.deleted, result.partition_rows, result.table_rows) == (5, 0, 3)
    assert scan_rows(two_days, OTHER_DAY) == 3


@pytest.mark.parametrize(
    ("error", "batch", "partition"),
    [
        (SnapshotScopeError, order_batch([1]), None),
        (TombstoneInSnapshotError, _with_op(order_batch([1, 2]), [None, DELETE_OP]), PARTITION),
    ],
)
def test_unsafe_snapshots_are_refused_and_change_nothing(two_days, error, batch, partition):
    version = DeltaTable(two_days).version()
    with pytest.raises(error):
        upsert(two_days, batch, keys=["order_id"], partition=partition, snapshot=True)
    assert DeltaTable(two_days).version() == version
    assert scan_rows(two_days) == 8


# schema evolution ---------------------------------------------------------------------------


def _with_channel(batch: pa.Table, values: list[str | None]) -> pa.Table:
    return batch.append_column(pa.field("channel", pa.string()), pa.array(values, pa.string()))


def test_a_new_nullable_column_is_added_and_counted(two_days):
    batch = _with_channel(order_batch([1, 2, 9]), ["web", None, "shop"])

    result = upsert(two_days, batch, keys=["order_id"], partition=PARTITION, evolve_schema=True)

    # 1 gains a value (updated), 2 stays null (unchanged), 9 is new.
    assert (result.updated, result.unchanged, result.inserted) == (1, 1, 1)
    assert result.columns_added == ("channel",)
    assert "channel" in result.schema.names
    table = pl.read_delta(two_days)
    assert table.filter(pl.col("order_date") == OTHER_DAY)["channel"].null_count() == 3
    metadata = upsert_metadata(result, table_name="orders", schema=ORDERS.schema)
    assert metadata["delta/columns_added"].value == ["channel"]
    assert "channel" in [c.name for c in metadata["dagster/column_schema"].schema.columns]

    later = upsert(
        two_days,
        _with_channel(order_batch([1]), ["shop"]),
        keys=["order_id"],
        partition=PARTITION,
        evolve_schema=True,
    )
    assert (later.updated, later.columns_added) == (1, ())


@pytest.mark.parametrize(
    ("error", "make_batch", "evolve"),
    [
        (UnexpectedColumnError, lambda: _with_channel(order_batch([1]), ["web"]), False),
        (
            ColumnTypeError,
            lambda: order_batch([1]).set_column(3, "status", pa.array([1], pa.int64())),
            True,
        ),
        (ColumnTypeError, lambda: order_batch([1]).append_column("channel", pa.nulls(1)), True),
        (MissingColumnError, lambda: order_batch([1]).drop_columns(["order_id"]), True),
        (MissingColumnError, lambda: order_batch([1]).drop_columns(["order_date"]), True),
    ],
    ids=["new-column-without-evolution", "retyped", "untyped-new", "no-key", "no-partition"],
)
def test_schema_changes_that_cannot_be_merged_are_refused_by_name(
    two_days, error, make_batch, evolve
):
    version = DeltaTable(two_days).version()
    with pytest.raises(error):
        upsert(two_days, make_batch(), keys=["order_id"], partition=PARTITION, evolve_schema=evolve)
    assert DeltaTable(two_days).version() == version
    assert "channel" not in DeltaTable(two_days).schema().to_arrow().names


# backfills after schema evolution -------------------------------------------------------------


@pytest.fixture
def gained_channel(two_days):
    """``two_days`` after a batch of DAY brought the new column ``channel``."""
    batch = _with_channel(order_batch([1, 2]), ["web", "shop"])
    upsert(two_days, batch, keys=["order_id"], partition=PARTITION, evolve_schema=True)
    return two_days


def test_a_backfill_without_a_gained_column_loads_with_nulls_there(gained_channel):
    backfill = order_batch([4, 5, 6], day=OTHER_DAY, status="late")

    result = upsert(
        gained_channel,
        backfill,
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
        evolve_schema=True,
        required_columns=ORDERS.schema.names,
    )

    assert (result.inserted, result.updated, result.columns_filled) == (3, 0, ("channel",))
    day = pl.read_delta(gained_channel).filter(pl.col("order_date") == OTHER_DAY)
    assert day.height == result.partition_rows == 6
    assert day["channel"].null_count() == 6
    assert set(day.filter(pl.col("order_id") >= 4)["status"]) == {"late"}


def test_a_rerun_without_the_gained_column_converges_its_rows_to_null(gained_channel):
    # The day's batch as it landed before the feed gained the column: rows 1 and 2 lose it.
    result = upsert(
        gained_channel,
        order_batch([1, 2, 3]),
        keys=["order_id"],
        partition=PARTITION,
        evolve_schema=True,
    )

    assert (result.updated, result.unchanged, result.inserted) == (2, 1, 0)
    assert pl.read_delta(gained_channel)["channel"].null_count() == scan_rows(gained_channel) == 8


@pytest.mark.parametrize(
    ("missing", "options"),
    [
        ("status", {"evolve_schema": True, "required_columns": ORDERS.schema.names}),
        ("order_id", {"evolve_schema": True}),
        ("order_date", {"evolve_schema": True}),
        ("channel", {"evolve_schema": False}),
    ],
    ids=["declared", "key", "partition", "gained-but-no-evolution"],
)
def test_a_batch_lacking_a_column_that_is_not_gained_is_refused(gained_channel, missing, options):
    version = DeltaTable(gained_channel).version()
    batch = order_batch([1])
    if missing != "channel":
        batch = _with_channel(batch, ["web"]).drop_columns([missing])

    with pytest.raises(MissingColumnError, match=missing):
        upsert(gained_channel, batch, keys=["order_id"], partition=PARTITION, **options)
    assert DeltaTable(gained_channel).version() == version


# snapshot loads stay in their partition -------------------------------------------------------


def test_a_snapshot_scans_and_rewrites_only_its_partitions_files(table_uri):
    days = [DAY + dt.timedelta(days=n) for n in range(5)]
    for round_ in range(2):  # two files in every partition
        for n, day in enumerate(days):
            ids = range(100 * n + 10 * round_, 100 * n + 10 * round_ + 10)
            upsert(
                table_uri,
                order_batch(ids, day=day),
                keys=["order_id"],
                partition={"order_date": day},
            )
    others_before = [_add_actions(table_uri, day) for day in days[1:]]

    result = upsert(
        table_uri,
        order_batch(range(5, 25), status="paid"),  # 0-4 absent, 5-19 changed, 20-24 new
        keys=["order_id"],
        partition=PARTITION,
        snapshot=True,
    )

    assert (result.deleted, result.updated, result.inserted, result.unchanged) == (5, 15, 5, 0)
    assert result.source_rows == 20
    assert result.before.partition_files == 2 and result.before.table_files == 10
    assert (result.files_scanned, result.files_skipped) == (2, 8)
    assert [_add_actions(table_uri, day) for day in days[1:]] == others_before
    assert result.partition_rows == scan_rows(table_uri, DAY) == 20
    assert result.table_rows == scan_rows(table_uri) == 100


def test_a_snapshot_load_twice_changes_nothing_the_second_time(two_days):
    batch = order_batch([2, 3, 8], status="paid")
    upsert(two_days, batch, keys=["order_id"], partition=PARTITION, snapshot=True)

    again = upsert(two_days, batch, keys=["order_id"], partition=PARTITION, snapshot=True)

    assert (again.deleted, again.updated, again.inserted, again.unchanged) == (0, 0, 0, 3)
    assert not again.committed
