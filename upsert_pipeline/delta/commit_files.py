"""What a commit wrote and removed, file by file, from its own commit file in the log.

The add and remove actions of ``_delta_log/<version>.json`` carry each file's size: the bytes a
commit wrote and the bytes it took out of the table, without listing or opening a data file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upsert_pipeline.delta.history import metric
from upsert_pipeline.delta.log_files import log_filesystem, read_commit_actions


@dataclass(frozen=True, kw_only=True)
class CommitFiles:
    """The data files one commit wrote and took out of the table.

    Attributes:
        version: The commit's version.
        files_added: Add actions.
        files_removed: Remove actions.
        bytes_added: Sum of the added files' ``size``.
        bytes_removed: Sum of the removed files' ``size``; ``None`` when a remove action does not
            record its size (it is optional in the protocol).
        deletion_vectors_updated: Files the commit removed and added again with a new deletion
            vector (Spark's DELETE / UPDATE / MERGE with deletion vectors): counted neither as
            written nor as removed.
        partitions: The distinct ``partitionValues`` (as the log spells them: strings, ``None``
            for a null) of the files the commit added or removed: the partitions it touched.
    """

    version: int
    files_added: int
    files_removed: int
    bytes_added: int
    bytes_removed: int | None
    deletion_vectors_updated: int = 0
    partitions: tuple[Mapping[str, str | None], ...] = ()


def read_commit_files(
    table_uri: str, version: int, *, storage_options: Mapping[str, str] | None = None
) -> CommitFiles | None:
    """The files of version ``version``'s commit; ``None`` when its commit file is gone.

    Example:
        >>> read_commit_files("data/lake/orders", 18).bytes_added
        48211
    """
    filesystem, log_path = log_filesystem(table_uri, storage_options)
    actions = read_commit_actions(filesystem, log_path, version)
    return None if actions is None else commit_files(version, actions)


def commit_files(version: int, actions: Sequence[Mapping[str, Any]]) -> CommitFiles:
    """The files of version ``version``'s commit, from its actions."""
    adds = [action["add"] for action in actions if "add" in action]
    removes = [action["remove"] for action in actions if "remove" in action]
    # A file removed and added again by the same commit got a new deletion vector: no data file
    # was written or taken away, only rows marked deleted.
    readded = {add["path"] for add in adds} & {remove["path"] for remove in removes}
    written = [add for add in adds if add["path"] not in readded]
    removed_sizes = [remove.get("size") for remove in removes if remove["path"] not in readded]
    return CommitFiles(
        version=version,
        files_added=len(written),
        files_removed=len(removed_sizes),
        bytes_added=sum(int(add.get("size", 0)) for add in written),
        bytes_removed=(
            None
            if any(size is None for size in removed_sizes)
            else sum(int(size) for size in removed_sizes)
        ),
        deletion_vectors_updated=len(readded),
        partitions=_distinct_partitions([*adds, *removes]),
    )


def _distinct_partitions(files: list[dict[str, Any]]) -> tuple[Mapping[str, str | None], ...]:
    seen: dict[tuple[tuple[str, str | None], ...], Mapping[str, str | None]] = {}
    for file in files:
        values = file.get("partitionValues") or {}
        if values:
            seen.setdefault(tuple(sorted(values.items())), dict(values))
    return tuple(seen.values())


_TIMES = {
    "execution_ms": ("execution_time_ms", "executionTimeMs"),
    "scan_ms": ("scan_time_ms", "scanTimeMs"),
    "rewrite_ms": ("rewrite_time_ms", "rewriteTimeMs"),
}


def recorded_times(metrics: Mapping[str, Any]) -> dict[str, int]:
    """The phase times a commit's writer recorded in its ``operationMetrics``, in delta-rs's
    (integer) or Spark's (string) spelling: ``execution_ms``, ``scan_ms``, ``rewrite_ms``, each
    only when recorded.

    Example:
        >>> recorded_times({"executionTimeMs": "2281", "scanTimeMs": "935"})
        {'execution_ms': 2281, 'scan_ms': 935}
    """
    return {
        name: value
        for name, (snake, camel) in _TIMES.items()
        if (value := metric(metrics, snake, camel)) is not None
    }
