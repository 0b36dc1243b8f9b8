"""The pure judge of ``maintain_lake``: maintenance changed no row count. No Dagster import."""

from __future__ import annotations

from upsert_pipeline.checks.judges import MetadataScalar, Severity, Verdict
from upsert_pipeline.delta.maintenance import MaintenanceResult


def _scope(label: str) -> str:
    return label or "table"


def judge_counts_unchanged(result: MaintenanceResult) -> Verdict:
    """Judges that every row count, the table's and each partition's, is what it was before.

    Both sides come from the log (``numRecords`` minus deletion vectors), at the version
    maintenance started from and at its last commit. A count that changed fails (ERROR): a
    compaction or vacuum lost or duplicated rows. When another writer changed data in between,
    the counts may rightly differ and nothing is proven (WARN); likewise when the log cannot
    give a count.

    Example:
        >>> judge_counts_unchanged(maintain("data/lake/orders")).passed
        True
    """
    pairs = result.count_pairs()
    metadata: dict[str, MetadataScalar] = {
        "version_before": result.version_before,
        "version_after": result.version_after,
        "partitions_compared": len(pairs) - 1,
    }
    if result.table_rows_before is not None:
        metadata["table_rows_before"] = result.table_rows_before
    if result.table_rows_after is not None:
        metadata["table_rows_after"] = result.table_rows_after
    changed = result.changed_counts
    metadata["counts_changed"] = len(changed)
    if result.concurrent_commits:
        versions = ", ".join(f"v{version}" for version in result.concurrent_commits)
        return Verdict(
            False,
            Severity.WARN,
            f"not proven: other writers changed data during maintenance ({versions})",
            metadata,
        )
    if changed:
        return Verdict(
            False,
            Severity.ERROR,
            "row counts changed: "
            + "; ".join(f"{_scope(scope)} {before} -> {after}" for scope, before, after in changed),
            metadata,
        )
    if unknown := result.unknown_counts:
        return Verdict(
            False,
            Severity.WARN,
            "unknown in the log, so not proven: " + ", ".join(_scope(s) for s in unknown),
            metadata,
        )
    return Verdict(True, Severity.ERROR, None, metadata)
