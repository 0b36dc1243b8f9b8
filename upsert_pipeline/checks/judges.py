"""Pure judging functions: counts in, a ``Verdict`` out. No Dagster import.

Every input is the merge result, the Delta log or integer metadata recorded by earlier
materializations; ``checks/wiring.py`` fetches those and turns each verdict into a Dagster
``AssetCheckResult``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.delta import RowCounts, UpsertResult
from upsert_pipeline.delta.history import Commit, net_rows
from upsert_pipeline.feeds import Feed
from upsert_pipeline.quality import OnFail, RuleOutcome

MetadataScalar = int | float | str
"""A verdict's metadata value: ints are counts (plotted by the UI), strings are text."""


class Severity(StrEnum):
    """How bad a failed verdict is; the wiring maps it to ``dg.AssetCheckSeverity``."""

    WARN = "WARN"
    ERROR = "ERROR"


@dataclass(frozen=True)
class Verdict:
    """What a check concluded.

    Attributes:
        passed: Whether the check passed.
        severity: How bad a failure is (recorded on passes too, as Dagster does).
        description: Why it failed, or what a pass means when that needs saying.
        metadata: The numbers the verdict compared, by name.
    """

    passed: bool
    severity: Severity = Severity.ERROR
    description: str | None = None
    metadata: Mapping[str, MetadataScalar] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeBand:
    """How far a materialization's counts may stray from the asset's recent history.

    Each count is judged against the median of the asset's earlier materializations that changed
    something (a re-run that changed nothing is not history): inserted / updated / deleted against
    the high edge, the rows a batch delivered (``upsert/source_rows``) against the low edge.

    - **High edge**: ``median + k * spread``, where ``spread`` is the MAD scaled to a standard
      deviation (``1.4826 * MAD``) but at least ``min_spread_ratio * median`` and
      ``min_spread_rows``, so a near-constant history does not flag ordinary variation.
    - **Low edge**: ``median - k * spread`` is useless: with the defaults ``k * spread`` is at
      least 1.25x the median, so that edge is always negative and a day of 10 rows where ~1,000
      are usual would pass. The low edge is
      therefore at least ``min_fraction * median`` (a ratio test: 10 of a usual 1,000 is 1%, under
      the 25% default, and fails), but never closer to the median than ``min_spread_rows``, so a
      small count (3 updates where 5 are usual) is not flagged for a difference of a few rows.

    Attributes:
        history: How many earlier materializations of the asset to compare with.
        min_history: Fewer earlier materializations than this: no verdict yet (passes, says so).
        k: Width of the band in spreads.
        min_spread_ratio: The spread's floor, as a fraction of the median.
        min_spread_rows: The spread's floor, in rows; also the least distance of the low edge
            from the median.
        min_fraction: The low edge's floor, as a fraction of the median.
    """

    history: int = 30
    min_history: int = 5
    k: float = 5.0
    min_spread_ratio: float = 0.25
    min_spread_rows: int = 50
    min_fraction: float = 0.25

    def edges(self, past: Sequence[int]) -> tuple[float, float, float]:
        """``(median, low, high)`` of the band that a history ``past`` sets.

        Example:
            >>> VolumeBand().edges([1000, 980, 1010, 995, 1020])
            (1000, 250.0, 2250.0)
        """
        median = statistics.median(past)
        mad = statistics.median(abs(v - median) for v in past)
        spread = max(1.4826 * mad, self.min_spread_ratio * median, self.min_spread_rows)
        low = max(median - self.k * spread, self.min_fraction * median)
        low = min(low, median - self.min_spread_rows)
        return median, low, median + self.k * spread


def is_no_op(counts: Mapping[str, int]) -> bool:
    """Whether a materialization merged a batch that changed nothing (a re-run): every row it
    sent was unchanged, and nothing was inserted, updated or deleted."""
    changes = [counts.get(key) for key in keys.VOLUME_METRICS]
    return all(change == 0 for change in changes) and counts.get(keys.SOURCE_ROWS, 0) > 0


VOLUME_BAND = VolumeBand()


def scope_rows_key(feed: Feed) -> str:
    """The metadata key of the row count a feed's checks compare: the partition's or the table's."""
    return keys.PARTITION_ROW_COUNT if feed.partition_column else keys.ROW_COUNT


