"""``upsert``: one MERGE of a batch into a Delta table, with its counts read from the commit."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable

from upsert_pipeline.delta.counts import snapshot_counts
from upsert_pipeline.delta.errors import CommitRetriesExhaustedError, PartitionSpecError
from upsert_pipeline.delta.predicates import (
    SOURCE_ALIAS,
    TARGET_ALIAS,
    changed_predicate,
    check_identifier,
    merge_predicate,
)
from upsert_pipeline.delta.result import PartitionValue, RowCounts, UpsertResult
from upsert_pipeline.delta.retry import RetryPolicy, is_commit_conflict
from upsert_pipeline.delta.tables import open_or_create
from upsert_pipeline.delta.transactions import (
    TransactionState,
    app_id_for,
    batch_identity,
    read_transaction_state,
    table_name,
)
from upsert_pipeline.delta.uris import DEFAULT_URI_POLICY, UriPolicy
from upsert_pipeline.delta.validation import (
    check_keys,
    check_partition,
    check_partition_values,
    conform,
)

Batch: TypeAlias = "pa.Table | pl.DataFrame"
"""What ``upsert`` takes: a pyarrow Table or a polars DataFrame."""

BATCH_ID_KEY = "upsert_pipeline.batch_id"
APP_ID_KEY = "upsert_pipeline.app_id"
ATTEMPT_KEY = "upsert_pipeline.commit_attempt"


def _as_arrow(batch: Batch) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pl.DataFrame):
        return batch.to_arrow()
    raise TypeError(f"a batch is a pyarrow Table or a polars DataFrame, not {type(batch).__name__}")


def _check_partitioning(table: DeltaTable, partition: Mapping[str, PartitionValue]) -> None:
    partition_columns = table.metadata().partition_columns
    unknown = [name for name in partition if name not in partition_columns]
    if unknown:
        raise PartitionSpecError(
            f"table is partitioned by {partition_columns}, not by {unknown}; "
            "a partition scope must name the table's partition columns"
        )


@dataclass(frozen=True, kw_only=True)
class _Merge:
    """One upsert's fixed inputs, run against a fresh snapshot on every attempt."""

    table_uri: str
    source: pa.Table
    keys: list[str]
    partition: Mapping[str, PartitionValue] | None
    predicate: str
    commit_metadata: Mapping[str, Any]
    app_id: str | None
    max_commit_retries: int | None

    def run(self, table: DeltaTable, attempt: int) -> UpsertResult:
        """Merges into the snapshot ``table`` holds, or finds the batch already in it.

        Everything is read from that snapshot: the schema, the before-counts and the
        application transactions, so a retry after a conflict starts from the new truth.
        """
        if self.partition:
            _check_partitioning(table, self.partition)
        table_schema = pa.schema(table.schema().to_arrow())
        source = conform(self.source, table_schema)
        before = snapshot_counts(table, self.partition)

        state = None
        metadata = {**self.commit_metadata, ATTEMPT_KEY: attempt}
        if self.app_id is not None:
            state = read_transaction_state(table, self.app_id, batch_identity(source, self.keys))
            if state.already_applied:
                return _already_applied(
                    self.table_uri, self.partition, source.num_rows, before, attempt, state
                )
            metadata |= {APP_ID_KEY: state.app_id, BATCH_ID_KEY: state.batch_id}

        unmatched = [
            name
            for name in table_schema.names
            if name not in self.keys and name not in (self.partition or {})
        ]
        merger = table.merge(
            source,
            predicate=self.predicate,
            source_alias=SOURCE_ALIAS,
            target_alias=TARGET_ALIAS,
            commit_properties=CommitProperties(
                custom_metadata=metadata,
                max_commit_retries=self.max_commit_retries,
                app_transactions=state.transactions() if state else None,
            ),
        )
        change = changed_predicate(unmatched)
        if change is not None:
            merger = merger.when_matched_update_all(predicate=change)
        metrics = merger.when_not_matched_insert_all().execute()
        after = snapshot_counts(table, self.partition)

        transaction_version = None
        if state is not None:
            committed = after.version != before.version
            transaction_version = state.next_version if committed else state.scope_version
        source_rows = int(metrics["num_source_rows"])
        inserted = int(metrics["num_target_rows_inserted"])
        updated = int(metrics["num_target_rows_updated"])
        deleted = int(metrics["num_target_rows_deleted"])
        return UpsertResult(
            table_uri=self.table_uri,
            partition=dict(self.partition) if self.partition else None,
            source_rows=source_rows,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            copied=int(metrics["num_target_rows_copied"]),
            unchanged=source_rows - inserted - updated - deleted,
            read_version=before.version,
            version=after.version,
            before=before,
            after=after,
            files_added=int(metrics["num_target_files_added"]),
            files_removed=int(metrics["num_target_files_removed"]),
            files_scanned=int(metrics["num_target_files_scanned"]),
            files_skipped=int(metrics["num_target_files_skipped_during_scan"]),
            execution_time_ms=int(metrics["execution_time_ms"]),
            scan_time_ms=int(metrics["scan_time_ms"]),
            rewrite_time_ms=int(metrics["rewrite_time_ms"]),
            commit_attempts=attempt,
            app_id=state.app_id if state else None,
            batch_id=state.batch_id if state else None,
            transaction_version=transaction_version,
        )


