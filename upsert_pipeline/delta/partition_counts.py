"""Every partition of a snapshot, with its files, bytes and rows, from the log alone.

Rows go through ``counts.snapshot_counts`` (the one counting path: ``numRecords`` minus deletion
vectors), so these counts agree with every other count of the package. Nothing here opens a data
file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
from deltalake import DeltaTable

from upsert_pipeline.delta.counts import snapshot_partition_counts
from upsert_pipeline.delta.result import PartitionValue

PARTITION_PREFIX = "partition."
"""How ``get_add_actions(flatten=True)`` names a partition column."""


@dataclass(frozen=True, kw_only=True)
class PartitionFiles:
    """One partition of a snapshot.

    Attributes:
        label: ``order_date=2026-11-02`` (columns joined by ``/``; ``""`` for an unpartitioned
            table).
        values: ``{column: value}`` of the partition (``{}`` for an unpartitioned table); a
            ``None`` value is a null partition value.
        files: Data files in the partition.
        bytes: Their total size.
        sizes: Each file's size, in bytes.
    """

    label: str
    values: Mapping[str, PartitionValue | None]
    files: int
    bytes: int
    sizes: tuple[int, ...]


def partition_label(values: Mapping[str, PartitionValue | None]) -> str:
    """``order_date=2026-11-02``: the partition's columns and values, Hive-style."""
    return "/".join(
        f"{column}={'__null__' if value is None else value}" for column, value in values.items()
    )


def snapshot_partitions(table: DeltaTable) -> list[PartitionFiles]:
    """The partitions of the snapshot ``table`` holds, sorted by label, from its add actions."""
    actions = pa.table(table.get_add_actions(flatten=True))
    columns = list(table.metadata().partition_columns)
    grouped: dict[tuple[object, ...], list[int]] = {}
    values_of: dict[tuple[object, ...], dict[str, PartitionValue | None]] = {}
    partition_values = [
        actions.column(f"{PARTITION_PREFIX}{column}").to_pylist() for column in columns
    ]
    for row, size in enumerate(actions.column("size_bytes").to_pylist()):
        key = tuple(values[row] for values in partition_values)
        grouped.setdefault(key, []).append(int(size))
        values_of[key] = dict(zip(columns, key, strict=True))
    partitions = [
        PartitionFiles(
            label=partition_label(values_of[key]),
            values=values_of[key],
            files=len(sizes),
            bytes=sum(sizes),
            sizes=tuple(sizes),
        )
        for key, sizes in grouped.items()
    ]
    return sorted(partitions, key=lambda partition: partition.label)


def partition_row_counts(
    table: DeltaTable, partitions: list[PartitionFiles] | None = None
) -> dict[str, int | None]:
    """Each partition's live rows, by label; ``None`` where the log cannot tell.

    A partition with a null value (rows written without a partition value) is counted like any
    other. An unpartitioned table has no partitions (``{}``).
    """
    if not table.metadata().partition_columns:
        return {}
    every = partitions if partitions is not None else snapshot_partitions(table)
    # One read of the add actions and deletion vectors for all of them.
    counted = snapshot_partition_counts(table, [dict(p.values) for p in every])
    return {p.label: c.partition_rows for p, c in zip(every, counted, strict=True)}
