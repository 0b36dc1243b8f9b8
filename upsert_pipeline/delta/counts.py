"""Row counts read from the Delta log: ``numRecords`` of the add actions, minus deletion vectors.

Nothing here opens a data file. ``DeltaTable.get_add_actions`` answers from the snapshot that the
``DeltaTable`` object already holds in memory, so a count of an ordinary table costs about a
millisecond however large the table is.

A table written by Spark or Databricks may carry deletion vectors: a file's ``numRecords`` then
still counts the rows a deletion vector has removed. Only for a table whose protocol lists the
``deletionVectors`` feature are the deletion vectors read (``DeltaTable.deletion_vectors()``:
the small deletion-vector files, never a data file, whether the vectors arrived in a JSON commit
or a checkpoint), and each file's removed rows subtracted. A count that cannot be known (a file
without ``numRecords``, a deletion vector that cannot be read or matched to its file) is ``None``:
never a number that may be too high.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from upsert_pipeline.delta.result import PartitionValue, RowCounts

DELETION_VECTORS_FEATURE = "deletionVectors"
"""The table feature (protocol reader/writer features) of deletion vectors."""


def uses_deletion_vectors(table: DeltaTable) -> bool:
    """Whether the snapshot's protocol allows deletion vectors (so ``numRecords`` may overcount)."""
    protocol = table.protocol()
    features = [*(protocol.reader_features or ()), *(protocol.writer_features or ())]
    return DELETION_VECTORS_FEATURE in features


def _known_sum(values: pa.ChunkedArray | pa.Array) -> int | None:
    """The sum of ``values``, or ``None`` when any of them is null (unknown)."""
    if values.null_count:
        return None
    return int(pc.sum(values).as_py() or 0)


def _relative(path: str, root: str) -> str | None:
    """``path`` relative to the table root ``root``, percent-decoded; ``None`` if outside it."""
    path, root = unquote(path), unquote(root.rstrip("/") + "/")
    return path[len(root) :] if path.startswith(root) else None


def _removed_rows(table: DeltaTable, paths: pa.ChunkedArray | pa.Array) -> pa.Array | None:
    """Rows a deletion vector removes from each add action (0 for a file without one).

    Args:
        table: The snapshot.
        paths: The add actions' relative paths, in their order.

    Returns:
        One count per add action, or ``None`` if the deletion vectors cannot be read, or one
        of them cannot be matched to an add action of the snapshot.
    """
    try:
        vectors = pa.table(table.deletion_vectors())
    except Exception:  # an unreadable deletion vector makes the count unknown
        return None
    index = {unquote(str(path)): row for row, path in enumerate(paths.to_pylist())}
    removed = [0] * len(index)
    if not vectors.num_rows:
        return pa.array(removed, pa.int64())
    keep_masks = vectors.column("selection_vector").combine_chunks()
    # A keep-mask may stop after its last removed row: count the False entries, not the length.
    removed_per_vector = pc.subtract(
        pc.list_value_length(keep_masks),
        _true_per_list(keep_masks),
    ).to_pylist()
    root = table.table_uri
    for file_uri, count in zip(
        vectors.column("filepath").to_pylist(), removed_per_vector, strict=True
    ):
        row = index.get(_relative(str(file_uri), root) or "")
        if row is None or count is None:
            return None
        removed[row] += int(count)
    return pa.array(removed, pa.int64())


def _true_per_list(masks: pa.ListArray) -> pa.Array:
    """How many ``True`` entries each list of ``masks`` holds."""
    flat = pc.list_flatten(masks)
    parents = pc.list_parent_indices(masks)
    kept = pa.table({"list": parents, "keep": flat}).filter(pc.field("keep"))
    per_list = kept.group_by("list").aggregate([([], "count_all")])
    counts = [0] * len(masks)
    for position, count in zip(
        per_list.column("list").to_pylist(), per_list.column("count_all").to_pylist(), strict=True
    ):
        counts[position] = count
    return pa.array(counts, pa.int64())


