"""Upserts into Delta Lake whose row counts come from the merge commit and the Delta log.

Plain Python with no Dagster import: usable from any orchestrator, script or test.
"""

from upsert_pipeline.delta.counts import read_row_counts, snapshot_counts
from upsert_pipeline.delta.errors import (
    BatchSchemaError,
    ColumnTypeError,
    DuplicateKeyError,
    InvalidIdentifierError,
    MissingColumnError,
    NullKeyError,
    PartitionMismatchError,
    PartitionSpecError,
    UnexpectedColumnError,
    UpsertError,
)
from upsert_pipeline.delta.merge import Batch, upsert
from upsert_pipeline.delta.result import PartitionValue, RowCounts, UpsertResult

__all__ = [
    "Batch",
    "BatchSchemaError",
    "ColumnTypeError",
    "DuplicateKeyError",
    "InvalidIdentifierError",
    "MissingColumnError",
    "NullKeyError",
    "PartitionMismatchError",
    "PartitionSpecError",
    "PartitionValue",
    "RowCounts",
    "UnexpectedColumnError",
    "UpsertError",
    "UpsertResult",
    "read_row_counts",
    "snapshot_counts",
    "upsert",
]
