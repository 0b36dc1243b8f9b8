"""Merge scopes beyond one key and one partition column, and partition values refused by name."""

import datetime as dt

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import (
    InvalidPartitionValueError,
    MissingColumnError,
    PartitionMismatchError,
    upsert,
)
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch

PARTITION = {"order_date": DAY}


def _lines(region: str, day: str, rows: list[tuple[int, int, str]]) -> pa.Table:
    """Order lines keyed by (order_id, line), partitioned by (region, day)."""
    return pa.table(
        {
            "order_id": [row[0] for row in rows],
            "line": [row[1] for row in rows],
            "region": [region] * len(rows),
            "day": [day] * len(rows),
            "sku": [row[2] for row in rows],
        }
    )


def test_a_snapshot_with_composite_keys_and_partition_columns_deletes_only_its_absent_rows(
    tmp_path,
):
    uri = str(tmp_path / "lines")
    keys = ["order_id", "line"]
    scope = {"region": "eu", "day": "2026-11-02"}
    rows = [(1, 1, "a"), (1, 2, "b"), (2, 1, "c")]
    upsert(uri, _lines("eu", "2026-11-02", rows), keys=keys, partition=scope)
    # The same keys in the same region on another day, and on the same day in another region.
    for other in ({"region": "eu", "day": "2026-11-03"}, {"region": "us", "day": "2026-11-02"}):
        upsert(uri, _lines(other["region"], other["day"], rows), keys=keys, partition=other)

    # (1, 2) is absent: only it is deleted; (2, 1) changes; (2, 2) is new.
    snapshot = _lines("eu", "2026-11-02", [(1, 1, "a"), (2, 1, "C"), (2, 2, "d")])
    result = upsert(uri, snapshot, keys=keys, partition=scope, snapshot=True)

    assert (result.inserted, result.updated, result.deleted, result.unchanged) == (1, 1, 1, 1)
    assert (result.source_rows, result.partition_rows, result.table_rows) == (3, 3, 9)
    eu = pl.read_delta(uri).filter((pl.col("region") == "eu") & (pl.col("day") == "2026-11-02"))
    assert sorted(eu.select("order_id", "line", "sku").rows()) == [
        (1, 1, "a"),
        (2, 1, "C"),
        (2, 2, "d"),
    ]


@pytest.mark.parametrize(
    "value",
    [True, dt.datetime(2026, 11, 2, tzinfo=dt.UTC), "", 2.5, None],
    ids=["bool", "datetime", "empty", "float", "none"],
)
def test_a_partition_value_that_cannot_be_a_literal_is_refused_by_name(table_uri, value):
    upsert(table_uri, order_batch([1]), keys=["order_id"], partition=PARTITION)
    version = DeltaTable(table_uri).version()

    with pytest.raises(InvalidPartitionValueError, match="order_date"):
        upsert(table_uri, order_batch([2]), keys=["order_id"], partition={"order_date": value})

    assert DeltaTable(table_uri).version() == version


def test_a_row_outside_the_partition_is_named(table_uri):
    batch = pa.concat_tables([order_batch([1]), order_batch([2, 3], day=OTHER_DAY)])
    with pytest.raises(PartitionMismatchError, match=r"2 row\(s\).*2026-11-03"):
        upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)


def test_a_batch_without_the_partition_column_is_refused_by_name(table_uri):
    with pytest.raises(MissingColumnError, match="order_date"):
        upsert(
            table_uri,
            order_batch([1]).drop_columns(["order_date"]),
            keys=["order_id"],
            partition=PARTITION,
        )
