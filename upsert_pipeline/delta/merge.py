"""``upsert``: one MERGE of a batch into a Delta table, with its counts read from the commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import TableNotFoundError

from upsert_pipeline.delta.counts import snapshot_counts
from upsert_pipeline.delta.errors import PartitionSpecError
from upsert_pipeline.delta.predicates import (
    SOURCE_ALIAS,
    TARGET_ALIAS,
    changed_predicate,
    check_identifier,
    merge_predicate,
)
from upsert_pipeline.delta.result import PartitionValue, UpsertResult
from upsert_pipeline.delta.validation import check_keys, check_partition, conform, storage_schema

Batch: TypeAlias = "pa.Table | pl.DataFrame"
"""What ``upsert`` takes: a pyarrow Table or a polars DataFrame."""


def _as_arrow(batch: Batch) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pl.DataFrame):
        return batch.to_arrow()
    raise TypeError(f"a batch is a pyarrow Table or a polars DataFrame, not {type(batch).__name__}")


def _open_or_create(
    table_uri: str,
    schema: pa.Schema,
    partition_by: list[str],
    storage_options: dict[str, str] | None,
) -> DeltaTable:
    """Loads the table, creating it empty (version 0) on first write.

    ``mode="ignore"`` makes creation safe when two writers race to create the same table.
    """
    try:
        return DeltaTable(table_uri, storage_options=storage_options)
    except TableNotFoundError:
        return DeltaTable.create(
            table_uri,
            storage_schema(schema),
            partition_by=partition_by or None,
            mode="ignore",
            storage_options=storage_options,
        )


def _check_partitioning(table: DeltaTable, partition: Mapping[str, PartitionValue]) -> None:
    partition_columns = table.metadata().partition_columns
    unknown = [name for name in partition if name not in partition_columns]
    if unknown:
        raise PartitionSpecError(
            f"table is partitioned by {partition_columns}, not by {unknown}; "
            "a partition scope must name the table's partition columns"
        )


def upsert(
    table_uri: str,
    batch: Batch,
    *,
    keys: Sequence[str],
    partition: Mapping[str, PartitionValue] | None = None,
    storage_options: Mapping[str, str] | None = None,
    commit_metadata: Mapping[str, str] | None = None,
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

    Args:
        table_uri: The Delta table; created on first write, partitioned by ``partition``'s columns.
        batch: The rows to upsert.
        keys: The merge key columns; unique and non-null within the batch.
        partition: ``{column: value}`` of the one partition every row of the batch belongs to.
        storage_options: Options for the object store, passed to delta-rs.
        commit_metadata: Extra ``commitInfo`` entries written with the commit.

    Returns:
        The commit's counts, versions and merge metrics.

    Raises:
        UpsertError: The batch was refused (a subclass names why); nothing was written.

    Example:
        >>> result = upsert(
        ...     "data/lake/orders", batch, keys=["order_id"], partition={"order_date": "2026-11-02"}
        ... )
        >>> result.inserted, result.updated, result.unchanged, result.partition_rows
        (412, 0, 0, 412)
    """
    source = _as_arrow(batch)
    keys = list(keys)
    for name in source.column_names:
        check_identifier(name)
    check_keys(source, keys)
    if partition:
        check_partition(source, partition)

    options = dict(storage_options) if storage_options else None
    table = _open_or_create(table_uri, source.schema, list(partition or {}), options)
    if partition:
        _check_partitioning(table, partition)
    table_schema = pa.schema(table.schema().to_arrow())
    source = conform(source, table_schema)

    before = snapshot_counts(table, partition)
    unmatched = [
        name for name in table_schema.names if name not in keys and name not in (partition or {})
    ]
    merger = table.merge(
        source,
        predicate=merge_predicate(keys, partition),
        source_alias=SOURCE_ALIAS,
        target_alias=TARGET_ALIAS,
        commit_properties=CommitProperties(custom_metadata=dict(commit_metadata or {})),
    )
    change = changed_predicate(unmatched)
    if change is not None:
        merger = merger.when_matched_update_all(predicate=change)
    metrics = merger.when_not_matched_insert_all().execute()
    after = snapshot_counts(table, partition)

    source_rows = int(metrics["num_source_rows"])
    inserted = int(metrics["num_target_rows_inserted"])
    updated = int(metrics["num_target_rows_updated"])
    deleted = int(metrics["num_target_rows_deleted"])
    return UpsertResult(
        table_uri=table_uri,
        partition=dict(partition) if partition else None,
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
    )
