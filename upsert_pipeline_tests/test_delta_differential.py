"""Differential test: every count the upsert reports equals what a polars scan of the table says.

Random sequences of steps over a few partitions mix inserts, real changes, identical rows and
null transitions (NULL -> value, value -> NULL, NULL -> NULL), tombstones (``_op = 'D'``, for keys
that exist and keys that do not), snapshot loads (the batch is the partition's whole truth; empty
ones allowed explicitly), a column added by schema evolution and backfills after it (batches
without the column, loaded with nulls there), re-sends of earlier batches in another row order
(a retried run: always merged, never skipped), and deletes made outside the pipeline, often
followed at once by a re-send of that partition's last batch, which must restore the deleted rows
and report them as inserted. After each step the table is scanned, and the expected counts are
derived per key from that scan and the previous one (the previous step's scan, taken after any
out-of-band delete, is this step's "before").

Kill points: a batch may be sent by a run that dies before its commit (nothing reaches the log,
nothing is left to recover) or right after it (committed, recorded nowhere). At the end of each
sequence, the pipeline commits that no run recorded are exactly the commits of the runs killed
after committing, and each one's counts as recovery rebuilds them from the log alone
(``delta/recovery.py``) equal what its merge returned. The real processes killed with SIGKILL
are in ``test_recovery_crash.py``; here the kill is in-process, so the sequences stay fast.

Sequences: 250 when ``CI`` is set (profile ``differential-ci``; about 30 s of CPU), 100 otherwise
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
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from upsert_pipeline.delta import UpsertResult, merge, upsert
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER, RUN_MARKER
from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.delta.recovery import committed_result, pipeline_commits
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
settings.register_profile("differential-ci", max_examples=250, **_PROFILE_SETTINGS)
settings.register_profile("differential", max_examples=100, **_PROFILE_SETTINGS)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or (
    "differential-ci" if os.environ.get("CI") else "differential"
)

BEFORE_COMMIT, AFTER_COMMIT = "before_commit", "after_commit"
ADDED = "channel"
"""The column a batch in ``evolve`` mode adds; later batches may lack it (backfills)."""
MODES = ("upsert", "upsert", "upsert", "snapshot", "evolve")
DECLARED = ORDERS.schema.names
"""The feed's declared columns: every batch must carry them; ``channel`` is not one."""

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
KILL_POINTS = (None, None, None, BEFORE_COMMIT, AFTER_COMMIT, AFTER_COMMIT)
# (day, rows, mode, whether the batch carries the evolved column once the table has it, where
# the run that sends it is killed).
batches = st.tuples(
    st.sampled_from(DAYS),
    st.lists(rows, max_size=10, unique_by=lambda row: row["order_id"]),
    st.sampled_from(MODES),
    st.sampled_from([True, False, False]),
    st.sampled_from(KILL_POINTS),
)
# A DELETE outside the pipeline: (day, order ids, whether that day's last batch is re-sent next).
deletes = st.tuples(
    st.sampled_from(DAYS),
    st.frozensets(st.integers(0, 12), min_size=1, max_size=6),
    st.sampled_from([True, True, False]),
)
# An integer re-sends an earlier batch of the sequence (that index, modulo), rows reversed.
steps = st.lists(st.one_of(batches, batches, st.integers(0, 7), deletes), min_size=1, max_size=8)

Sent = tuple[dt.date, list[dict[str, Any]], str, bool]


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


def _exists(uri: str) -> bool:
    return os.path.isdir(os.path.join(uri, "_delta_log"))


def _scan(uri: str, added: bool) -> dict[dt.date, dict[int, tuple[Any, ...]]]:
    """Every partition's rows by key, read from the data."""
    if not _exists(uri):
        return {}
    scanned: dict[dt.date, dict[int, tuple[Any, ...]]] = {}
    for row in pl.read_delta(uri).to_dicts():
        scanned.setdefault(row["order_date"], {})[row["order_id"]] = _values(row, added)
    return scanned


