"""What a batch asks of its rows: upsert, tombstone (``_op = 'D'``), or a whole-partition snapshot.

A batch may carry the control column ``_op``: a row whose ``_op`` is ``'D'`` deletes the row with
its key; any other value, or null, upserts it. ``_op`` is never written to the table. In snapshot
mode the batch is the complete truth for its partition: rows of the partition whose key it lacks
are deleted, and it carries no tombstones.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from upsert_pipeline.delta.errors import (
    ColumnTypeError,
    EmptySnapshotError,
    SnapshotScopeError,
    TombstoneInSnapshotError,
)
from upsert_pipeline.delta.result import PartitionValue

OP_COLUMN = "_op"
"""The control column of a batch; never written to the table."""
DELETE_OP = "D"
"""The ``_op`` value of a tombstone."""


def with_string_op(batch: pa.Table) -> pa.Table:
    """``batch`` with its ``_op`` column (if any) as ``string``: all-null columns arrive untyped.

    Raises:
        ColumnTypeError: ``_op`` is neither a string nor an all-null column.
    """
    if OP_COLUMN not in batch.column_names:
        return batch
    op = batch.column(OP_COLUMN)
    if not (
        pa.types.is_null(op.type)
        or pa.types.is_string(op.type)
        or pa.types.is_large_string(op.type)
        or pa.types.is_string_view(op.type)
    ):
        raise ColumnTypeError(f"control column {OP_COLUMN!r} is {op.type}, not a string")
    index = batch.column_names.index(OP_COLUMN)
    return batch.set_column(index, pa.field(OP_COLUMN, pa.string()), op.cast(pa.string()))


def tombstones(batch: pa.Table) -> int:
    """How many rows of ``batch`` are tombstones."""
    if OP_COLUMN not in batch.column_names:
        return 0
    return int(pc.sum(pc.equal(batch.column(OP_COLUMN), DELETE_OP)).as_py() or 0)


def check_snapshot(
    batch: pa.Table,
    partition: Mapping[str, PartitionValue] | None,
    *,
    allow_empty: bool,
) -> None:
    """Refuses snapshot loads that could delete more than their partition's absent rows.

    Raises:
        SnapshotScopeError: No partition: the snapshot would reach across the whole table.
        TombstoneInSnapshotError: The batch carries tombstones.
        EmptySnapshotError: The batch is empty and ``allow_empty`` is false.
    """
    if not partition:
        raise SnapshotScopeError(
            "a snapshot load needs a partition: it deletes the rows of that partition whose key "
            "the batch lacks, and must never reach another partition"
        )
    if count := tombstones(batch):
        raise TombstoneInSnapshotError(
            f"snapshot batch carries {count} tombstone(s); leave deleted rows out of a snapshot"
        )
    if batch.num_rows == 0 and not allow_empty:
        raise EmptySnapshotError(
            f"empty snapshot of partition {dict(partition)} would delete all its rows; "
            "pass allow_empty_snapshot=True if that is meant"
        )
