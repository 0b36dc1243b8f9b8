"""Differential test: every count the upsert reports equals what a polars scan of the table says.

Random sequences of batches over a few partitions mix inserts, real changes, identical rows and
null transitions (NULL -> value, value -> NULL, NULL -> NULL). Before and after each upsert the
table is scanned, and the expected counts are derived per key from the two scans.
"""

import datetime as dt
import tempfile
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upsert_pipeline.delta import upsert
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.metadata import upsert_metadata

DAYS = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)]
VALUE_COLUMNS = ("customer_id", "status", "amount")
UPDATED_AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

rows = st.fixed_dictionaries(
    {
        "order_id": st.integers(0, 12),
        "customer_id": st.sampled_from([None, 1, 2]),
        "status": st.sampled_from([None, "placed", "paid"]),
        "amount": st.sampled_from([None, Decimal("1.00"), Decimal("2.50")]),
    }
)
batches = st.tuples(
    st.sampled_from(DAYS), st.lists(rows, max_size=10, unique_by=lambda row: row["order_id"])
)


def _batch(day: dt.date, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{**row, "order_date": day, "updated_at": UPDATED_AT} for row in rows], schema=ORDERS.schema
    )


def _scan(uri: str, day: dt.date) -> tuple[dict[int, tuple[Any, ...]], int]:
    """Rows of one partition by key, and the whole table's row count, read from the data."""
    try:
        frame = pl.read_delta(uri)
    except Exception:  # the table does not exist yet
        return {}, 0
    partition = frame.filter(pl.col("order_date") == day)
    by_key = {
        row["order_id"]: tuple(row[column] for column in VALUE_COLUMNS)
        for row in partition.to_dicts()
    }
    return by_key, frame.height


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(batches, min_size=1, max_size=6))
def test_every_count_equals_a_scan(sequence):
    with tempfile.TemporaryDirectory() as folder:
        uri = f"{folder}/orders"
        for day, rows in sequence:
            before, _ = _scan(uri, day)
            result = upsert(
                uri, _batch(day, rows), keys=["order_id"], partition={"order_date": day}
            )
            after, table_rows = _scan(uri, day)

            incoming = {row["order_id"]: tuple(row[c] for c in VALUE_COLUMNS) for row in rows}
            inserted = sum(key not in before for key in incoming)
            updated = sum(key in before and before[key] != value for key, value in incoming.items())
            expected = {
                "source_rows": len(rows),
                "inserted": inserted,
                "updated": updated,
                "deleted": 0,
                "unchanged": len(rows) - inserted - updated,
                "partition_rows": len(after),
                "table_rows": table_rows,
            }
            actual = {name: getattr(result, name) for name in expected}
            assert actual == expected
            assert after == {**before, **incoming}
            assert result.committed == (inserted + updated > 0)

            metadata = upsert_metadata(result, table_name="orders", schema=ORDERS.schema)
            assert {
                "source_rows": metadata["upsert/source_rows"].value,
                "inserted": metadata["upsert/rows_inserted"].value,
                "updated": metadata["upsert/rows_updated"].value,
                "deleted": metadata["upsert/rows_deleted"].value,
                "unchanged": metadata["upsert/rows_unchanged"].value,
                "partition_rows": metadata["dagster/partition_row_count"].value,
                "table_rows": metadata["dagster/row_count"].value,
            } == expected
