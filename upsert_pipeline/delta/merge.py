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
from upsert_pipeline.delta.errors import (
    CommitRetriesExhaustedError,
    MissingColumnError,
    PartitionSpecError,
    UnsupportedTableFeatureError,
)
from upsert_pipeline.delta.operations import (
    DELETE_OP,
    OP_COLUMN,
    check_snapshot,
    snapshot_tombstones,
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
    tombstone_predicate,
    upsert_rows_predicate,
)
from upsert_pipeline.delta.profile import snapshot_profiles
from upsert_pipeline.delta.result import PartitionValue, UpsertResult
from upsert_pipeline.delta.retry import (
    RetryPolicy,
    is_commit_conflict,
    is_unsupported_table_feature,
)
from upsert_pipeline.delta.tables import open_or_create
from upsert_pipeline.delta.transactions import app_id_for, scope_transaction, table_name
from upsert_pipeline.delta.uris import DEFAULT_URI_POLICY, UriPolicy
from upsert_pipeline.delta.validation import (
    check_distinct_names,
    check_keys,
    check_partition,
    check_partition_values,
    check_storable,
    check_typed,
    conform_evolving,
)

Batch: TypeAlias = "pa.Table | pl.DataFrame"
"""What ``upsert`` takes: a pyarrow Table or a polars DataFrame."""

