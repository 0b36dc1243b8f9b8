"""Who wrote what: the commits of a version range, read from the Delta log's ``commitInfo``.

Reads only the log's commit files, never a data file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deltalake import DeltaTable

PIPELINE_MARKER = "dagster.asset"
"""The ``commitInfo`` key that the pipeline's commits carry (set through ``commit_metadata``)."""
PARTITION_MARKER = "dagster.partition"
"""The ``commitInfo`` key naming the Dagster partition a pipeline commit materialized."""


@dataclass(frozen=True, kw_only=True)
class Commit:
    """One commit of the log.

    Attributes:
        version: The table version the commit wrote.
        operation: ``MERGE``, ``WRITE``, ``DELETE``, ...
        pipeline_asset: The asset whose materialization wrote it, or ``None`` for a write made
            outside the pipeline.
        pipeline_partition: The Dagster partition that materialization was of, if any.
        metrics: The operation's metrics as the writer recorded them.
    """

    version: int
    operation: str
    pipeline_asset: str | None
    pipeline_partition: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


class HistoryUnavailableError(LookupError):
    """Commits of the range are gone from the log (cleaned up): who wrote them is unknown."""


def commits_between(
    table_uri: str,
    after_version: int,
    up_to_version: int,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> list[Commit]:
    """The commits of versions ``after_version + 1`` to ``up_to_version``, oldest first.

    Raises:
        HistoryUnavailableError: A version of the range has no commit in the log any more.
    """
    if up_to_version <= after_version:
        return []
    table = DeltaTable(
        table_uri, storage_options=dict(storage_options) if storage_options else None
    )
    # history() is read from the latest snapshot: on a table loaded at an older version, delta-rs
    # 1.6 returns entries beyond the requested limit.
    entries = table.history(limit=table.version() - after_version)
    commits = sorted(
        (
            Commit(
                version=int(entry["version"]),
                operation=str(entry.get("operation", "UNKNOWN")),
                pipeline_asset=entry.get(PIPELINE_MARKER),
                pipeline_partition=entry.get(PARTITION_MARKER),
                metrics=entry.get("operationMetrics") or {},
            )
            for entry in entries
            if after_version < int(entry.get("version", -1)) <= up_to_version
        ),
        key=lambda commit: commit.version,
    )
    missing = sorted(
        set(range(after_version + 1, up_to_version + 1)) - {c.version for c in commits}
    )
    if missing:
        raise HistoryUnavailableError(
            f"no commitInfo in the log of {table_uri} for versions {missing}"
        )
    return commits


def net_rows(commit: Commit) -> int | None:
    """Rows a commit added net (inserted - deleted) by its recorded metrics, if it recorded them."""
    metrics = commit.metrics
    if "num_target_rows_inserted" in metrics and "num_target_rows_deleted" in metrics:
        return int(metrics["num_target_rows_inserted"]) - int(metrics["num_target_rows_deleted"])
    return None
