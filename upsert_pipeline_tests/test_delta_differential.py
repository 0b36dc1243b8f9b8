"""Differential test: every count the upsert reports equals what a polars scan of the table says.

Random sequences of batches over a few partitions mix inserts, real changes, identical rows and
null transitions (NULL -> value, value -> NULL, NULL -> NULL), and re-send earlier batches in
another row order (a retried run): those must be recognised as already applied exactly when they
are the last batch that changed their partition. After each upsert the table is scanned, and the
expected counts are derived per key from that scan and the previous one (nothing but the upserts
writes the table, so the previous step's scan is this step's "before").

Sequences: 1000 when ``CI`` is set (profile ``differential-ci``), 150 otherwise
(``differential``); ``HYPOTHESIS_PROFILE`` picks either explicitly.
"""

import datetime as dt
import os
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

_PROFILE_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("differential-ci", max_examples=1000, **_PROFILE_SETTINGS)
settings.register_profile("differential", max_examples=150, **_PROFILE_SETTINGS)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or (
    "differential-ci" if os.environ.get("CI") else "differential"
)

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
# An integer re-sends an earlier batch of the sequence (that index, modulo), rows reversed.
steps = st.lists(st.one_of(batches, batches, st.integers(0, 7)), min_size=1, max_size=7)


def _batch(day: dt.date, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{**row, "order_date": day, "updated_at": UPDATED_AT} for row in rows], schema=ORDERS.schema
    )


def _scan(uri: str) -> dict[dt.date, dict[int, tuple[Any, ...]]]:
    """Every partition's rows by key, read from the data."""
    if not os.path.isdir(os.path.join(uri, "_delta_log")):
        return {}
    scanned: dict[dt.date, dict[int, tuple[Any, ...]]] = {}
    for row in pl.read_delta(uri).to_dicts():
        values = tuple(row[column] for column in VALUE_COLUMNS)
        scanned.setdefault(row["order_date"], {})[row["order_id"]] = values
    return scanned


def _rows_of(rows: list[dict[str, Any]]) -> frozenset[tuple[Any, ...]]:
    return frozenset((row["order_id"], *(row[c] for c in VALUE_COLUMNS)) for row in rows)


@settings(settings.get_profile(PROFILE))
@given(steps)
def test_every_count_equals_a_scan(sequence):
    sent: list[tuple[dt.date, list[dict[str, Any]]]] = []
    last_committed: dict[dt.date, frozenset[tuple[Any, ...]]] = {}
    commits: dict[dt.date, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        uri = f"{folder}/orders"
        scanned: dict[dt.date, dict[int, tuple[Any, ...]]] = {}
        for step in sequence:
            if isinstance(step, int):
                if not sent:
                    continue
                day, rows = sent[step % len(sent)]
                rows = rows[::-1]
            else:
                day, rows = step
            sent.append((day, rows))
            before = scanned.get(day, {})

            result = upsert(
                uri, _batch(day, rows), keys=["order_id"], partition={"order_date": day}
            )
            scanned = _scan(uri)
            after = scanned.get(day, {})

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
                "table_rows": sum(len(partition) for partition in scanned.values()),
            }
            actual = {name: getattr(result, name) for name in expected}
            assert actual == expected
            assert after == {**before, **incoming}
            assert result.committed == (inserted + updated > 0)
            assert result.before.partition_rows == len(before)
            assert result.commit_attempts == 1

            # Already applied exactly when it is the last batch that changed its partition.
            assert result.already_applied == (last_committed.get(day) == _rows_of(rows))
            if result.committed:
                last_committed[day] = _rows_of(rows)
                commits[day] = commits.get(day, 0) + 1
            assert result.transaction_version == commits.get(day)

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