def _already_applied(
    table_uri: str,
    partition: Mapping[str, PartitionValue] | None,
    source_rows: int,
    counts: RowCounts,
    attempt: int,
    state: TransactionState,
) -> UpsertResult:
    """The result of a batch the log says is already in: nothing merged, every row unchanged."""
    return UpsertResult(
        table_uri=table_uri,
        partition=dict(partition) if partition else None,
        source_rows=source_rows,
        inserted=0,
        updated=0,
        deleted=0,
        copied=0,
        unchanged=source_rows,
        read_version=counts.version,
        version=counts.version,
        before=counts,
        after=counts,
        files_added=0,
        files_removed=0,
        files_scanned=0,
        files_skipped=0,
        execution_time_ms=0,
        scan_time_ms=0,
        rewrite_time_ms=0,
        commit_attempts=attempt,
        already_applied=True,
        app_id=state.app_id,
        batch_id=state.batch_id,
        transaction_version=state.scope_version,
    )


def upsert(
    table_uri: str,
    batch: Batch,
    *,
    keys: Sequence[str],
    partition: Mapping[str, PartitionValue] | None = None,
    storage_options: Mapping[str, str] | None = None,
    commit_metadata: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    idempotent: bool = True,
    app_id: str | None = None,
    uri_policy: UriPolicy | None = None,
) -> UpsertResult:
    """MERGEs ``batch`` into the Delta table at ``table_uri`` and reports what the commit did.

    Matched rows are updated only when a non-key column really changed (compared null-safely), so a
    batch that is already in reports 0 inserted, 0 updated and writes no new version. With a
    ``partition``, the merge predicate carries its value as a literal: delta-rs prunes every other
    partition, which is neither read nor rewritten. The batch is validated in memory first; a
    refused batch leaves the table exactly as it was.

    Every count comes from the merge's metrics or from ``numRecords`` in the add actions of the
    snapshots before and after the commit, which the ``DeltaTable`` holds in memory. No data file
    is read to count.

    Concurrency: when another writer's commit conflicts with this merge's (it changed the same
    partition), the table is reloaded and the merge run again on the new snapshot, its
    before-counts re-read, up to ``retry.max_attempts`` times with jittered backoff
    (``UpsertResult.commit_attempts``). Idempotency: each commit records the merge scope's and the
    batch's application transactions (see ``upsert_pipeline.delta.transactions``); a batch that
    is the last one committed to its scope is not merged again and reports ``already_applied``.

    Args:
        table_uri: The Delta table; created on first write, partitioned by ``partition``'s columns.
        batch: The rows to upsert.
        keys: The merge key columns; unique and non-null within the batch.
        partition: ``{column: value}`` of the one partition every row of the batch belongs to.
        storage_options: Options for the object store, passed to delta-rs.
        commit_metadata: Extra ``commitInfo`` entries written with the commit.
        retry: How often and how patiently to re-run a merge whose commit conflicted.
        idempotent: Record and honour application transactions (on by default).
        app_id: The merge scope's application id; by default
            ``upsert_pipeline:<table folder>:<partition>`` (``app_id_for``). It must name the
            merge's scope, never a narrower one.
        uri_policy: The allowed schemes and roots of ``table_uri``; by default the usual schemes,
            any root.

    Returns:
        The commit's counts, versions and merge metrics.

    Raises:
        UpsertError: The batch was refused (a subclass names why); nothing was written.
        CommitRetriesExhaustedError: Every attempt conflicted with a concurrent commit.

    Example:
        >>> result = upsert(
        ...     "data/lake/orders", batch, keys=["order_id"], partition={"order_date": "2026-11-02"}
        ... )
        >>> result.inserted, result.updated, result.unchanged, result.partition_rows
        (412, 0, 0, 412)
    """
    (uri_policy or DEFAULT_URI_POLICY).check(table_uri, what="table")
    source = _as_arrow(batch)
    keys = list(keys)
    for name in source.column_names:
        check_identifier(name)
    check_keys(source, keys)
    if partition:
        check_partition_values(partition)
        check_partition(source, partition)
    policy = retry or RetryPolicy()
    merge = _Merge(
        table_uri=table_uri,
        source=source,
        keys=keys,
        partition=partition,
        predicate=merge_predicate(keys, partition),
        commit_metadata=dict(commit_metadata or {}),
        app_id=(app_id or app_id_for(table_name(table_uri), partition)) if idempotent else None,
        max_commit_retries=policy.max_commit_retries,
    )

    options = dict(storage_options) if storage_options else None
    table = open_or_create(table_uri, source.schema, list(partition or {}), options)
    rng = random.Random()
    for attempt in range(1, policy.max_attempts + 1):
        if attempt > 1:
            table.update_incremental()
        try:
            return merge.run(table, attempt)
        except Exception as error:
            if not is_commit_conflict(error):
                raise
            if attempt == policy.max_attempts:
                raise CommitRetriesExhaustedError(
                    f"merge into {table_uri} conflicted with a concurrent commit on all "
                    f"{attempt} attempts; nothing was written: {error}",
                    attempts=attempt,
                ) from error
            time.sleep(policy.backoff_s(attempt, rng))
    raise AssertionError("unreachable")  # pragma: no cover
