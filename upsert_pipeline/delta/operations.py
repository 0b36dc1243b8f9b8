"""What a batch asks of its rows: upsert, tombstone (``_op = 'D'``), or a whole-partition snapshot.

A batch may carry the control column ``_op``: a row whose ``_op`` is ``'D'`` deletes the row with
its key; any other value, or null, upserts it. ``_op`` is never written to the table. In snapshot
mode the batch is the complete truth for its partition: rows of the partition whose key it lacks
are deleted, and it carries no tombstones.

A snapshot is merged as an ordinary upsert plus one tombstone for each key of the partition that
the batch lacks (``snapshot_tombstones``), not with ``when_not_matched_by_source_delete``: delta-rs
1.6.6 plans a merge that has a not-matched-by-source clause without its early partition filter
(whatever literals the predicates carry), so it scanned every partition's files, where tombstones
keep the merge pruned to the one partition it loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, QueryBuilder

from upsert_pipeline.delta.errors import (
    ColumnTypeError,
    EmptySnapshotError,
    SnapshotScopeError,
    TombstoneInSnapshotError,
)
from upsert_pipeline.delta.predicates import keys_query
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


_TARGET = "target"


def snapshot_tombstones(
    table: DeltaTable,
    batch: pa.Table,
    keys: Sequence[str],
    partition: Mapping[str, PartitionValue],
) -> tuple[pa.Table, int]:
    """``batch`` with ``_op`` tombstones added for the partition's keys that it lacks.

    The partition's keys are read from the snapshot ``table`` holds (its key columns only, of
    that partition's files only; rows removed by deletion vectors are not returned). A merge of
    the result deletes exactly the rows a snapshot load must delete, in the same commit as its
    inserts and updates. If another writer changes the partition meanwhile, the merge's commit
    conflicts and is re-run on the new snapshot, keys read again.

    Args:
        table: The snapshot the merge runs on.
        batch: The snapshot batch, conformed to the table's schema; an ``_op`` column it may
            carry holds no tombstone (``check_snapshot``) and is replaced.
        keys: The merge keys.
        partition: The one partition the snapshot loads.

    Returns:
        The batch (``_op`` null) followed by the tombstones (``_op = 'D'``, keys and partition
        values set, every other column null), and how many tombstones were added.
    """
    if OP_COLUMN in batch.column_names:  # all null: check_snapshot refused any tombstone
        batch = batch.drop_columns([OP_COLUMN])
    reader = QueryBuilder().register(_TARGET, table).execute(keys_query(_TARGET, keys, partition))
    existing = pa.table(reader)
    key_types = [batch.schema.field(key).type for key in keys]
    existing = pa.table(
        [
            existing.column(key).cast(key_type)
            for key, key_type in zip(keys, key_types, strict=True)
        ],
        names=list(keys),
    )
    absent = existing.join(batch.select(list(keys)), list(keys), join_type="left anti")
    count = absent.num_rows
    columns = []
    for field in batch.schema:
        if field.name in keys:
            columns.append(absent.column(field.name).combine_chunks())
        elif field.name in partition:
            columns.append(pa.array([partition[field.name]] * count).cast(field.type))
        else:
            columns.append(pa.nulls(count, field.type))
    # A tombstone carries only its key: its other columns are null, so they are nullable in the
    # merge's source even where the table declares them NOT NULL (a tombstone is never written).
    schema = pa.schema(
        [
            field if field.name in keys or field.name in partition else field.with_nullable(True)
            for field in batch.schema
        ]
    )
    tombstone_rows = pa.Table.from_arrays(columns, schema=schema)
    op = pa.field(OP_COLUMN, pa.string())
    merged = pa.concat_tables([batch.cast(schema), tombstone_rows])
    ops = pa.array([None] * batch.num_rows + [DELETE_OP] * count, pa.string())
    return merged.append_column(op, ops), count