def _has_added(uri: str) -> bool:
    """Whether the table (by its log) has the evolved column; False while there is no table."""
    return _exists(uri) and ADDED in DeltaTable(uri).schema().to_arrow().names


def _delete_out_of_band(uri: str, day: dt.date, ids: frozenset[int]) -> None:
    """What another tool does: a plain delta-rs DELETE in one partition."""
    listed = ", ".join(str(i) for i in sorted(ids))
    DeltaTable(uri).delete(f"order_date = '{day.isoformat()}' AND order_id IN ({listed})")


@settings(settings.get_profile(PROFILE))
@given(steps)
def test_every_count_equals_a_scan(sequence):
    sent: list[Sent] = []
    last_sent: dict[dt.date, Sent] = {}
    committed_at: dict[dt.date, int] = {}  # the version of each scope's latest commit
    deleted_since: dict[dt.date, set[int]] = {}  # deleted out of band since the day's last send
    recorded: set[int] = set()  # versions a live run recorded
    killed: dict[int, UpsertResult] = {}  # commits of runs killed right after them
    with tempfile.TemporaryDirectory() as folder:
        uri = f"{folder}/orders"
        scanned: dict[dt.date, dict[int, tuple[Any, ...]]] = {}
        for number, step in enumerate(sequence):
            removed: set[int] = set()
            kill = None
            if isinstance(step, int):
                if not sent:
                    continue
                day, rows, mode, carries = sent[step % len(sent)]
                rows = rows[::-1]
            elif len(step) == 3:
                day, ids, resend = step
                if not _exists(uri):
                    continue
                added = _has_added(uri)
                _delete_out_of_band(uri, day, ids)
                deleted_since.setdefault(day, set()).update(set(scanned.get(day, {})) & ids)
                scanned = _scan(uri, added)
                assert set(scanned.get(day, {})) & ids == set()
                if not resend or day not in last_sent:
                    continue
                removed = deleted_since[day]
                day, rows, mode, carries = last_sent[day]
                rows = rows[::-1]
            else:
                day, rows, mode, carries, kill = step
            run = {PIPELINE_MARKER: "orders", PARTITION_MARKER: day.isoformat()}
            run[RUN_MARKER] = f"run-{number}"
            if kill == BEFORE_COMMIT:
                _killed_before_commit(uri, day, rows, mode, run)
                continue
            carried, result = _check_step(
                uri, scanned, day, rows, mode, carries, removed, committed_at, run
            )
            if result.committed:
                if kill == AFTER_COMMIT:
                    killed[result.version] = result
                else:
                    recorded.add(result.version)
            # Kept as it was sent: a batch sent before the table had the gained column did not
            # carry it, and its re-send (the same landing file) does not either.
            sent.append((day, rows, mode, carried))
            last_sent[day] = (day, rows, mode, carried)
            deleted_since[day] = set()
            scanned = _scan(uri, _has_added(uri))
        if _exists(uri):
            _check_recovery(uri, recorded, killed)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no handler catches it."""


def _killed_before_commit(
    uri: str, day: dt.date, rows: list[dict[str, Any]], mode: str, run: dict[str, str]
) -> None:
    """A run killed before its merge commits: the log does not change."""
    version = DeltaTable(uri).version() if _exists(uri) else None
    original = merge._Merge.run

    def killed(self: merge._Merge, table: DeltaTable, attempt: int) -> UpsertResult:
        raise _Killed

    merge._Merge.run = killed  # type: ignore[method-assign]
    try:
        upsert(
            uri,
            _batch(day, [{**row, ADDED: None} for row in rows], added=False, op=True),
            keys=["order_id"],
            partition={"order_date": day},
            commit_metadata=run,
            snapshot=False,
        )
    except _Killed:
        pass
    finally:
        merge._Merge.run = original  # type: ignore[method-assign]
    assert (DeltaTable(uri).version() if _exists(uri) else None) in (version, 0)
    event("run killed before its commit")


def _check_recovery(uri: str, recorded: set[int], killed: dict[int, UpsertResult]) -> None:
    """The log's pipeline commits that no run recorded are the killed runs' commits, and each
    one rebuilt from the log alone carries the counts its merge returned."""
    commits, _ = pipeline_commits(uri, "orders")
    assert {c.version for c in commits} == recorded | set(killed)
    fields = ("source_rows", "inserted", "updated", "deleted", "copied", "unchanged")
    fields += ("read_version", "version", "partition_rows", "table_rows", "snapshot")
    for commit in commits:
        if commit.version not in killed:
            continue
        live = killed[commit.version]
        rebuilt = committed_result(uri, commit, partition=live.partition)
        assert {f: getattr(rebuilt, f) for f in fields} == {f: getattr(live, f) for f in fields}
        assert rebuilt.before.partition_rows == live.before.partition_rows
        event("run killed right after its commit: recovered from the log")


def _check_step(
    uri: str,
    scanned: dict[dt.date, dict[int, tuple[Any, ...]]],
    day: dt.date,
    rows: list[dict[str, Any]],
    mode: str,
    carries: bool,
    removed: set[int],
    committed_at: dict[dt.date, int],
    run: dict[str, str],
) -> tuple[bool, UpsertResult]:
    """Upserts one batch and checks every count, the partition's rows and the metadata.

    Returns whether the batch carried the gained column, and what the upsert returned.

    ``removed`` holds the keys deleted out of band from the partition since its last batch was
    sent, when the batch is that last one sent again: exactly those of its rows come back.
    """
    snapshot = mode == "snapshot"
    table_existed = _exists(uri)
    had_added = _has_added(uri)
    with_added = mode == "evolve" or (had_added and carries)
    filled = had_added and not with_added
    has_op = not snapshot
    if snapshot:
        rows = [{**row, OP_COLUMN: None} for row in rows]
    if not with_added:  # a batch without the column says nothing there: null
        rows = [{**row, ADDED: None} for row in rows]
    before = {
        key: values + ((None,) if with_added and not had_added else ())
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
        required_columns=DECLARED,
        commit_metadata=run,
    )
    # An evolving merge that changes no row may write no commit, and then adds no column.
    adds_now = table_existed and not had_added and _has_added(uri)
    added = _has_added(uri)
    after_scan = _scan(uri, added)
    if with_added and not added:  # the column was not added: compare without it
        before = {key: values[:-1] for key, values in before.items()}
    after = after_scan.get(day, {})

    tombstoned = {row["order_id"] for row in rows if row[OP_COLUMN] == DELETE_OP}
    incoming = {
        row["order_id"]: _values(row, added) for row in rows if row["order_id"] not in tombstoned
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
        "table_rows": sum(len(partition) for partition in after_scan.values()),
        "tombstones": len(tombstoned),
        "snapshot": snapshot,
    }
    actual = {name: getattr(result, name) for name in expected}
    assert actual == expected
    assert after == model
    assert result.before.partition_rows == len(before)
    assert result.commit_attempts == 1
    if filled and result.inserted + result.updated:
        event("backfill after evolution: rows loaded with nulls in the gained column")
    if removed & set(model):
        event("re-run after an out-of-band delete restored rows")
    if removed:
        # The partition's last batch again, after a delete outside the pipeline: the deleted
        # rows it holds come back as inserted, and nothing else changes.
        assert (result.inserted, result.updated, result.deleted) == (
            len(removed & set(model)),
            0,
            0,
        )

    # Never skipped: it commits exactly when something changed; its scope's transaction says so.
    changes = inserted + updated + deleted
    assert result.committed == (changes > 0 or adds_now)
    assert result.columns_added == ((ADDED,) if adds_now else ())
    assert result.columns_filled == ((ADDED,) if filled else ())
    if result.committed:
        committed_at[day] = result.version
    transaction = DeltaTable(uri).transaction_version(result.app_id)
    assert transaction == committed_at.get(day)

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
    return with_added, result
