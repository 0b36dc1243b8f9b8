"""Differential test: every count the upsert reports equals what a polars scan of the table says.

Random sequences of batches over a few partitions mix inserts, real changes, identical rows and
null transitions (NULL -> value, value -> NULL, NULL -> NULL), tombstones (``_op = 'D'``, for keys
that exist and keys that do not), snapshot loads (the batch is the partition's whole truth; empty
ones allowed explicitly) and a column added by schema evolution; they re-send earlier batches in
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
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
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

ADDED = "channel"
"""The column a batch in ``evolve`` mode adds to the table; every later batch carries it."""
MODES = ("upsert", "upsert", "upsert", "snapshot", "evolve")

rows = st.fixed_dictionaries(
    {
        "order_id": st.integers(0, 12),
        "customer_id": st.sampled_from([None, 1, 2]),
        "status": st.sampled_from([None, "placed", "paid"]),
        "amount": st.sampled_from([None, Decimal("1.00"), Decimal("2.50")]),
        OP_COLUMN: st.sampled_from([None, None, None, "U", DELETE_OP]),
        ADDED: st.sampled_from([None, "web", "shop"]),
    }
)
batches = st.tuples(
    st.sampled_from(DAYS),
    st.lists(rows, max_size=10, unique_by=lambda row: row["order_id"]),
    st.sampled_from(MODES),
)
# An integer re-sends an earlier batch of the sequence (that index, modulo), rows reversed.
steps = st.lists(st.one_of(batches, batches, st.integers(0, 7)), min_size=1, max_size=7)


def _batch(day: dt.date, rows: list[dict[str, Any]], *, added: bool, op: bool) -> pa.Table:
    schema = ORDERS.schema
    if added:
        schema = schema.append(pa.field(ADDED, pa.string()))
    if op:
        schema = schema.append(pa.field(OP_COLUMN, pa.string()))
    return pa.Table.from_pylist(
        [{**row, "order_date": day, "updated_at": UPDATED_AT} for row in rows], schema=schema
    )


def _values(row: dict[str, Any], added: bool) -> tuple[Any, ...]:
    return tuple(row[c] for c in VALUE_COLUMNS) + ((row[ADDED],) if added else ())


def _scan(uri: str, added: bool) -> dict[dt.date, dict[int, tuple[Any, ...]]]:
    """Every partition's rows by key, read from the data."""
    if not os.path.isdir(os.path.join(uri, "_delta_log")):
        return {}
    scanned: dict[dt.date, dict[int, tuple[Any, ...]]] = {}
    for row in pl.read_delta(uri).to_dicts():
        scanned.setdefault(row["order_date"], {})[row["order_id"]] = _values(row, added)
    return scanned


def _has_added(uri: str) -> bool:
    """Whether the table (by its log) has the evolved column; False while there is no table."""
    if not os.path.isdir(os.path.join(uri, "_delta_log")):
        return False
    return ADDED in DeltaTable(uri).schema().to_arrow().names


def _identity(rows: list[dict[str, Any]], snapshot: bool, added: bool, op: bool) -> Any:
    return (
        snapshot,
        added,
        frozenset(
            (row["order_id"], *_values(row, added), row[OP_COLUMN] if op else None) for row in rows
        ),
    )


@settings(settings.get_profile(PROFILE))
@given(steps)
def test_every_count_equals_a_scan(sequence):
    sent: list[tuple[dt.date, list[dict[str, Any]], str]] = []
    last_committed: dict[dt.date, Any] = {}
    commits: dict[dt.date, int] = {}
    added = False  # whether the table has the evolved column yet
    with tempfile.TemporaryDirectory() as folder:
        uri = f"{folder}/orders"
        scanned: dict[dt.date, dict[int, tuple[Any, ...]]] = {}
        for step in sequence:
            if isinstance(step, int):
                if not sent:
                    continue
                day, rows, mode = sent[step % len(sent)]
                rows = rows[::-1]
            else:
                day, rows, mode = step
            sent.append((day, rows, mode))
            snapshot = mode == "snapshot"
            table_existed = os.path.isdir(os.path.join(uri, "_delta_log"))
            with_added = added or mode == "evolve"
            has_op = not snapshot
            if snapshot:
                rows = [{**row, OP_COLUMN: None} for row in rows]
            before = {
                key: values + ((None,) if with_added and not added else ())
                for key, values in scanned.get(day, {}).items()
            }

            result = upsert(
                uri,
                _batch(day, rows, added=with_added, op=has_op),
                keys=["order_id"],
                partition={"order_date": day},
                snapshot=snapshot,
                allow_empty_snapshot=True,
                evolve_schema=mode == "evolve",
            )
            # An evolving merge that changes no row may write no commit, and then adds no column.
            adds_now = table_existed and not added and _has_added(uri)
            added = _has_added(uri)
            scanned = _scan(uri, added)
            if with_added and not added:  # the column was not added: compare without it
                before = {key: values[:-1] for key, values in before.items()}
            after = scanned.get(day, {})

            tombstoned = {row["order_id"] for row in rows if row[OP_COLUMN] == DELETE_OP}
            incoming = {
                row["order_id"]: _values(row, added)
                for row in rows
                if row["order_id"] not in tombstoned
            }
            inserted = sum(key not in before for key in incoming)
            updated = sum(key in before and before[key] != value for key, value in incoming.items())
            if snapshot:
                deleted = sum(key not in incoming for key in before)
                unchanged = len(rows) - inserted - updated
                model = dict(incoming)
            else:
                deleted = sum(key in before for key in tombstoned)
                unchanged = len(rows) - inserted - updated - deleted
                model = {k: v for k, v in before.items() if k not in tombstoned} | incoming
            expected = {
                "source_rows": len(rows),
                "inserted": inserted,
                "updated": updated,
                "deleted": deleted,
                "unchanged": unchanged,
                "partition_rows": len(after),
                "table_rows": sum(len(partition) for partition in scanned.values()),
                "tombstones": len(tombstoned),
                "snapshot": snapshot,
            }
            actual = {name: getattr(result, name) for name in expected}
            assert actual == expected
            assert after == model
            changes = inserted + updated + deleted
            assert result.before.partition_rows == len(before)
            assert result.commit_attempts == 1

            # Already applied exactly when it is the last batch that changed its partition.
            identity = _identity(rows, snapshot, with_added, has_op)
            assert result.already_applied == (last_committed.get(day) == identity)
            assert result.columns_added == ((ADDED,) if adds_now else ())
            if not result.already_applied:
                assert result.committed == (changes > 0 or adds_now)
            if result.committed:
                last_committed[day] = identity
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
                "tombstones": metadata["upsert/tombstones"].value,
                "snapshot": metadata["upsert/snapshot"].value,
            } == expected
            names = [column.name for column in metadata["dagster/column_schema"].schema.columns]
            assert (ADDED in names) == added and OP_COLUMN not in names