def _live_rows(table: DeltaTable, actions: pa.Table) -> pa.ChunkedArray | pa.Array:
    """Each add action's live rows: ``numRecords`` minus deletion vectors; null where unknown."""
    num_records = actions.column("num_records")
    if not actions.num_rows or not uses_deletion_vectors(table):
        return num_records
    removed = _removed_rows(table, actions.column("path"))
    if removed is None:
        return pa.nulls(actions.num_rows, pa.int64())
    return pc.subtract(num_records.cast(pa.int64()), removed)


def _partition_mask(
    actions: pa.Table, partition: Mapping[str, PartitionValue | None]
) -> pa.ChunkedArray | pa.Array:
    """The add actions of one partition; a ``None`` value selects the null partition."""
    mask: pa.ChunkedArray | pa.Array = pa.array([True] * actions.num_rows, pa.bool_())
    for column, value in partition.items():
        values = actions.column(f"partition.{column}")
        if value is None:
            mask = pc.and_(mask, pc.is_null(values))
            continue
        equal = pc.equal(values, pa.scalar(value).cast(values.type))
        mask = pc.and_(mask, pc.fill_null(equal, False))
    return mask


def snapshot_counts(
    table: DeltaTable, partition: Mapping[str, PartitionValue] | None = None
) -> RowCounts:
    """Counts the live rows of the snapshot ``table`` holds, from its log and deletion vectors.

    Every count of this package (before and after an upsert, ``read_row_counts``) goes through
    here, so all of them agree.

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
    [counts] = snapshot_partition_counts(table, [partition])
    return counts


def snapshot_partition_counts(
    table: DeltaTable, partitions: Sequence[Mapping[str, PartitionValue | None] | None]
) -> list[RowCounts]:
    """``snapshot_counts`` of each of ``partitions``, in order, reading the snapshot's add
    actions and deletion vectors once for all of them.

    Args:
        table: A loaded table; its in-memory snapshot is what is counted.
        partitions: ``{column: value}`` of each partition to count (a ``None`` value is the
            null partition: rows whose partition value is null), or ``None`` for the table
            alone.
    """
    actions = pa.table(table.get_add_actions(flatten=True))
    live = _live_rows(table, actions)
    table_rows = _known_sum(live)
    all_counts = []
    for partition in partitions:
        if partition is None:
            all_counts.append(
                RowCounts(
                    version=table.version(),
                    table_rows=table_rows,
                    partition_rows=None,
                    table_files=actions.num_rows,
                    partition_files=0,
                    files_without_stats=actions.column("num_records").null_count,
                )
            )
            continue
        mask = _partition_mask(actions, partition)
        in_partition = pc.filter(live, mask)
        all_counts.append(
            RowCounts(
                version=table.version(),
                table_rows=table_rows,
                partition_rows=_known_sum(in_partition),
                table_files=actions.num_rows,
                partition_files=len(in_partition),
                files_without_stats=pc.filter(actions.column("num_records"), mask).null_count,
            )
        )
    return all_counts


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
        The row counts at that version (see ``snapshot_counts``).

    Example:
        >>> read_row_counts("data/lake/orders", partition={"order_date": "2026-11-02"}).table_rows
        5893
    """
    [counts] = read_partition_row_counts(
        table_uri, [partition], version=version, storage_options=storage_options
    )
    return counts


def read_partition_row_counts(
    table_uri: str,
    partitions: Sequence[Mapping[str, PartitionValue] | None],
    *,
    version: int | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> list[RowCounts]:
    """``read_row_counts`` of each of ``partitions``, in order, loading the log once.

    Args:
        table_uri: The Delta table's URI.
        partitions: ``{column: value}`` of each partition to count, or ``None`` for the table
            alone.
        version: The version to count; the latest when ``None``.
        storage_options: Options for the object store, passed to delta-rs.
    """
    table = DeltaTable(
        table_uri,
        version=version,
        storage_options=dict(storage_options) if storage_options else None,
    )
    return snapshot_partition_counts(table, partitions)
