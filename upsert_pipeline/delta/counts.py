"""Row counts read from the Delta log: the sum of ``numRecords`` over a snapshot's add actions.

Nothing here opens a data file. ``DeltaTable.get_add_actions`` answers from the snapshot that the
``DeltaTable`` object already holds in memory, so a count costs about a millisecond however large
the table is.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from upsert_pipeline.delta.result import PartitionValue, RowCounts


def _known_sum(num_records: pa.ChunkedArray) -> int | None:
    """The sum of ``num_records``, or ``None`` when any file lacks the stat."""
    if num_records.null_count:
        return None
    return int(pc.sum(num_records).as_py() or 0)


def _partition_mask(
    actions: pa.Table, partition: Mapping[str, PartitionValue]
) -> pa.ChunkedArray | pa.Array:
    mask: pa.ChunkedArray | pa.Array = pa.array([True] * actions.num_rows, pa.bool_())
    for column, value in partition.items():
        values = actions.column(f"partition.{column}")
        equal = pc.equal(values, pa.scalar(value).cast(values.type))
        mask = pc.and_(mask, pc.fill_null(equal, False))
    return mask


def snapshot_counts(
    table: DeltaTable, partition: Mapping[str, PartitionValue] | None = None
) -> RowCounts:
    """Counts the rows of the snapshot ``table`` holds, from its add actions alone.

    Args:
        table: A loaded table; its in-memory snapshot is what is counted.
        partition: ``{column: value}`` of one partition to count as well, or ``None``.

    Returns:
        The table's (and the partition's) row counts at ``table.version()``.

    Example:
        >>> counts = snapshot_counts(DeltaTable("data/lake/orders"), {"order_date": "2026-11-02"})
        >>> counts.partition_rows
        412
    """
    actions = pa.table(table.get_add_actions(flatten=True))
    num_records = actions.column("num_records")
    table_rows = _known_sum(num_records)
    if partition is None:
        return RowCounts(
            version=table.version(),
            table_rows=table_rows,
            partition_rows=None,
            table_files=actions.num_rows,
            partition_files=0,
            files_without_stats=num_records.null_count,
        )
    in_partition = pc.filter(num_records, _partition_mask(actions, partition))
    return RowCounts(
        version=table.version(),
        table_rows=table_rows,
        partition_rows=_known_sum(in_partition),
        table_files=actions.num_rows,
        partition_files=len(in_partition),
        files_without_stats=in_partition.null_count,
    )


def read_row_counts(
    table_uri: str,
    *,
    partition: Mapping[str, PartitionValue] | None = None,
    version: int | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> RowCounts:
    """Loads a table's log and counts its rows without reading any data file.

    Args:
        table_uri: The Delta table's URI.
        partition: ``{column: value}`` of one partition to count as well, or ``None``.
        version: The version to count; the latest when ``None``.
        storage_options: Options for the object store, passed to delta-rs.

    Returns:
        The row counts at that version.

    Example:
        >>> read_row_counts("data/lake/orders", partition={"order_date": "2026-11-02"}).table_rows
        5893
    """
    table = DeltaTable(
        table_uri,
        version=version,
        storage_options=dict(storage_options) if storage_options else None,
    )
    return snapshot_counts(table, partition)