def judge_reconcile(
    result: UpsertResult, *, landing_rows: int, table_rows_before_commit: int | None
) -> Verdict:
    """Judges that the commit's counts add up, comparing only numbers from independent sources.

    What is compared, and what would break it:

    - **Landing → merge**: ``landing_rows`` (the rows the asset read from the landing file) with
      ``source_rows`` (the rows delta-rs's merge plan read, its ``num_source_rows``, less the
      tombstones a snapshot load adds). Preparation that loses or duplicates rows (validation,
      schema conforming, tombstone handling) makes them differ.
    - **Metrics → log, when the merge committed**: rows before (the log at the snapshot the merge
      read) + inserted - deleted (the merge's metrics) = rows after (the log at the new
      version, ``numRecords`` minus deletion vectors), for the partition and the table. A merge
      that writes other rows than it reports, touches another partition, or a count that
      mis-reads the log (deletion vectors, missing stats) breaks it. The partition identity uses
      the snapshot the merge read (delta-rs refuses a commit when another touched the files it
      read); the table identity uses the version just before this commit
      (``table_rows_before_commit``) when concurrent commits to other partitions landed in between.
    - **No commit → no change**: a merge that wrote no version must report nothing inserted,
      updated or deleted.

    Not compared, being tautological given where the numbers come from: the log's counts before
    and after a merge that wrote no version (the same snapshot is counted twice), and
    ``unchanged`` (derived from the other counts).

    Args:
        result: What the upsert returned.
        landing_rows: Rows read from the landing batch.
        table_rows_before_commit: Table rows at ``result.version - 1`` when other commits landed
            between ``read_version`` and the commit; ``None`` if unknown or not needed.

    Example:
        >>> judge_reconcile(result, landing_rows=120, table_rows_before_commit=None).passed
        True
    """
    net = result.inserted - result.deleted
    metadata: dict[str, MetadataScalar] = {
        "landing_rows": landing_rows,
        "source_rows": result.source_rows,
        "inserted": result.inserted,
        "updated": result.updated,
        "deleted": result.deleted,
        "read_version": result.read_version,
        "version": result.version,
        "concurrent_commits": result.concurrent_commits,
    }
    problems = []
    if result.source_rows != landing_rows:
        problems.append(f"merge saw {result.source_rows} source rows, landing had {landing_rows}")
    unknown = []
    if not result.committed:
        if result.inserted or result.updated or result.deleted:
            problems.append(
                f"no version written, yet the merge reports {result.inserted} inserted, "
                f"{result.updated} updated, {result.deleted} deleted"
            )
    else:
        table_before = (
            table_rows_before_commit if result.concurrent_commits else result.before.table_rows
        )
        pairs = [("table", table_before, result.table_rows)]
        if result.partition is not None:
            pairs.insert(0, ("partition", result.before.partition_rows, result.partition_rows))
        for scope, before, after in pairs:
            if before is None or after is None:
                unknown.append(scope)
                continue
            metadata[f"{scope}_rows_before"] = before
            metadata[f"{scope}_rows_expected"] = before + net
            metadata[f"{scope}_rows_after"] = after
            if before + net != after:
                problems.append(f"{scope}: {before} + {net} != {after}")
    if problems:
        return Verdict(False, Severity.ERROR, "; ".join(problems), metadata)
    if unknown:
        return Verdict(
            False,
            Severity.WARN,
            f"cannot reconcile the {' and '.join(unknown)} counts: unknown in the log "
            "(data files without numRecords, or unreadable deletion vectors)",
            metadata,
        )
    return Verdict(True, Severity.ERROR, None, metadata)


def _in_scope(commit: Commit, feed: Feed, partition_key: str) -> bool:
    """Whether a pipeline commit changed the rows this check compares."""
    return commit.pipeline_asset == feed.name and (
        feed.partition_column is None or commit.pipeline_partition == partition_key
    )


def _touches(commit: Commit, feed: Feed, partition_key: str) -> bool:
    """Whether a commit may have changed rows of the partition (any partition, if unknown)."""
    if feed.partition_column is None or commit.touched_partitions is None:
        return True
    column = feed.partition_column
    return any(dict(values).get(column) == partition_key for values in commit.touched_partitions)


