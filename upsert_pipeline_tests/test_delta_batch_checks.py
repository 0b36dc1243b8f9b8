"""Checks on a batch before anything is written: keys, control column, layouts, Delta types."""

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import (
    ColumnTypeError,
    DuplicateKeyError,
    MissingColumnError,
    NullValueError,
    upsert,
)
from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline_tests.conftest import DAY, order_batch

PARTITION = {"order_date": DAY}


def test_duplicate_keys_are_counted_and_sampled(table_uri):
    ids = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8]
    with pytest.raises(DuplicateKeyError, match=r"^7 key\(s\) occur more than once") as refused:
        upsert(table_uri, order_batch(ids), keys=["order_id"], partition=PARTITION)
    # A sample of five of them, from the first.
    assert str(refused.value).count("'order_id'") == 5
    assert "{'order_id': 1" in str(refused.value)
    assert not Path(table_uri).exists()


def test_composite_keys_are_unique_together_not_one_by_one(tmp_path):
    uri = str(tmp_path / "lines")
    lines = pa.table({"order_id": [1, 1, 2, 2], "line": [1, 2, 1, 2], "sku": list("abcd")})
    assert upsert(uri, lines, keys=["order_id", "line"]).inserted == 4

    repeated = pa.table({"order_id": [1, 1, 2], "line": [1, 1, 1], "sku": list("xyz")})
    with pytest.raises(DuplicateKeyError, match=r"^1 key\(s\).*'line': 1"):
        upsert(uri, repeated, keys=["order_id", "line"])


def test_a_required_column_is_checked_before_the_first_write(table_uri):
    batch = order_batch([1]).drop_columns(["status"])
    with pytest.raises(MissingColumnError, match="status"):
        upsert(
            table_uri,
            batch,
            keys=["order_id"],
            partition=PARTITION,
            required_columns=ORDERS.schema.names,
        )
    assert not Path(table_uri).exists()


def test_an_op_column_without_tombstones_counts_none(table_uri):
    upsert(table_uri, order_batch([1, 2]), keys=["order_id"], partition=PARTITION)
    ops = pa.array(["U", None, "U"], pa.string())
    batch = order_batch([1, 2, 3], status="paid").append_column(OP_COLUMN, ops)

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    assert (result.tombstones, result.inserted, result.updated) == (0, 1, 2)


@pytest.mark.parametrize("layout", [pl.String, pl.Categorical], ids=["string", "categorical"])
def test_a_polars_op_column_is_a_control_column(table_uri, layout):
    upsert(table_uri, order_batch([1, 2]), keys=["order_id"], partition=PARTITION)
    batch = pl.from_arrow(order_batch([1, 3])).with_columns(
        pl.Series(OP_COLUMN, [DELETE_OP, None], dtype=pl.String)
    )
    if layout is pl.Categorical:
        with pytest.raises(ColumnTypeError, match=OP_COLUMN):
            upsert(
                table_uri,
                batch.with_columns(pl.col(OP_COLUMN).cast(pl.Categorical)),
                keys=["order_id"],
                partition=PARTITION,
            )
        return

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    assert (result.tombstones, result.deleted, result.inserted) == (1, 1, 1)
    assert OP_COLUMN not in pl.read_delta(table_uri).columns


@pytest.mark.parametrize("op_type", [pa.large_string(), pa.string_view()], ids=str)
def test_an_op_column_in_any_string_layout_is_accepted(table_uri, op_type):
    upsert(table_uri, order_batch([1]), keys=["order_id"], partition=PARTITION)
    batch = order_batch([1]).append_column(OP_COLUMN, pa.array([DELETE_OP], op_type))
    assert upsert(table_uri, batch, keys=["order_id"], partition=PARTITION).deleted == 1


def test_binary_in_a_large_layout_is_stored_as_binary(tmp_path):
    uri = str(tmp_path / "blobs")
    batch = pa.table({"id": [1, 2], "blob": pa.array([b"a", None], pa.large_binary())})
    assert upsert(uri, batch, keys=["id"]).inserted == 2
    again = pa.table({"id": [2], "blob": pa.array([b"b"], pa.binary_view())})
    assert upsert(uri, again, keys=["id"]).updated == 1
    assert pl.read_delta(uri).sort("id")["blob"].to_list() == [b"a", b"b"]


def test_a_column_delta_lake_has_no_type_for_is_named_beside_good_ones(tmp_path):
    uri = str(tmp_path / "waits")
    batch = pa.table({"id": [1], "wait": pa.array([5], pa.duration("s")), "note": ["x"], "n": [1]})
    with pytest.raises(ColumnTypeError, match=r"wait: duration\[s\] \(no Delta Lake type\)"):
        upsert(uri, batch, keys=["id"])
    assert not Path(uri).exists()


def test_a_null_in_a_column_the_table_declares_not_null_is_refused_by_name(tmp_path):
    uri = str(tmp_path / "readings")
    schema = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.int64(), nullable=False)]
    )
    upsert(uri, pa.table({"id": [1], "v": [1]}, schema=schema), keys=["id"])
    version = DeltaTable(uri).version()

    # The batch's own schema allows nulls; the table's does not.
    batch = pa.table({"id": [2, 3], "v": [None, 4]})
    with pytest.raises(NullValueError, match=r"v \(1\)"):
        upsert(uri, batch, keys=["id"])

    assert DeltaTable(uri).version() == version


def test_a_first_batch_with_an_op_column_creates_a_table_without_it(table_uri):
    ops = pa.array([None, DELETE_OP], pa.string())
    result = upsert(
        table_uri,
        order_batch([1, 2]).append_column(OP_COLUMN, ops),
        keys=["order_id"],
        partition=PARTITION,
    )
    assert (result.inserted, result.tombstones, result.table_rows) == (1, 1, 1)
    assert OP_COLUMN not in DeltaTable(table_uri).schema().to_arrow().names
