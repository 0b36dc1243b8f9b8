"""The typed result of one upsert: every count comes from the merge's metrics or the Delta log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from upsert_pipeline.delta.profile import Profile

PartitionValue = str | int | dt.date
"""A partition column's value: a string, an integer, a date or a timestamp (a datetime)."""


@dataclass(frozen=True, kw_only=True)
class RowCounts:
    """Row counts of one table version: ``numRecords`` of its add actions minus deletion vectors.

    A count is ``None`` (unknown) when any data file it covers carries no ``numRecords`` stat, or
    the table's deletion vectors cannot be read: it is never estimated and never replaced by a
    scan.

    Attributes:
        version: The table version the counts describe.
        table_rows: Rows in the whole table, or ``None`` if unknown.
        partition_rows: Rows in the requested partition, ``None`` if unknown or if no partition
            was asked for.
        table_files: Data files in the table.
        partition_files: Data files in the requested partition (0 without a partition).
        files_without_stats: Data files (of the partition if one was asked for, else of the
            table) whose add action has no ``numRecords``.
    """

    version: int
    table_rows: int | None
    partition_rows: int | None
    table_files: int
    partition_files: int
    files_without_stats: int


@dataclass(frozen=True, kw_only=True)
class UpsertResult:
    """What one upsert did, read from the MERGE's metrics and the log of the snapshots around it.

    Attributes:
        table_uri: The Delta table merged into.
        partition: The ``{column: value}`` the merge was scoped to, or ``None``.
        source_rows: Rows in the batch, as the merge counted them.
        inserted: Rows the merge inserted.
        updated: Matched rows the merge rewrote because a non-key column really changed.
        deleted: Rows the merge deleted.
        copied: Unchanged target rows the merge copied into rewritten files.
        unchanged: Source rows the merge left as they were: ``source_rows - inserted - updated -
            deleted``, where in snapshot mode ``deleted`` (rows absent from the batch) is not
            subtracted, since those rows were not in the batch. A tombstone for a key that does
            not exist counts as unchanged.
        read_version: The version of the snapshot the merge started from.
        version: The table version after the merge; equals ``read_version`` when nothing changed.
        before: Row counts of the snapshot the merge started from.
        after: Row counts of the snapshot after the commit.
        files_added: Data files the commit added.
        files_removed: Data files the commit removed.
        files_scanned: Target files the merge read.
        files_skipped: Target files the merge pruned without reading.
        execution_time_ms: The merge's execution time, as delta-rs reported it.
        scan_time_ms: Time spent scanning the target, as delta-rs reported it.
        rewrite_time_ms: Time spent rewriting files, as delta-rs reported it.
        commit_attempts: How many times the merge ran: 1, plus one per commit conflict that made
            it reload the table and merge again (each time with before-counts re-read).
        app_id: The Delta application id of the merge scope recorded with the commit, or
            ``None`` when none is recorded.
        snapshot: The batch was loaded as the complete truth of its partition: ``deleted``
            counts the partition's rows whose key it lacked.
        tombstones: Source rows with ``_op = 'D'``.
        columns_added: Columns the merge added to the table (schema evolution).
        columns_filled: Nullable table columns the batch lacked (gained by schema evolution
            after the batch's day), written as null in its rows.
        schema: The table's schema after the upsert, or ``None`` if not read.
        schema_before: The table's schema in the snapshot the merge read, or ``None``.
        execute_ms: Wall time of the merge's ``execute()``: delta-rs's ``execution_time_ms``
            plus the commit (conflict check and log write).
        profiles: With ``profile=True``, the column profiles of the snapshot after the merge,
            from the same in-memory add actions the counts come from: the partition's then the
            table's (the table's alone without a partition); else empty.
    """

    table_uri: str
    partition: Mapping[str, PartitionValue] | None
    source_rows: int
    inserted: int
    updated: int
    deleted: int
    copied: int
    unchanged: int
    read_version: int
    version: int
    before: RowCounts
    after: RowCounts
    files_added: int
    files_removed: int
    files_scanned: int
    files_skipped: int
    execution_time_ms: int
    scan_time_ms: int
    rewrite_time_ms: int
    commit_attempts: int = 1
    app_id: str | None = None
    snapshot: bool = False
    tombstones: int = 0
    columns_added: tuple[str, ...] = ()
    columns_filled: tuple[str, ...] = ()
    schema: pa.Schema | None = None
    schema_before: pa.Schema | None = None
    execute_ms: int = 0
    profiles: tuple[Profile, ...] = ()

    @property
    def concurrent_commits(self) -> int:
        """Commits of other writers between the snapshot read and this commit.

        delta-rs moves a commit past concurrent commits that touched nothing the merge read
        (other partitions). Partition counts still reconcile
        (``before.partition_rows + inserted - deleted == partition_rows``); the table's do not,
        since ``after`` includes those commits too.
        """
        return max(self.version - self.read_version - 1, 0) if self.committed else 0

    @property
    def committed(self) -> bool:
        """Whether the merge wrote a new table version."""
        return self.version != self.read_version

    @property
    def partition_rows(self) -> int | None:
        """Rows in the partition after the commit, or ``None`` if unknown or unpartitioned."""
        return self.after.partition_rows

    @property
    def table_rows(self) -> int | None:
        """Rows in the whole table after the commit, or ``None`` if unknown."""
        return self.after.table_rows
