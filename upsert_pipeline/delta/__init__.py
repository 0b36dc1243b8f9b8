"""Upserts into Delta Lake whose row counts come from the merge commit and the Delta log.

Plain Python with no Dagster import: usable from any orchestrator, script or test.
"""

from upsert_pipeline.delta.counts import (
    read_partition_row_counts,
    read_row_counts,
    snapshot_counts,
    snapshot_partition_counts,
)
from upsert_pipeline.delta.errors import (
    BatchSchemaError,
    ColumnTypeError,
    CommitRetriesExhaustedError,
    DisallowedUriError,
    DuplicateColumnError,
    DuplicateKeyError,
    EmptySnapshotError,
    InvalidIdentifierError,
    InvalidPartitionValueError,
    MissingColumnError,
    NullKeyError,
    NullValueError,
    PartitionMismatchError,
    PartitionSpecError,
    SnapshotScopeError,
    TombstoneInSnapshotError,
    UnexpectedColumnError,
    UnsafeObjectStoreError,
    UnsupportedTableFeatureError,
    UpsertError,
)
from upsert_pipeline.delta.merge import Batch, upsert
from upsert_pipeline.delta.result import PartitionValue, RowCounts, UpsertResult
from upsert_pipeline.delta.retry import RetryPolicy, is_commit_conflict
from upsert_pipeline.delta.transactions import app_id_for
from upsert_pipeline.delta.uris import DEFAULT_URI_POLICY, UriPolicy

__all__ = [
    "DEFAULT_URI_POLICY",
    "Batch",
    "BatchSchemaError",
    "ColumnTypeError",
    "CommitRetriesExhaustedError",
    "DisallowedUriError",
    "DuplicateColumnError",
    "DuplicateKeyError",
    "EmptySnapshotError",
    "InvalidIdentifierError",
    "InvalidPartitionValueError",
    "MissingColumnError",
    "NullKeyError",
    "NullValueError",
    "PartitionMismatchError",
    "PartitionSpecError",
    "PartitionValue",
    "RetryPolicy",
    "RowCounts",
    "SnapshotScopeError",
    "TombstoneInSnapshotError",
    "UnexpectedColumnError",
    "UnsafeObjectStoreError",
    "UnsupportedTableFeatureError",
    "UpsertError",
    "UpsertResult",
    "UriPolicy",
    "app_id_for",
    "is_commit_conflict",
    "read_partition_row_counts",
    "read_row_counts",
    "snapshot_counts",
    "snapshot_partition_counts",
    "upsert",
]
