"""Who wrote what: the commits of a version range, read by version from the Delta log.

Each version's own commit file (``_delta_log/<version:020d>.json``) is read, never
``DeltaTable.history()``: that drops commits without ``commitInfo`` and labels the rest by counting
down from the latest version, so a label can be wrong. Here a commit without ``commitInfo`` is a
real commit whose operation and metrics are unknown, and a version whose commit file was cleaned
up (older than a checkpoint plus the log retention) raises ``HistoryUnavailableError``. Reads only
the log, never a data file.

Metrics come in two spellings: delta-rs writes snake_case integers
(``num_target_rows_inserted``), Spark and Databricks camelCase strings (``numTargetRowsInserted``).
``row_changes`` reads either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from upsert_pipeline.delta.log_files import log_filesystem, read_commit_actions

PIPELINE_MARKER = "dagster.asset"
"""The ``commitInfo`` key that the pipeline's commits carry (set through ``commit_metadata``)."""
PARTITION_MARKER = "dagster.partition"
"""The ``commitInfo`` key naming the Dagster partition a pipeline commit materialized."""
RUN_MARKER = "dagster.run_id"
"""The ``commitInfo`` key naming the Dagster run that wrote a pipeline commit."""

_READERS = 8
"""Commit files read at once."""

MAINTENANCE_OPERATIONS = frozenset(
    {"OPTIMIZE", "VACUUM START", "VACUUM END", "CHECKPOINT", "REORG", "ANALYZE STATS"}
)
"""Operations that rewrite or clean up files without changing a row (Spark's and delta-rs's)."""
WRITE_OPERATIONS = frozenset(
    {
        "WRITE",
        "CREATE TABLE AS SELECT",
        "REPLACE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE AS SELECT",
    }
)
"""Operations that write the rows of a query: appended, or replacing the files they remove."""


