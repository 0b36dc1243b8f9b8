"""Only commit conflicts are retried; other errors delta-rs really raises fail at once."""

import json
import shutil
from pathlib import Path

import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from upsert_pipeline.delta import (
    CommitRetriesExhaustedError,
    RetryPolicy,
    UnsupportedTableFeatureError,
    UpsertError,
    is_commit_conflict,
    upsert,
)
from upsert_pipeline.delta import merge as merge_module
from upsert_pipeline.delta.retry import is_unsupported_table_feature
from upsert_pipeline_tests.conftest import DAY, order_batch

PARTITION = {"order_date": DAY}
PATIENT = RetryPolicy(max_attempts=5, initial_backoff_s=0, max_backoff_s=0)


@pytest.fixture
def merge_runs(monkeypatch):
    """Counts how many times ``upsert`` ran its merge (1 + one per retry)."""
    runs: list[int] = []
    run = merge_module._Merge.run

    def counted(self, table, attempt):
        runs.append(attempt)
        return run(self, table, attempt)

    monkeypatch.setattr(merge_module._Merge, "run", counted)
    return runs


def _require_writer_feature(table_uri: str, feature: str) -> None:
    """Rewrites the table's protocol (version 0) to require ``feature`` of every writer."""
    commit = Path(table_uri) / "_delta_log" / f"{0:020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines()]
    for action in actions:
        if "protocol" in action:
            action["protocol"] = {
                "minReaderVersion": 1,
                "minWriterVersion": 7,
                "writerFeatures": [feature],
            }
    commit.write_text("".join(json.dumps(action) + "\n" for action in actions))


@pytest.mark.parametrize("feature", ["rowTracking", "domainMetadata", "inCommitTimestamp"])
def test_a_table_feature_delta_rs_cannot_write_is_a_named_immediate_error(
    table_uri, tmp_path, merge_runs, feature
):
    upsert(table_uri, order_batch([1, 2]), keys=["order_id"], partition=PARTITION)
    copy = str(tmp_path / f"with_{feature}")
    shutil.copytree(table_uri, copy)
    _require_writer_feature(copy, feature)
    version = DeltaTable(copy).version()
    merge_runs.clear()

    with pytest.raises(UnsupportedTableFeatureError) as raised:
        upsert(copy, order_batch([2, 3]), keys=["order_id"], partition=PARTITION, retry=PATIENT)

    assert merge_runs == [1]  # not retried
    assert isinstance(raised.value, UpsertError)
    cause = raised.value.__cause__
    assert isinstance(cause, CommitFailedError)  # what delta-rs 1.6.6 really raised
    assert is_unsupported_table_feature(cause) and not is_commit_conflict(cause)
    assert DeltaTable(copy).version() == version


def test_an_append_only_table_refusing_an_update_is_not_retried(tmp_path, merge_runs):
    uri = str(tmp_path / "append_only")
    upsert(uri, order_batch([1, 2]), keys=["order_id"], partition=PARTITION)
    DeltaTable(uri).alter.set_table_properties({"delta.appendOnly": "true"})
    version = DeltaTable(uri).version()
    merge_runs.clear()

    with pytest.raises(CommitFailedError) as raised:
        upsert(
            uri,
            order_batch([1], status="paid"),
            keys=["order_id"],
            partition=PARTITION,
            retry=PATIENT,
        )

    assert merge_runs == [1]
    assert not isinstance(raised.value, CommitRetriesExhaustedError)
    assert not is_commit_conflict(raised.value)
    assert DeltaTable(uri).version() == version


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        # TransactionError::CommitConflict and ::MaxCommitAttempts: another writer won (the
        # texts of delta-rs 1.6.6's CommitConflictError variants).
        *(
            (CommitFailedError(f"Failed to commit transaction: {inner}"), True)
            for inner in (
                "Commit failed: a concurrent transactions added new data.\nHelp: rerun",
                "Commit failed: a concurrent transaction deleted data this operation read.",
                "Commit failed: a concurrent transaction deleted the same data your transaction "
                "deletes.",
                "Concurrent transaction failed.",
                "Metadata changed since last commit.",
                "Protocol changed since last commit: protocol changed",
            )
        ),
        (CommitFailedError("Failed to commit transaction: 15"), True),
        # The same prefix on CommitConflictError variants that no retry can fix.
        *(
            (CommitFailedError(f"Failed to commit transaction: {inner}"), False)
            for inner in (
                "Delta-rs does not support writer version 8",
                "Delta-rs does not support reader version 4",
                "Snapshot is corrupted: missing protocol",
                "Error evaluating predicate: bad column",
                "No metadata found, please make sure table is loaded.",
            )
        ),
        (CommitFailedError("Protocol changed since last commit: protocol changed"), True),
        (DeltaError("Tried committing existing table version: 0"), True),
        # Everything else fails the same way however often it is tried.
        (CommitFailedError("Unsupported table features required: [RowTracking]"), False),
        (CommitFailedError("Error serializing commit log to json: bad"), False),
        (DeltaError("Generic error: Failed to commit transaction: lookalike"), False),
        (OSError("Failed to commit transaction: disk full"), False),
    ],
)
def test_which_errors_are_commit_conflicts(error, retried):
    assert is_commit_conflict(error) is retried
