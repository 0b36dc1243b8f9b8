"""The pipeline's own commits, read back from the Delta log: what a run committed, whether or not
it lived to record it.

Every merge of the pipeline writes ``commitInfo`` markers (``history.PIPELINE_MARKER`` the asset,
``PARTITION_MARKER`` its partition, ``RUN_MARKER`` the run) beside the merge's own
``operationMetrics`` and ``readVersion``. That is enough to rebuild the commit's ``UpsertResult``
long after the process that wrote it died: the counts from the commit's metrics, the row counts
from the log at the version it read and the version it wrote. Reads only the log, never a data
file; the Dagster layer (``upsert_pipeline.recovery``) decides which of these commits still need
recording.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from pyarrow import fs as pafs

from upsert_pipeline.delta.counts import snapshot_counts
from upsert_pipeline.delta.history import Commit, read_commits
from upsert_pipeline.delta.log_files import log_filesystem
from upsert_pipeline.delta.merge import APP_ID_KEY, ATTEMPT_KEY, SNAPSHOT_KEY
from upsert_pipeline.delta.result import PartitionValue, UpsertResult

_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def latest_log_version(
    table_uri: str, storage_options: Mapping[str, str] | None = None
) -> int | None:
    """The highest version with a commit file in the table's ``_delta_log``, by one listing of
    the folder; ``None`` when the table has no log (not created yet)."""
    filesystem, log_path = log_filesystem(table_uri, storage_options)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(log_path, allow_not_found=True))
    except FileNotFoundError:
        return None
    versions = [
        int(match.group(1))
        for info in infos
        if (match := _COMMIT_FILE.match(info.base_name)) is not None
    ]
    return max(versions, default=None)


def is_pipeline_commit(commit: Commit, asset: str) -> bool:
    """Whether ``commit`` is a merge the pipeline wrote for one partition of ``asset``: it carries
    the asset, partition and run markers (maintenance commits carry no partition)."""
    return (
        commit.operation == "MERGE"
        and commit.pipeline_asset == asset
        and commit.pipeline_partition is not None
        and commit.run_id is not None
    )


def pipeline_commits(
    table_uri: str,
    asset: str,
    *,
    after_version: int = -1,
    up_to_version: int | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> tuple[list[Commit], int | None]:
    """The pipeline's merge commits of ``asset`` after ``after_version``, oldest first, and the
    latest version looked at (``None`` when the table has no log).

    A version whose commit file is gone (cleaned up after a checkpoint) is passed over: who wrote
    it can no longer be told.

    Example:
        >>> commits, latest = pipeline_commits("data/lake/orders", "orders", after_version=4)
        >>> [(c.version, c.pipeline_partition, c.run_id) for c in commits]
        [(5, '2026-11-03', '0b5e...')]
    """
    latest = up_to_version
    if latest is None:
        latest = latest_log_version(table_uri, storage_options)
    if latest is None or latest <= after_version:
        return [], latest
    read = read_commits(table_uri, range(after_version + 1, latest + 1), storage_options)
    commits = [c for _, c in read if c is not None and is_pipeline_commit(c, asset)]
    return commits, latest


def _int(metrics: Mapping[str, Any], name: str) -> int:
    return int(metrics.get(name) or 0)


def committed_result(
    table_uri: str,
    commit: Commit,
    *,
    partition: Mapping[str, PartitionValue] | None,
    storage_options: Mapping[str, str] | None = None,
) -> UpsertResult:
    """The ``UpsertResult`` a pipeline merge commit stands for, rebuilt from the log alone.

    The counts are the commit's ``operationMetrics``; the row counts before and after are the log
    at its ``readVersion`` and at its own version (``numRecords`` minus deletion vectors), exactly
    as ``upsert`` reads them. ``unchanged`` follows ``upsert``'s definition (a snapshot load's
    deletions are the partition's rows the batch lacked, not rows of the batch).

    Args:
        table_uri: The Delta table.
        commit: A commit ``is_pipeline_commit`` accepts.
        partition: ``{column: value}`` of the commit's partition, or ``None``.
        storage_options: Options for the object store, passed to delta-rs.
    """
    options = dict(storage_options) if storage_options else None
    metrics = commit.metrics
    read_version = commit.read_version if commit.read_version is not None else commit.version - 1
    after_table = DeltaTable(table_uri, version=commit.version, storage_options=options)
    after = snapshot_counts(after_table, partition)
    before = snapshot_counts(
        DeltaTable(table_uri, version=read_version, storage_options=options), partition
    )
    info = commit.info
    snapshot = bool(info.get(SNAPSHOT_KEY, False))
    inserted = _int(metrics, "num_target_rows_inserted")
    updated = _int(metrics, "num_target_rows_updated")
    deleted = _int(metrics, "num_target_rows_deleted")
    # A snapshot load adds one tombstone per absent key, each of which deletes one row.
    source_rows = _int(metrics, "num_source_rows") - (deleted if snapshot else 0)
    return UpsertResult(
        table_uri=table_uri,
        partition=dict(partition) if partition else None,
        source_rows=source_rows,
        inserted=inserted,
        updated=updated,
        deleted=deleted,
        copied=_int(metrics, "num_target_rows_copied"),
        unchanged=source_rows - inserted - updated - (0 if snapshot else deleted),
        read_version=read_version,
        version=commit.version,
        before=before,
        after=after,
        files_added=_int(metrics, "num_target_files_added"),
        files_removed=_int(metrics, "num_target_files_removed"),
        files_scanned=_int(metrics, "num_target_files_scanned"),
        files_skipped=_int(metrics, "num_target_files_skipped_during_scan"),
        execution_time_ms=_int(metrics, "execution_time_ms"),
        scan_time_ms=_int(metrics, "scan_time_ms"),
        rewrite_time_ms=_int(metrics, "rewrite_time_ms"),
        commit_attempts=int(info.get(ATTEMPT_KEY) or 1),
        app_id=str(info[APP_ID_KEY]) if APP_ID_KEY in info else None,
        snapshot=snapshot,
        schema=pa.schema(after_table.schema().to_arrow()),
    )