def judge_out_of_band(
    feed: Feed,
    result: UpsertResult,
    *,
    partition_key: str,
    previous: Mapping[str, int] | None,
    commits: Sequence[Commit] | None,
) -> Verdict:
    """Judges that nothing but the pipeline wrote since the previous materialization.

    A commit is out of band when it carries no pipeline marker and changed data of this
    partition (by the ``partitionValues`` of the files it added or removed): maintenance
    (no ``dataChange``, or ``OPTIMIZE`` / ``VACUUM START`` / ``VACUUM END`` and the like), by the
    pipeline's ``maintain_lake`` or by another engine, changes no row and is not. The rows before
    this merge must equal the rows recorded then plus the net rows of the pipeline's own commits
    to this partition since (maintenance adds none).

    Args:
        feed: The feed of the asset.
        result: What the upsert returned.
        partition_key: The partition being materialized.
        previous: The integer metadata of this partition's previous materialization (for an
            unpartitioned table, the asset's latest), or ``None`` on the first one.
        commits: The log's commits after the version ``previous`` recorded, up to the version this
            merge read; ``None`` if the log no longer holds them all.
    """
    if previous is None:
        return Verdict(
            True,
            Severity.WARN,
            "first materialization: nothing recorded to compare with",
            {"read_version": result.read_version},
        )
    recorded_version = previous.get(keys.VERSION)
    recorded_rows = previous.get(scope_rows_key(feed))
    rows_before = (
        result.before.partition_rows if feed.partition_column else result.before.table_rows
    )
    metadata: dict[str, MetadataScalar] = {"read_version": result.read_version}
    if recorded_version is not None:
        metadata["recorded_version"] = recorded_version
    if commits is None or recorded_version is None:
        return Verdict(
            False,
            Severity.WARN,
            "the log no longer holds every commit since the previous materialization",
            metadata,
        )
    # Maintenance (compaction, vacuum: no dataChange) changes no row, whoever committed it; a
    # foreign commit that changed only other partitions did not touch this one.
    everywhere = [c for c in commits if c.pipeline_asset is None and not c.is_maintenance]
    foreign = [c for c in everywhere if _touches(c, feed, partition_key)]
    metadata["foreign_commits"] = len(foreign)
    metadata["foreign_commits_elsewhere"] = len(everywhere) - len(foreign)
    metadata["maintenance_commits"] = sum(1 for commit in commits if commit.is_maintenance)
    metadata["pipeline_commits"] = sum(
        1 for c in commits if c.pipeline_asset is not None and not c.is_maintenance
    )
    problems = []
    if foreign:
        listed = ", ".join(commit.label for commit in foreign)
        metadata["foreign_commit_versions"] = listed
        problems.append(f"{len(foreign)} commit(s) made outside the pipeline: {listed}")
    if recorded_rows is not None and rows_before is not None:
        nets = [net_rows(commit) for commit in commits if _in_scope(commit, feed, partition_key)]
        if all(net is not None for net in nets):
            expected = recorded_rows + sum(net for net in nets if net is not None)
            metadata["recorded_rows"] = recorded_rows
            metadata["expected_rows_before"] = expected
            metadata["rows_before"] = rows_before
            if rows_before != expected:
                problems.append(
                    f"{rows_before} rows before this merge, {expected} expected from the "
                    f"previous materialization (v{recorded_version}: {recorded_rows} rows)"
                )
    return Verdict(not problems, Severity.WARN, "; ".join(problems) or None, metadata)


def judge_volume(
    latest: Mapping[str, int],
    history: Sequence[Mapping[str, int]],
    band: VolumeBand = VOLUME_BAND,
) -> Verdict:
    """Judges a materialization's volume against the asset's history.

    A day far above the usual fails on any of inserted / updated / deleted; a day far below the
    usual fails on the rows its batch delivered (``upsert/source_rows``), not on inserted: a
    re-delivery of a loaded day inserts a few late rows and sends the rest again unchanged. A
    re-run that changed nothing (``is_no_op``) is neither judged nor history: it passes, and
    earlier no-op materializations are left out of the band (see ``VolumeBand``).

    Args:
        latest: The integer metadata of the materialization judged.
        history: The integer metadata of earlier materializations, newest first.
        band: How far a count may stray.

    Example:
        >>> usual = [{"upsert/rows_inserted": 1000, "upsert/source_rows": 1000}] * 5
        >>> judge_volume({"upsert/rows_inserted": 10, "upsert/source_rows": 10}, usual).passed
        False
    """
    changed = [counts for counts in history if not is_no_op(counts)]
    metadata: dict[str, MetadataScalar] = {
        "history": len(changed),
        "no_op_reruns_ignored": len(history) - len(changed),
    }
    if is_no_op(latest):
        return Verdict(
            True,
            Severity.WARN,
            "a re-run that changed nothing: not judged, and not history",
            metadata,
        )
    if len(changed) < band.min_history:
        return Verdict(
            True,
            Severity.WARN,
            f"{len(changed)} earlier materialization(s) that changed rows: no verdict before "
            f"{band.min_history}",
            metadata,
        )
    problems = []
    # Too much: any of inserted / updated / deleted above its band. Too little: the rows the
    # day's batch delivered below theirs. Not inserted: a re-delivery of a loaded day inserts a
    # few late rows and sends the rest again unchanged, which is no shortfall.
    judged = [(key, False) for key in keys.VOLUME_METRICS] + [(keys.SOURCE_ROWS, True)]
    for key, low_side in judged:
        value = latest.get(key)
        past = [v for v in (m.get(key) for m in changed) if v is not None]
        if value is None or len(past) < band.min_history:
            continue
        median, low, high = band.edges(past)
        name = key.removeprefix("upsert/")
        shown = f"[{max(low, 0):.0f}, {high:.0f}]" if low_side else f"[0, {high:.0f}]"
        metadata[name] = value
        metadata[f"{name}_median"] = float(median)
        metadata[f"{name}_band"] = shown
        if low_side and value < low:
            problems.append(f"{name} {value} below {shown} (median {median:.0f})")
        elif not low_side and value > high:
            problems.append(f"{name} {value} above {shown} (median {median:.0f})")
    return Verdict(not problems, Severity.WARN, "; ".join(problems) or None, metadata)