@dataclass(frozen=True, kw_only=True)
class Commit:
    """One commit of the log, as its own commit file records it.

    Attributes:
        version: The table version the commit wrote (the commit file's name, never a count).
        operation: ``MERGE``, ``WRITE``, ``DELETE``, ``OPTIMIZE``, ...; ``None`` when the commit
            has no ``commitInfo``.
        pipeline_asset: The asset whose materialization (or maintenance) wrote it, or ``None`` for
            a write made outside the pipeline.
        pipeline_partition: The Dagster partition that materialization was of, if any.
        metrics: The operation's metrics as the writer recorded them (``{}`` if none).
        operation_parameters: The operation's parameters (``mode``, ``predicate``, ...).
        data_change: Whether any add or remove action of the commit says ``dataChange``: a
            commit that only rearranges files (compaction) or changes metadata says no.
        removed_rows: Rows the commit's data-changing remove actions took away, from their stats
            minus their deletion vectors' cardinality; 0 when it removed no file; ``None`` when a
            removed file carries no ``numRecords``.
        has_commit_info: Whether the commit carries ``commitInfo`` at all.
        timestamp_ms: ``commitInfo.timestamp``, if recorded.
        engine: ``commitInfo.engineInfo`` (or ``clientVersion``), if recorded.
        run_id: The Dagster run that wrote a pipeline commit (``commitInfo["dagster.run_id"]``).
        read_version: ``commitInfo.readVersion``: the snapshot the operation planned on.
        touched_partitions: The ``partitionValues`` of the files the commit added or removed
            with ``dataChange``, each as sorted ``(column, value)`` pairs; ``None`` when one
            of those actions does not say (then any partition may have changed).
        info: The raw ``commitInfo`` (``{}`` if none), for the keys a writer added of its own.
    """

    version: int
    operation: str | None
    pipeline_asset: str | None
    pipeline_partition: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    operation_parameters: Mapping[str, Any] = field(default_factory=dict)
    data_change: bool = True
    removed_rows: int | None = None
    has_commit_info: bool = True
    timestamp_ms: int | None = None
    engine: str | None = None
    run_id: str | None = None
    read_version: int | None = None
    touched_partitions: frozenset[tuple[tuple[str, str | None], ...]] | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``v18 MERGE`` (``v7 unknown operation`` without ``commitInfo``)."""
        return f"v{self.version} {self.operation or 'unknown operation'}"

    @property
    def is_maintenance(self) -> bool:
        """Whether the commit changed no row: no ``dataChange``, or a compaction/vacuum-like
        operation. Such a commit is never an out-of-band write."""
        return not self.data_change or self.operation in MAINTENANCE_OPERATIONS


class HistoryUnavailableError(LookupError):
    """Commits of the range are gone from the log (cleaned up): who wrote them is unknown."""


def _removed_rows(removes: Sequence[Mapping[str, Any]]) -> int | None:
    total = 0
    for remove in removes:
        stats = remove.get("stats")
        records = json.loads(stats).get("numRecords") if isinstance(stats, str) else None
        if records is None:
            return None
        vector = remove.get("deletionVector") or {}
        total += int(records) - int(vector.get("cardinality", 0))
    return total


def parse_commit(version: int, actions: Sequence[Mapping[str, Any]]) -> Commit:
    """The ``Commit`` that a version's actions describe.

    Example:
        >>> parse_commit(3, [{"add": {"path": "a.parquet", "dataChange": False}}]).operation is None
        True
    """
    info: Mapping[str, Any] | None = next(
        (action["commitInfo"] for action in actions if "commitInfo" in action), None
    )
    files = [action[kind] for action in actions for kind in ("add", "remove") if kind in action]
    data_removes = [
        action["remove"]
        for action in actions
        if "remove" in action and action["remove"].get("dataChange", True)
    ]
    info = info or {}
    changed = [file for file in files if file.get("dataChange", True)]
    touched: frozenset[tuple[tuple[str, str | None], ...]] | None = None
    if all(isinstance(file.get("partitionValues"), Mapping) for file in changed):
        touched = frozenset(tuple(sorted(file["partitionValues"].items())) for file in changed)
    asset = info.get(PIPELINE_MARKER)
    partition = info.get(PARTITION_MARKER)
    timestamp = info.get("timestamp")
    engine = info.get("engineInfo") or info.get("clientVersion")
    run_id = info.get(RUN_MARKER)
    read_version = info.get("readVersion")
    return Commit(
        version=version,
        operation=str(info["operation"]) if "operation" in info else None,
        pipeline_asset=str(asset) if asset is not None else None,
        pipeline_partition=str(partition) if partition is not None else None,
        metrics=info.get("operationMetrics") or {},
        operation_parameters=info.get("operationParameters") or {},
        data_change=any(bool(file.get("dataChange", True)) for file in files),
        removed_rows=_removed_rows(data_removes),
        has_commit_info=bool(info),
        timestamp_ms=int(timestamp) if timestamp is not None else None,
        engine=str(engine) if engine is not None else None,
        run_id=str(run_id) if run_id is not None else None,
        read_version=int(read_version) if read_version is not None else None,
        touched_partitions=touched,
        info=dict(info),
    )


def read_commits(
    table_uri: str, versions: Sequence[int], storage_options: Mapping[str, str] | None = None
) -> list[tuple[int, Commit | None]]:
    """Each version's commit, in order, read from its own ``_delta_log/<version>.json``;
    ``None`` where that file is gone (cleaned up after a checkpoint, or never written).

    One small GET per version: on an object store their latency adds up, so they overlap.
    """
    return [
        (version, None if actions is None else parse_commit(version, actions))
        for version, actions in read_versions_actions(table_uri, versions, storage_options)
    ]


def read_versions_actions(
    table_uri: str, versions: Sequence[int], storage_options: Mapping[str, str] | None = None
) -> list[tuple[int, list[dict[str, Any]] | None]]:
    """Each version's actions, in order, from its own ``_delta_log/<version>.json`` (the GETs
    overlap); ``None`` where that file is gone."""
    if not versions:
        return []
    filesystem, log_path = log_filesystem(table_uri, storage_options)
    with ThreadPoolExecutor(max_workers=min(_READERS, len(versions))) as pool:
        read = pool.map(lambda v: read_commit_actions(filesystem, log_path, v), versions)
        return list(zip(versions, read, strict=True))


def commits_between(
    table_uri: str,
    after_version: int,
    up_to_version: int,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> list[Commit]:
    """The commits of versions ``after_version + 1`` to ``up_to_version``, oldest first.

    Args:
        table_uri: The Delta table's URI (a path or ``s3://...``).
        after_version: The last version already known; ``-1`` to start from version 0.
        up_to_version: The last version wanted (inclusive).
        storage_options: delta-rs-style object-store options (``AWS_*``).

    Raises:
        HistoryUnavailableError: A version of the range has no commit file any more.

    Example:
        >>> [c.label for c in commits_between("data/lake/orders", 1, 3)]
        ['v2 MERGE', 'v3 DELETE']
    """
    if up_to_version <= after_version:
        return []
    read = read_commits(table_uri, range(after_version + 1, up_to_version + 1), storage_options)
    commits = [commit for _, commit in read if commit is not None]
    missing = [version for version, commit in read if commit is None]
    if missing:
        raise HistoryUnavailableError(
            f"the log of {table_uri} holds no commit file for version(s) {missing}: cleaned up "
            "after a checkpoint (or never written), so who wrote them is unknown"
        )
    return commits


@dataclass(frozen=True, kw_only=True)
class RowChanges:
    """What a commit did to rows, by its recorded metrics; ``None`` where they do not say.

    Attributes:
        inserted: Rows added.
        updated: Rows rewritten with new values.
        deleted: Rows removed.
        copied: Unchanged rows rewritten into new files alongside the changed ones.
    """

    inserted: int | None
    updated: int | None
    deleted: int | None
    copied: int | None

    @property
    def known(self) -> bool:
        """Whether inserted, updated and deleted are all known."""
        return None not in (self.inserted, self.updated, self.deleted)


def metric(metrics: Mapping[str, Any], snake: str, camel: str) -> int | None:
    """A metric in delta-rs's (integer) or Spark's (string) spelling, if recorded."""
    value = metrics.get(snake, metrics.get(camel))
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def row_changes(commit: Commit) -> RowChanges:
    """Rows a commit inserted, updated, deleted and copied, in delta-rs's or Spark's spelling.

    - A commit that changed no data (compaction, vacuum, metadata): 0 inserted/updated/deleted.
    - ``MERGE``: ``numTargetRows{Inserted,Updated,Deleted,Copied}``.
    - ``WRITE`` (and create/replace ... as select): ``numOutputRows`` (delta-rs
      ``num_added_rows``) inserted; deleted is what its remove actions took away: 0 for an
      append, the removed files' rows for an overwrite, unknown when those files lack stats.
    - ``DELETE``: ``numDeletedRows`` deleted. ``UPDATE``: ``numUpdatedRows`` updated, and never
      a row added or removed.
    - Anything else, or a commit without ``commitInfo`` that changed data: unknown.

    Example:
        >>> row_changes(Commit(version=18, operation="MERGE", pipeline_asset=None,
        ...     metrics={"numTargetRowsInserted": "2", "numTargetRowsUpdated": "1",
        ...              "numTargetRowsDeleted": "0", "numTargetRowsCopied": "0"}))
        RowChanges(inserted=2, updated=1, deleted=0, copied=0)
    """
    metrics = commit.metrics
    if not commit.data_change:
        return RowChanges(inserted=0, updated=0, deleted=0, copied=None)
    copied = metric(metrics, "num_copied_rows", "numCopiedRows")
    match commit.operation:
        case "MERGE":
            return RowChanges(
                inserted=metric(metrics, "num_target_rows_inserted", "numTargetRowsInserted"),
                updated=metric(metrics, "num_target_rows_updated", "numTargetRowsUpdated"),
                deleted=metric(metrics, "num_target_rows_deleted", "numTargetRowsDeleted"),
                copied=metric(metrics, "num_target_rows_copied", "numTargetRowsCopied"),
            )
        case operation if operation in WRITE_OPERATIONS:
            inserted = metric(metrics, "num_added_rows", "numOutputRows")
            return RowChanges(
                inserted=inserted, updated=0, deleted=commit.removed_rows, copied=None
            )
        case "DELETE":
            deleted = metric(metrics, "num_deleted_rows", "numDeletedRows")
            return RowChanges(inserted=0, updated=0, deleted=deleted, copied=copied)
        case "UPDATE":
            updated = metric(metrics, "num_updated_rows", "numUpdatedRows")
            return RowChanges(inserted=0, updated=updated, deleted=0, copied=copied)
    return RowChanges(inserted=None, updated=None, deleted=None, copied=None)


def net_rows(commit: Commit) -> int | None:
    """Rows a commit added net (inserted - deleted) by its recorded metrics; ``None`` if unknown.

    Example:
        >>> net_rows(Commit(version=24, operation="DELETE", pipeline_asset=None,
        ...     metrics={"numDeletedRows": "6"}))
        -6
    """
    changes = row_changes(commit)
    if changes.inserted is None or changes.deleted is None:
        return None
    return changes.inserted - changes.deleted