APP_ID_KEY = "upsert_pipeline.app_id"
ATTEMPT_KEY = "upsert_pipeline.commit_attempt"
SNAPSHOT_KEY = "upsert_pipeline.snapshot"
"""``commitInfo`` key set on a snapshot load's commit, so the log alone tells how to read it."""


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
    required_columns: frozenset[str] | None
    profile: bool = False

    def _required(self, table_schema: pa.Schema) -> frozenset[str] | None:
        """The table's columns the batch must carry; ``None`` for all of them.

        Keys and partition columns always; then the declared columns when given, or, with
        schema evolution on and nothing declared, the table's not-null columns (nullable ones
        may have been gained by evolution after the batch's day); without evolution, all.
        """
        if self.required_columns is not None:
            declared = self.required_columns
        elif self.evolve_schema:
            declared = frozenset(field.name for field in table_schema if not field.nullable)
        else:
            return None
        return declared | set(self.keys) | set(self.partition or {})

    def run(self, table: DeltaTable, attempt: int) -> UpsertResult:
        """Merges into the snapshot ``table`` holds.

        Everything is read from that snapshot: the schema, the before-counts (and, for a
        snapshot load, the partition's keys), so a retry after a conflict starts from the new
        truth. No record of earlier batches is consulted: the batch is always merged.
        """
        if self.partition:
            _check_partitioning(table, self.partition)
        table_schema = pa.schema(table.schema().to_arrow())
        source, added, filled = conform_evolving(
            self.source,
            table_schema,
            evolve=self.evolve_schema,
            control=(OP_COLUMN,),
            required=self._required(table_schema),
        )
        before = snapshot_counts(table, self.partition)
        absent = 0
        if self.snapshot and self.partition:
            source, absent = snapshot_tombstones(table, source, self.keys, self.partition)

        metadata = {**self.commit_metadata, ATTEMPT_KEY: attempt}
        if self.snapshot:
            metadata[SNAPSHOT_KEY] = True
        transactions = None
        if self.app_id is not None:
            metadata[APP_ID_KEY] = self.app_id
            transactions = [scope_transaction(self.app_id, before.version)]
        merger = table.merge(
            source,
            predicate=self.predicate,
            source_alias=SOURCE_ALIAS,
            target_alias=TARGET_ALIAS,
            merge_schema=bool(added),
            commit_properties=CommitProperties(
                custom_metadata=metadata,
                max_commit_retries=self.max_commit_retries,
                app_transactions=transactions,
            ),
        )
        started = time.perf_counter()
        metrics = self._clauses(merger, source, added).execute()
        execute_ms = round((time.perf_counter() - started) * 1000)
        after = snapshot_counts(table, self.partition)
        profiles = (
            tuple(snapshot_profiles(table, [self.partition, None] if self.partition else [None]))
            if self.profile
            else ()
        )

        source_rows = int(metrics["num_source_rows"]) - absent
        inserted = int(metrics["num_target_rows_inserted"])
        updated = int(metrics["num_target_rows_updated"])
        deleted = int(metrics["num_target_rows_deleted"])
        deleted_from_source = 0 if self.snapshot else deleted
        committed = after.version != before.version
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
            app_id=self.app_id,
            snapshot=self.snapshot,
            tombstones=tombstones(self.source),
            columns_added=added if committed else (),
            columns_filled=filled,
            schema=pa.schema(table.schema().to_arrow()) if committed else table_schema,
            schema_before=table_schema,
            execute_ms=execute_ms,
            profiles=profiles,
        )

    def _clauses(
        self, merger: TableMerger, source: pa.Table, added: tuple[str, ...]
    ) -> TableMerger:
        """The merge's clauses, in the order delta-rs tries them for each row.

        Matched tombstones delete (in snapshot mode, the tombstones of the partition's keys
        that the batch lacks); other matched rows update only when a column really changed (or
        a new column has a value); unmatched rows insert unless they are tombstones.
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
        return merger.when_not_matched_insert(
            updates={name: column(SOURCE_ALIAS, name) for name in columns},
            predicate=upsert_rows_predicate(OP_COLUMN, DELETE_OP) if has_op else None,
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
    required_columns: Sequence[str] | None = None,
    profile: bool = False,
) -> UpsertResult:
    """MERGEs ``batch`` into the Delta table at ``table_uri`` and reports what the commit did.

    Matched rows are updated only when a non-key column really changed (compared null-safely), so a
    batch that is already in reports 0 inserted, 0 updated and writes no new version. With a
    ``partition``, the merge predicate carries its value as a literal: delta-rs prunes every other
    partition, which is neither read nor rewritten. The batch is validated in memory first; a
    refused batch leaves the table exactly as it was.

    Every count comes from the merge's metrics or from the log of the snapshots before and after
    the commit (``numRecords`` minus deletion vectors, see ``snapshot_counts``). No data file is
    read to count.

    Re-runs: a batch is merged every time it is sent, so sending a partition's batch again
    converges the partition to it and the counts say what that took: 0 inserted and 0 updated
    (no commit) if it is all in, or the rows deleted out of band since reported as inserted,
    the values changed since as updated. Nothing in the log (application transactions, batch
    ids) ever stops a merge.

    Concurrency: when another writer's commit conflicts with this merge's (it changed the same
    partition), the table is reloaded and the merge run again on the new snapshot, its
    before-counts re-read, up to ``retry.max_attempts`` times with jittered backoff
    (``UpsertResult.commit_attempts``). Only commit conflicts are retried; a table whose
    protocol needs a feature delta-rs cannot write fails at once.

    Args:
        table_uri: The Delta table; created on first write, partitioned by ``partition``'s columns.
        batch: The rows to upsert.
        keys: The merge key columns; unique and non-null within the batch.
        partition: ``{column: value}`` of the one partition every row of the batch belongs to.
        storage_options: Options for the object store, passed to delta-rs.
        commit_metadata: Extra ``commitInfo`` entries written with the commit.
        retry: How often and how patiently to re-run a merge whose commit conflicted.
        idempotent: Record the merge scope's application transaction with each commit (on by
            default; see ``upsert_pipeline.delta.transactions``): lineage, and two concurrent
            merges of one scope then conflict. It never makes a batch be skipped.
        app_id: The merge scope's application id; by default
            ``upsert_pipeline:<table folder>:<partition>`` (``app_id_for``). It must name the
            merge's scope, never a narrower one.
        uri_policy: The allowed schemes and roots of ``table_uri``; by default the usual schemes,
            any root.
        snapshot: Load the batch as the complete truth of its ``partition``: that partition's
            rows whose key the batch lacks are deleted (other partitions are never touched).
        allow_empty_snapshot: Let an empty snapshot delete its whole partition.
        evolve_schema: Add the batch's columns that the table lacks (nullable) in the same
            commit; without it such a column is refused. With it, a batch may also lack a
            nullable column the table gained that way (a backfill of a day before the column
            came): the column is null in its rows.
        required_columns: The columns every batch must carry, such as a feed's declared
            schema; keys and partition columns always are. A nullable table column outside
            them that the batch lacks (gained by schema evolution) is null in its rows. By
            default (``None``): every not-null column with ``evolve_schema``, since a table
            that evolves may have gained any nullable one; every column of the table without.
        profile: Also profile the snapshot after the merge (``UpsertResult.profiles``, see
            ``upsert_pipeline.delta.profile``), from the add actions already in memory.

    A batch may carry the control column ``_op`` (see ``upsert_pipeline.delta.operations``):
    ``'D'`` deletes the row with that key, anything else upserts it; ``_op`` is never written.

    Returns:
        The commit's counts, versions and merge metrics.

    Raises:
        UpsertError: The batch was refused (a subclass names why); nothing was written, and a
            refused first batch creates no table.
        UnsupportedTableFeatureError: The table requires a feature delta-rs cannot write.
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
    check_distinct_names(source.column_names)
    check_typed(source, ignore=(OP_COLUMN,))
    check_storable(source, ignore=(OP_COLUMN,))
    check_keys(source, keys)
    missing = [name for name in required_columns or () if name not in source.column_names]
    if missing:
        raise MissingColumnError(f"batch lacks required column(s) {missing}")
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
        required_columns=None if required_columns is None else frozenset(required_columns),
        profile=profile,
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
            if is_unsupported_table_feature(error):
                raise UnsupportedTableFeatureError(
                    f"{table_uri} requires a table feature delta-rs cannot write; nothing was "
                    f"written: {error}"
                ) from error
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
