"""``maintain``: compaction of the partitions that need it, vacuum and a checkpoint, with proof
from the log that no row count changed.

Plain Python, no Dagster. Every figure comes from the log: files and bytes from the add actions,
rows from ``numRecords`` minus deletion vectors (``counts.snapshot_counts``), before and after.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

from deltalake import CommitProperties, DeltaTable

from upsert_pipeline.delta.counts import snapshot_counts
from upsert_pipeline.delta.history import Commit, commits_between
from upsert_pipeline.delta.log_files import log_filesystem, read_commit_actions
from upsert_pipeline.delta.partition_counts import (
    PartitionFiles,
    partition_row_counts,
    snapshot_partitions,
)
from upsert_pipeline.delta.retry import RetryPolicy, is_commit_conflict
from upsert_pipeline.delta.stores import ensure_safe_commits

_T = TypeVar("_T")
_MAX_RETENTION_HOURS = 100 * 365 * 24

DEFAULT_RETENTION_HOURS = 7 * 24
"""Vacuum keeps removed files younger than this (Delta's own default, 7 days)."""
RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"
"""The table property that sets the shortest retention vacuum may use (``interval 7 days``)."""
_HOURS_PER_UNIT = {"hour": 1, "day": 24, "week": 168}


class RetentionTooShortError(ValueError):
    """The vacuum retention is shorter than the table allows; nothing was changed."""


def minimum_retention_hours(table: DeltaTable) -> int:
    """The table's ``delta.deletedFileRetentionDuration`` in hours (7 days when unset).

    Raises:
        ValueError: The property is not an ``interval <n> <hours|days|weeks>``.
    """
    setting = table.metadata().configuration.get(RETENTION_PROPERTY)
    if not setting:
        return DEFAULT_RETENTION_HOURS
    words = setting.lower().split()
    if len(words) == 3 and words[0] == "interval" and words[1].isdigit():
        unit = _HOURS_PER_UNIT.get(words[2].removesuffix("s"))
        if unit is not None:
            return int(words[1]) * unit
    raise ValueError(f"{RETENTION_PROPERTY} = {setting!r} is not an interval in hours or days")


@dataclass(frozen=True, kw_only=True)
class MaintenancePolicy:
    """When a partition is compacted, and how long removed files are kept.

    Attributes:
        max_small_files: A partition with more small files than this is compacted.
        small_file_bytes: A data file smaller than this is small.
        target_size: The compacted files' target size in bytes; ``None`` for delta-rs's default
            (the table's ``delta.targetFileSize``, else 100 MiB).
        retention_hours: Vacuum deletes removed files older than this.
        enforce_retention_duration: Refuse a retention shorter than the table's
            ``delta.deletedFileRetentionDuration`` (7 days by default), as delta-rs does.
        checkpoint: Write a checkpoint at the final version.
    """

    max_small_files: int = 8
    small_file_bytes: int = 16 * 1024 * 1024
    target_size: int | None = None
    retention_hours: int = DEFAULT_RETENTION_HOURS
    enforce_retention_duration: bool = True
    checkpoint: bool = True


@dataclass(frozen=True, kw_only=True)
class MaintenanceResult:
    """What maintenance did to one table, and the row counts around it, from the log.

    Attributes:
        table_uri: The table.
        version_before: The version maintenance started from.
        version_after: The version after its last commit.
        commit_versions: The versions written between them (compactions, vacuum start and end).
        concurrent_commits: Those of ``commit_versions`` that changed data (someone else's
            writes): with any, the counts before and after may rightly differ.
        checkpoint_version: The version a checkpoint was written at, if one was.
        files_before: Data files before.
        files_after: Data files after.
        bytes_before: Their total size before.
        bytes_after: Their total size after.
        partitions_compacted: Labels of the partitions compacted (``""`` for a whole
            unpartitioned table).
        files_compacted: Files the compactions removed.
        files_written: Files the compactions wrote.
        files_vacuumed: Files vacuum deleted from storage.
        table_rows_before: Live rows of the table before, ``None`` if unknown.
        table_rows_after: Live rows of the table after, ``None`` if unknown.
        partition_rows_before: Live rows of each partition before (``{}`` when unpartitioned).
        partition_rows_after: Live rows of each partition after.
        partitions_skipped: Labels of partitions whose compaction conflicted with concurrent
            commits on every attempt, left as they were.
        vacuum_skipped: Whether the vacuum conflicted on every attempt and deleted nothing.
    """

    table_uri: str
    version_before: int
    version_after: int
    commit_versions: tuple[int, ...]
    concurrent_commits: tuple[int, ...]
    checkpoint_version: int | None
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    partitions_compacted: tuple[str, ...]
    files_compacted: int
    files_written: int
    files_vacuumed: int
    table_rows_before: int | None
    table_rows_after: int | None
    partition_rows_before: Mapping[str, int | None]
    partition_rows_after: Mapping[str, int | None]
    partitions_skipped: tuple[str, ...] = ()
    vacuum_skipped: bool = False

    def count_pairs(self) -> list[tuple[str, int | None, int | None]]:
        """``(scope, before, after)`` for the table (scope ``""``) and every partition."""
        labels = sorted({*self.partition_rows_before, *self.partition_rows_after})
        return [("", self.table_rows_before, self.table_rows_after)] + [
            (label, self.partition_rows_before.get(label), self.partition_rows_after.get(label))
            for label in labels
        ]

    @property
    def changed_counts(self) -> list[tuple[str, int | None, int | None]]:
        """The scopes whose known row count differs before and after (should be none)."""
        return [
            (scope, before, after)
            for scope, before, after in self.count_pairs()
            if before is not None and after is not None and before != after
        ]

    @property
    def unknown_counts(self) -> list[str]:
        """The scopes whose row count the log cannot give, before or after."""
        return [
            scope for scope, before, after in self.count_pairs() if before is None or after is None
        ]


def _needs_compaction(partition: PartitionFiles, policy: MaintenancePolicy) -> bool:
    small = sum(1 for size in partition.sizes if size < policy.small_file_bytes)
    return small > policy.max_small_files


def _filters(partition: PartitionFiles) -> list[tuple[str, str, Any]] | None:
    if not partition.values:
        return None
    return [
        (column, "=", None if value is None else str(value))
        for column, value in partition.values.items()
    ]


def _compact_if_needed(
    table: DeltaTable, label: str, policy: MaintenancePolicy, properties: CommitProperties
) -> dict[str, Any]:
    """Compacts the partition ``label`` of the snapshot ``table`` holds, if it still needs it."""
    current = next((p for p in snapshot_partitions(table) if p.label == label), None)
    if current is None or not _needs_compaction(current, policy):
        return {}
    return dict(
        table.optimize.compact(
            partition_filters=_filters(current),
            target_size=policy.target_size,
            commit_properties=properties,
        )
    )


def removed_since(
    table_uri: str,
    latest_version: int,
    cutoff_ms: int,
    storage_options: Mapping[str, str] | None = None,
) -> set[str]:
    """The paths (unescaped, relative to the table) of files removed at or after ``cutoff_ms``,
    by the ``deletionTimestamp`` of the remove actions in the log, read from the newest commit
    back to the first one older than the cutoff."""
    filesystem, log_path = log_filesystem(table_uri, storage_options)
    removed: set[str] = set()
    for version in range(latest_version, -1, -1):
        actions = read_commit_actions(filesystem, log_path, version)
        if actions is None:  # cleaned up: older than the log's retention, and than this window
            break
        committed_ms = None
        for action in actions:
            if "commitInfo" in action:
                committed_ms = action["commitInfo"].get("timestamp")
            remove = action.get("remove")
            if remove and int(remove.get("deletionTimestamp") or 0) >= cutoff_ms:
                removed.add(unquote(remove["path"]))
        if committed_ms is not None and int(committed_ms) < cutoff_ms:
            break
    return removed


def _vacuum(
    table: DeltaTable,
    policy: MaintenancePolicy,
    properties: CommitProperties,
    storage_options: Mapping[str, str] | None,
) -> list[str]:
    """Vacuums what delta-rs finds expired, never a file removed inside the retention window.

    delta-rs 1.6.6 judges a path by one of its tombstones: when a path was removed twice (a
    table with deletion vectors removes and re-adds a file to change its vector, and a
    compaction then removes it for good), it may take the older one and delete a file removed
    seconds ago, breaking time travel inside the window. So the candidates are listed first
    (a dry run) and checked against the log's remove actions; while any was removed inside the
    window, the retention is lengthened for this vacuum, which then deletes only files every
    tombstone of which is older. Such a file is vacuumed once its latest removal expires.
    """
    cutoff_ms = int((time.time() - policy.retention_hours * 3600) * 1000)
    recent = removed_since(table.table_uri, table.version(), cutoff_ms, storage_options)
    retention = policy.retention_hours
    while True:
        listed = table.vacuum(
            retention_hours=retention,
            dry_run=True,
            enforce_retention_duration=policy.enforce_retention_duration,
        )
        if not recent.intersection(unquote(path) for path in listed):
            break
        if retention >= _MAX_RETENTION_HOURS:
            return []
        retention = min(_MAX_RETENTION_HOURS, max(1, retention) * 4)
    return table.vacuum(
        retention_hours=retention,
        dry_run=False,
        enforce_retention_duration=policy.enforce_retention_duration,
        commit_properties=properties,
    )


def _retrying(table: DeltaTable, retry: RetryPolicy, step: Callable[[], _T]) -> _T | None:
    """``step()``, run again on a reloaded table while its commit conflicts with a concurrent
    one; ``None`` when every attempt conflicted."""
    rng = random.Random()
    for attempt in range(1, retry.max_attempts + 1):
        try:
            return step()
        except Exception as error:
            if not is_commit_conflict(error):
                raise
            if attempt == retry.max_attempts:
                return None
            time.sleep(retry.backoff_s(attempt, rng))
            table.update_incremental()
    return None  # pragma: no cover


def maintain(
    table_uri: str,
    *,
    policy: MaintenancePolicy | None = None,
    commit_metadata: Mapping[str, str] | None = None,
    storage_options: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
) -> MaintenanceResult:
    """Compacts the partitions that need it, vacuums old removed files, writes a checkpoint.

    A partition is compacted (``optimize.compact`` restricted to it by a partition filter) when
    it holds more than ``policy.max_small_files`` files smaller than ``policy.small_file_bytes``;
    each compaction is its own ``OPTIMIZE`` commit (no ``dataChange``). Vacuum then deletes the
    files removed more than ``policy.retention_hours`` ago (its ``VACUUM START`` / ``VACUUM END``
    commits), and a checkpoint is written at the final version. Every commit carries
    ``commit_metadata`` (the pipeline's markers). The row counts of the table and of each
    partition are read from the log before and after.

    Args:
        table_uri: The Delta table.
        policy: When to compact and what to keep; ``MaintenancePolicy()`` when ``None``.
        commit_metadata: ``commitInfo`` entries for every commit maintenance writes.
        storage_options: Object-store options, passed to delta-rs.
        retry: How often a compaction or the vacuum is run again when a concurrent commit (a
            merge into the same partition) made its commit conflict; after the last attempt it
            is skipped and the result says so, the rest of the maintenance goes on.

    Concurrency: each compaction and the vacuum commit on their own. When one conflicts with a
    concurrent commit, the table is reloaded and the partition looked at again (it may no longer
    need compacting); the merges are never held up.

    Returns:
        The work done and the counts around it.

    Raises:
        UnsafeObjectStoreError: The object store does not refuse a second create of a key (so
            a concurrent commit could be lost); raised before anything is written.
        deltalake.exceptions.TableNotFoundError: No table at ``table_uri``.
        RetentionTooShortError: ``policy.retention_hours`` is shorter than the table's
            ``delta.deletedFileRetentionDuration`` while ``enforce_retention_duration`` holds;
            raised before anything is written.

    Example:
        >>> result = maintain("data/lake/orders", commit_metadata={"dagster.asset": "orders"})
        >>> result.files_before, result.files_after, result.changed_counts
        (312, 30, [])
    """
    policy = policy or MaintenancePolicy()
    retry = retry or RetryPolicy()
    options = dict(storage_options) if storage_options else None
    # Maintenance commits like a merge: only where the store keeps concurrent commits apart.
    ensure_safe_commits(table_uri, options)
    properties = CommitProperties(custom_metadata=dict(commit_metadata or {}))
    table = DeltaTable(table_uri, storage_options=options)
    if policy.retention_hours < 0:
        raise RetentionTooShortError(f"retention {policy.retention_hours} h is negative")
    minimum = minimum_retention_hours(table)
    if policy.enforce_retention_duration and policy.retention_hours < minimum:
        raise RetentionTooShortError(
            f"retention {policy.retention_hours} h is shorter than the table's {minimum} h "
            f"({RETENTION_PROPERTY}); pass enforce_retention_duration=False to mean it"
        )
    version_before = table.version()
    partitions_before = snapshot_partitions(table)
    rows_before = snapshot_counts(table).table_rows
    partition_rows_before = partition_row_counts(table, partitions_before)

    compacted = []
    skipped = []
    files_compacted = files_written = 0
    for partition in partitions_before:
        if not _needs_compaction(partition, policy):
            continue
        metrics = _retrying(
            table,
            retry,
            functools.partial(_compact_if_needed, table, partition.label, policy, properties),
        )
        if metrics is None:
            skipped.append(partition.label)
        elif metrics.get("numFilesRemoved"):
            compacted.append(partition.label)
            files_compacted += int(metrics["numFilesRemoved"])
            files_written += int(metrics.get("numFilesAdded", 0))

    vacuumed = _retrying(
        table,
        retry,
        functools.partial(_vacuum, table, policy, properties, options),
    )

    after = DeltaTable(table_uri, storage_options=options)
    checkpoint_version = None
    if policy.checkpoint:
        after.create_checkpoint()
        checkpoint_version = after.version()
    partitions_after = snapshot_partitions(after)
    commits: list[Commit] = commits_between(
        table_uri, version_before, after.version(), storage_options=storage_options
    )
    return MaintenanceResult(
        table_uri=table_uri,
        version_before=version_before,
        version_after=after.version(),
        commit_versions=tuple(commit.version for commit in commits),
        concurrent_commits=tuple(c.version for c in commits if not c.is_maintenance),
        checkpoint_version=checkpoint_version,
        files_before=sum(p.files for p in partitions_before),
        files_after=sum(p.files for p in partitions_after),
        bytes_before=sum(p.bytes for p in partitions_before),
        bytes_after=sum(p.bytes for p in partitions_after),
        partitions_compacted=tuple(compacted),
        files_compacted=files_compacted,
        files_written=files_written,
        files_vacuumed=len(vacuumed or ()),
        partitions_skipped=tuple(skipped),
        vacuum_skipped=vacuumed is None,
        table_rows_before=rows_before,
        table_rows_after=snapshot_counts(after).table_rows,
        partition_rows_before=partition_rows_before,
        partition_rows_after=partition_row_counts(after, partitions_after),
    )
