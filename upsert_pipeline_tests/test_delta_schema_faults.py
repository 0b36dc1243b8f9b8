"""Schemas that broke the upsert with a raw error: a snapshot load into a table with a NOT NULL
non-key column, and two columns whose names differ only in case. Each is a named error or works,
and a refused batch leaves the table's version where it was."""

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import DuplicateColumnError, NullValueError, upsert
from upsert_pipeline_tests.conftest import DAY, order_batch, scan_rows

PARTITION = {"order_date": DAY}


def _not_null_status(table_uri: str) -> pa.Schema:
    """A table whose non-key column ``status`` is declared NOT NULL (as Spark writes them)."""
    batch = order_batch(range(10))
    schema = pa.schema(
        [f.with_nullable(f.name not in {"order_id", "order_date", "status"}) for f in batch.schema]
    )
    DeltaTable.create(table_uri, schema, partition_by=["order_date"])
    upsert(table_uri, batch.cast(schema), keys=["order_id"], partition=PARTITION)
    return schema


def test_a_snapshot_load_into_a_table_with_a_not_null_column_deletes_the_absent_rows(table_uri):
    schema = _not_null_status(table_uri)

    result = upsert(
        table_uri,
        order_batch(range(5), status="paid").cast(schema),
        keys=["order_id"],
        partition=PARTITION,
        snapshot=True,
    )

    assert (result.deleted, result.updated, result.partition_rows) == (5, 5, 5)
    assert scan_rows(table_uri, DAY) == 5
    assert not pa.schema(DeltaTable(table_uri).schema().to_arrow()).field("status").nullable


def test_a_null_in_that_column_is_still_refused_by_name(table_uri):
    _not_null_status(table_uri)
    version = DeltaTable(table_uri).version()
    with pytest.raises(NullValueError, match="status"):
        upsert(
            table_uri, order_batch(range(3), status=None), keys=["order_id"], partition=PARTITION,
            snapshot=True,
        )  # fmt: skip
    assert DeltaTable(table_uri).version() == version


@pytest.mark.parametrize("evolve_schema", [False, True])
def test_columns_differing_only_in_case_are_a_named_error_and_change_nothing(
    table_uri, evolve_schema
):
    upsert(table_uri, order_batch(range(10)), keys=["order_id"], partition=PARTITION)
    version = DeltaTable(table_uri).version()
    batch = order_batch(range(10)).append_column("Status", pa.array(["x"] * 10))

    with pytest.raises(DuplicateColumnError, match=r"\['Status', 'status'\]"):
        upsert(
            table_uri, batch, keys=["order_id"], partition=PARTITION, evolve_schema=evolve_schema
        )

    assert DeltaTable(table_uri).version() == version


def test_a_new_column_differing_from_a_table_column_only_in_case_is_refused(table_uri):
    upsert(table_uri, order_batch(range(10)), keys=["order_id"], partition=PARTITION)
    version = DeltaTable(table_uri).version()
    batch = order_batch(range(10)).rename_columns(
        [name if name != "status" else "STATUS" for name in order_batch([0]).column_names]
    )
    with pytest.raises(DuplicateColumnError, match="STATUS"):
        upsert(table_uri, batch, keys=["order_id"], partition=PARTITION, evolve_schema=True)
    assert DeltaTable(table_uri).version() == version


def test_a_first_batch_with_such_columns_creates_no_table(tmp_path):
    uri = str(tmp_path / "orders")
    batch = order_batch(range(3)).append_column("STATUS", pa.array(["x"] * 3))
    with pytest.raises(DuplicateColumnError):
        upsert(uri, batch, keys=["order_id"], partition={"order_date": dt.date(2026, 11, 2)})
    assert not (tmp_path / "orders").exists()