def judge_not_empty(counts: RowCounts, *, partitioned: bool) -> Verdict:
    """Judges that the partition (``partitioned``) or the table holds rows, by the log's counts.

    An unknown count (files without ``numRecords``) fails: emptiness cannot be ruled out.
    """
    rows = counts.partition_rows if partitioned else counts.table_rows
    metadata: dict[str, MetadataScalar] = {
        "rows": rows if rows is not None else "unknown",
        "files": counts.partition_files if partitioned else counts.table_files,
        "files_without_stats": counts.files_without_stats,
        "version": counts.version,
    }
    description: str | None = None
    if rows is None:
        description = f"unknown: {counts.files_without_stats} file(s) lack numRecords"
    elif rows == 0:
        description = "no rows"
    return Verdict(bool(rows), Severity.ERROR, description, metadata)


def judge_expectation(outcome: RuleOutcome) -> Verdict:
    """Judges one expectation on one batch: its failing fraction within the rule's tolerance.

    A rule that refuses the batch (``fail``) is judged ERROR; the others (the batch was merged,
    minus the dropped or quarantined rows) WARN.

    Example:
        >>> judge_expectation(outcome).metadata["failing"]
        2
    """
    expectation = outcome.expectation
    severity = Severity.ERROR if expectation.on_fail is OnFail.FAIL else Severity.WARN
    metadata: dict[str, MetadataScalar] = {
        "rows": outcome.rows,
        "passing": outcome.passing,
        "failing": outcome.failing,
        "null": outcome.null,
        "failing_fraction": outcome.failing_fraction,
        "tolerance": expectation.tolerance,
        "on_fail": expectation.on_fail.value,
    }
    if outcome.within_tolerance:
        return Verdict(True, severity, None, metadata)
    return Verdict(
        False,
        severity,
        f"{outcome.failing} of {outcome.rows} rows fail {expectation.rule!r} "
        f"({outcome.failing_fraction:.2%} > tolerated {expectation.tolerance:.2%}); "
        f"on_fail={expectation.on_fail.value}",
        metadata,
    )


def one_per_partition(
    history: Sequence[tuple[str | None, Mapping[str, int]]],
    *,
    judged: str | None,
    limit: int,
) -> list[Mapping[str, int]]:
    """The volume history with each partition counted once: its newest materialization only,
    and none of the judged partition's own (a re-run or recovery of a day is not a second day of
    history). Up to ``limit``, newest first.

    Args:
        history: ``(partition, counts)`` of earlier materializations, newest first.
        judged: The partition being judged.
        limit: How many partitions' counts to keep.

    Example:
        >>> one_per_partition([("d2", {"n": 5}), ("d1", {"n": 4}), ("d2", {"n": 9})],
        ...     judged="d3", limit=30)
        [{'n': 5}, {'n': 4}]
    """
    seen: set[str] = set()
    kept: list[Mapping[str, int]] = []
    for partition, counts in history:
        if partition is not None and (partition == judged or partition in seen):
            continue
        if partition is not None:
            seen.add(partition)
        kept.append(counts)
        if len(kept) == limit:
            break
    return kept
