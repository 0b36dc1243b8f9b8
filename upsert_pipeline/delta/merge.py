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
from deltalake.table import TableMerger

from upsert_pipeline.delta.counts import snapshot_counts
from upsert_pipeline.delta.errors import CommitRetriesExhaustedError, PartitionSpecError
from upsert_pipeline.delta.operations import (
    DELETE_OP,
    OP_COLUMN,
    check_snapshot,
    tombstones,
    with_string_op,
)
from upsert_pipeline.delta.predicates import (
    SOURCE_ALIAS,
    TARGET_ALIAS,
    added_predicate,
    changed_predicate,
    check_identifier,
    column,
    merge_predicate,
    scope_predicate,
    tombstone_predicate,
    upsert_rows_predicate,
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
    check_typed,
    conform_evolving,
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
    snapshot: bool
    evolve_schema: bool

    def run(self, table: DeltaTable, attempt: int) -> UpsertResult:
        """Merges into the snapshot ``table`` holds, or finds the batch already in it.

        Everything is read from that snapshot: the schema, the before-counts and the
        application transactions, so a retry after a conflict starts from the new truth.
        """
        if self.partition:
            _check_partitioning(table, self.partition)
        table_schema = pa.schema(table.schema().to_arrow())
        source, added = conform_evolving(
            self.source, table_schema, evolve=self.evolve_schema, control=(OP_COLUMN,)
        )
        before = snapshot_counts(table, self.partition)

        state = None
        metadata = {**self.commit_metadata, ATTEMPT_KEY: attempt}
        if self.app_id is not None:
            identity = batch_identity(source, self.keys, snapshot=self.snapshot)
            state = read_transaction_state(table, self.app_id, identity)
            if state.already_applied:
                return _already_applied(
                    self.table_uri,
                    self.partition,
                    source,
                    before,
                    attempt,
                    state,
                    snapshot=self.snapshot,
                    schema=table_schema,
                )
            metadata |= {APP_ID_KEY: state.app_id, BATCH_ID_KEY: state.batch_id}

        merger = table.merge(
            source,
            predicate=self.predicate,
            source_alias=SOURCE_ALIAS,
            target_alias=TARGET_ALIAS,
            merge_schema=bool(added),
            commit_properties=CommitProperties(
                custom_metadata=metadata,
                max_commit_retries=self.max_commit_retries,
                app_transactions=state.transactions() if state else None,
            ),
        )
        metrics = self._clauses(merger, table_schema, source, added).execute()
        after = snapshot_counts(table, self.partition)

        transaction_version = None
        if state is not None:
            committed = after.version != before.version
            transaction_version = state.next_version if committed else state.scope_version
        source_rows = int(metrics["num_source_rows"])
        inserted = int(metrics["num_target_rows_inserted"])
        updated = int(metrics["num_target_rows_updated"])
        deleted = int(metrics["num_target_rows_deleted"])
        deleted_from_source = 0 if self.snapshot else deleted
        return UpsertResult(
            table_uri=self.table_uri,
            partition=dict(self.partition) if self.partition else None,
            source_rows=source_rows,
            inserted=inserted,
            updated=updated,
            deleted=deleted,
            copied=int(metrics["num_target_rows_copied"]),
            unchanged=source_rows - inserted - updated - deleted_from_source,
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
            snapshot=self.snapshot,
            tombstones=tombstones(source),
            columns_added=added if after.version != before.version else (),
            schema=pa.schema(table.schema().to_arrow()),
        )

    def _clauses(
        self, merger: TableMerger, table_schema: pa.Schema, source: pa.Table, added: tuple[str, ...]
    ) -> TableMerger:
        """The merge's clauses, in the order delta-rs tries them for each row.

        Matched tombstones delete; other matched rows update only when a column really changed
        (or a new column has a value); unmatched rows insert unless they are tombstones; in
        snapshot mode, target rows of the partition that the batch lacks are deleted.
        """
        has_op = OP_COLUMN in source.column_names
        columns = [name for name in source.column_names if name != OP_COLUMN]
        values = [
            name for name in columns if name not in self.keys and name not in (self.partition or {})
        ]
        existing = [name for name in values if name not in added]
        if has_op:
            merger = merger.when_matched_delete(predicate=tombstone_predicate(OP_COLUMN, DELETE_OP))
        change = " OR ".join(
            f"({p})" for p in (changed_predicate(existing), added_predicate(added)) if p
        )
        if change:
            if has_op:
                change = f"({upsert_rows_predicate(OP_COLUMN, DELETE_OP)}) AND ({change})"
            merger = merger.when_matched_update(
                updates={name: column(SOURCE_ALIAS, name) for name in values}, predicate=change
            )
        merger = merger.when_not_matched_insert(
            updates={name: column(SOURCE_ALIAS, name) for name in columns},
            predicate=upsert_rows_predicate(OP_COLUMN, DELETE_OP) if has_op else None,
        )
        if self.snapshot and self.partition:
            merger = merger.when_not_matched_by_source_delete(
                predicate=scope_predicate(self.partition)
            )
        return merger


def _already_applied(
    table_uri: str,
    partition: Mapping[str, PartitionValue] | None,
    source: pa.Table,
    counts: RowCounts,
    attempt: int,
    state: TransactionState,
    *,
    snapshot: bool,
    schema: pa.Schema,
) -> UpsertResult:
    """The result of a batch the log says is already in: nothing merged, every row unchanged."""
    return UpsertResult(
        table_uri=table_uri,
        partition=dict(partition) if partition else None,
        source_rows=source.num_rows,
        inserted=0,
        updated=0,
        deleted=0,
        copied=0,
        unchanged=source.num_rows,
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
        snapshot=snapshot,
        tombstones=tombstones(source),
        schema=schema,
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
    snapshot: bool = False,
    allow_empty_snapshot: bool = False,
    evolve_schema: bool = False,
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
        snapshot: Load the batch as the complete truth of its ``partition``: that partition's
            rows whose key the batch lacks are deleted (other partitions are never touched).
        allow_empty_snapshot: Let an empty snapshot delete its whole partition.
        evolve_schema: Add the batch's columns that the table lacks (nullable) in the same
            commit; without it such a column is refused.

    A batch may carry the control column ``_op`` (see ``upsert_pipeline.delta.operations``):
    ``'D'`` deletes the row with that key, anything else upserts it; ``_op`` is never written.

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
    source = with_string_op(_as_arrow(batch))
    keys = list(keys)
    for name in source.column_names:
        check_identifier(name)
    check_typed(source, ignore=(OP_COLUMN,))
    check_keys(source, keys)
    if partition:
        check_partition_values(partition)
        check_partition(source, partition)
    if snapshot:
        check_snapshot(source, partition, allow_empty=allow_empty_snapshot)
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
        snapshot=snapshot,
        evolve_schema=evolve_schema,
    )

    options = dict(storage_options) if storage_options else None
    data = source.drop_columns([OP_COLUMN]) if OP_COLUMN in source.column_names else source
    table = open_or_create(table_uri, data.schema, list(partition or {}), options)
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
