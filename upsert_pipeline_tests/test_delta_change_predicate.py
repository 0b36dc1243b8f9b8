"""The merge's change predicate: a matched row is updated exactly when a value really changed.

Each test seeds the partition with ``write_deltalake`` (no pipeline transaction in the log) or
with a different batch than the one it checks, so no record of an applied batch can stand in for
the merge: the counts below are the change predicate's own. A predicate that calls every matched
row changed (``true``, or ``when_matched_update_all()``) reports updates and writes a version
here; one that compares with ``=``/``<>`` misses NULL -> value and value -> NULL.
"""

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, UPDATED_AT

PARTITION = {"order_date": DAY}


def _orders(rows: list[dict[str, Any]], *, day: dt.date = DAY) -> pa.Table:
    """Orders from ``{order_id, ...}`` dicts; unnamed columns take one default value."""
    defaults = {
        "order_date": day,
        "customer_id": 7,
        "status": "placed",
        "amount": Decimal("9.99"),
        "updated_at": UPDATED_AT,
    }
    return pa.Table.from_pylist([defaults | row for row in rows], schema=ORDERS.schema)


def _seed(table_uri: str, batch: pa.Table) -> int:
    """Writes ``batch`` as another writer would (plain delta-rs, no transaction); its version."""
    write_deltalake(table_uri, batch, partition_by=["order_date"], mode="append")
    return DeltaTable(table_uri).version()


def _rows(table_uri: str) -> list[dict[str, Any]]:
    return pl.read_delta(table_uri).sort("order_date", "order_id").to_dicts()


def _counts(result: Any) -> tuple[int, int, int, int]:
    return (result.inserted, result.updated, result.deleted, result.unchanged)


def test_an_identical_batch_updates_nothing_and_writes_no_version(table_uri):
    batch = _orders([{"order_id": i} for i in range(1, 9)])
    version = _seed(table_uri, batch)
    stored = _rows(table_uri)

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    assert _counts(result) == (0, 0, 0, 8)
    assert (result.read_version, result.version) == (version, version)
    assert not result.committed
    assert (result.files_added, result.files_removed) == (0, 0)
    assert DeltaTable(table_uri).version() == version
    assert _rows(table_uri) == stored


def test_the_same_batch_sent_twice_through_upsert_commits_once(table_uri):
    # Idempotency off: nothing but the change predicate can tell the second send changes nothing.
    batch = _orders([{"order_id": i, "status": None} for i in range(1, 6)])
    first = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION, idempotent=False)

    again = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION, idempotent=False)

    assert _counts(first) == (5, 0, 0, 0)
    assert _counts(again) == (0, 0, 0, 5)
    assert again.version == first.version == DeltaTable(table_uri).version()
    assert not again.committed


def test_a_partial_resend_counts_exactly_the_rows_that_changed(table_uri):
    _seed(table_uri, _orders([{"order_id": i} for i in range(1, 9)]))
    changes: dict[int, dict[str, Any]] = {
        1: {"status": "paid"},
        2: {"amount": Decimal("10.00")},
        3: {"customer_id": 8},
        4: {"updated_at": UPDATED_AT + dt.timedelta(seconds=1)},
    }
    batch = _orders([{"order_id": i, **changes.get(i, {})} for i in range(1, 11)])

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    # 1-4 changed in one column each, 5-8 are as stored, 9 and 10 are new.
    assert _counts(result) == (2, 4, 0, 4)
    assert result.version == result.read_version + 1
    assert (result.partition_rows, result.before.partition_rows) == (10, 8)
    assert _rows(table_uri) == batch.to_pylist()


@pytest.mark.parametrize("name", ["customer_id", "status", "amount", "updated_at"])
@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        (None, None, False),
        (None, "value", True),
        ("value", None, True),
        ("value", "value", False),
        ("value", "other", True),
    ],
    ids=["null-null", "null-value", "value-null", "same", "different"],
)
def test_nulls_compare_as_values(table_uri, name, old, new, changed):
    values = {
        "customer_id": {"value": 1, "other": 2},
        "status": {"value": "paid", "other": "placed"},
        "amount": {"value": Decimal("1.00"), "other": Decimal("2.50")},
        "updated_at": {"value": UPDATED_AT, "other": UPDATED_AT + dt.timedelta(hours=1)},
    }[name]
    _seed(table_uri, _orders([{"order_id": 1, name: values.get(old)}, {"order_id": 2}]))
    batch = _orders([{"order_id": 1, name: values.get(new)}, {"order_id": 2}])

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    assert _counts(result) == (0, int(changed), 0, 2 - int(changed))
    assert result.committed == changed
    assert _rows(table_uri) == batch.to_pylist()


def test_a_resend_with_an_op_column_updates_only_what_changed(table_uri):
    _seed(table_uri, _orders([{"order_id": i} for i in range(1, 6)]))
    batch = _orders([{"order_id": i} for i in range(1, 6)] + [{"order_id": 9}])
    batch = batch.set_column(3, "status", pa.array(["paid", *["placed"] * 5]))
    ops = ["U", None, "U", None, DELETE_OP, DELETE_OP]
    batch = batch.append_column(pa.field(OP_COLUMN, pa.string()), pa.array(ops, pa.string()))

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    # 1 changed; 2-4 are as stored whatever their _op; 5 is deleted; 9 is a tombstone for no row.
    assert _counts(result) == (0, 1, 1, 4)
    assert [(row["order_id"], row["status"]) for row in _rows(table_uri)] == [
        (1, "paid"),
        (2, "placed"),
        (3, "placed"),
        (4, "placed"),
    ]


def test_an_identical_snapshot_changes_nothing(table_uri):
    batch = _orders([{"order_id": i} for i in range(1, 6)])
    version = _seed(table_uri, batch)
    _seed(table_uri, _orders([{"order_id": 1}], day=OTHER_DAY))

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION, snapshot=True)

    assert _counts(result) == (0, 0, 0, 5)
    assert not result.committed
    assert DeltaTable(table_uri).version() == version + 1
    assert result.table_rows == 6


def _with_channel(batch: pa.Table, values: list[str | None]) -> pa.Table:
    return batch.append_column(pa.field("channel", pa.string()), pa.array(values, pa.string()))


def test_a_new_column_that_is_null_everywhere_changes_no_matched_row(table_uri):
    batch = _orders([{"order_id": i} for i in range(1, 5)])
    _seed(table_uri, batch)

    result = upsert(
        table_uri,
        _with_channel(batch, [None] * 4),
        keys=["order_id"],
        partition=PARTITION,
        evolve_schema=True,
    )

    # A new column's value in the target is null: a null source value is no change.
    assert _counts(result) == (0, 0, 0, 4)
    assert result.partition_rows == 4
    assert _rows(table_uri) == _with_channel(batch, [None] * 4).to_pylist()


def test_a_new_column_with_values_updates_only_the_rows_that_have_one(table_uri):
    batch = _orders([{"order_id": i} for i in range(1, 5)])
    _seed(table_uri, batch)

    result = upsert(
        table_uri,
        _with_channel(batch, ["web", None, "shop", None]),
        keys=["order_id"],
        partition=PARTITION,
        evolve_schema=True,
    )

    assert _counts(result) == (0, 2, 0, 2)
    assert result.columns_added == ("channel",)
    assert [row["channel"] for row in _rows(table_uri)] == ["web", None, "shop", None]
