"""Asset checks that judge every materialization from its commit counts, never from a scan.

Two checks run inline, in the materialization's own step, because what they compare is known
when the merge returns: ``counts_reconcile`` (blocking) and ``no_out_of_band_writes``. Two run as
their own step after it (and on their own, from the UI or the ``check_lake`` job):
``volume_within_history`` and ``not_empty``. Freshness uses Dagster's own time-partition
freshness checks. Every input is the merge result, the Delta log or the metadata history in
Dagster's event log: no check opens a data file.
"""

import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
from deltalake.exceptions import TableNotFoundError

from upsert_pipeline.delta import UpsertResult, read_row_counts
from upsert_pipeline.delta.history import (
    Commit,
    HistoryUnavailableError,
    commits_between,
    net_rows,
)
from upsert_pipeline.feeds import CUSTOMERS, FEEDS, ORDERS, Feed
from upsert_pipeline.partitions import daily_partitions
from upsert_pipeline.resources import DeltaMergeResource

COUNTS_RECONCILE = "counts_reconcile"
NO_OUT_OF_BAND_WRITES = "no_out_of_band_writes"
VOLUME_WITHIN_HISTORY = "volume_within_history"
NOT_EMPTY = "not_empty"

FRESHNESS_DEADLINE_CRON = "0 9 * * *"
"""Yesterday's partition is expected to be materialized by 09:00 UTC."""

VOLUME_METRICS = ("upsert/rows_inserted", "upsert/rows_updated", "upsert/rows_deleted")
ROW_COUNT_KEY = "dagster/row_count"
PARTITION_ROW_COUNT_KEY = "dagster/partition_row_count"
VERSION_KEY = "delta/version"


@dataclass(frozen=True)
class VolumeBand:
    """How far a materialization's counts may stray from the asset's recent history.

    A count fails when ``|value - median| > k * spread``, where ``spread`` is the MAD scaled to a
    standard deviation (``1.4826 * MAD``) but at least ``min_spread_ratio * median`` and
    ``min_spread_rows``, so a near-constant history does not flag ordinary variation.

    Attributes:
        history: How many earlier materializations of the asset to compare with.
        min_history: Fewer earlier materializations than this: no verdict yet (passes, says so).
        k: Width of the band in spreads.
        min_spread_ratio: The spread's floor, as a fraction of the median.
        min_spread_rows: The spread's floor, in rows.
    """

    history: int = 30
    min_history: int = 5
    k: float = 5.0
    min_spread_ratio: float = 0.25
    min_spread_rows: int = 50


VOLUME_BAND = VolumeBand()


def _int(value: int) -> dg.MetadataValue:
    return dg.MetadataValue.int(value)


def _recorded_int(materialization: dg.AssetMaterialization, key: str) -> int | None:
    value = materialization.metadata.get(key)
    return value.value if isinstance(value, dg.IntMetadataValue) else None


def _scope_rows_key(feed: Feed) -> str:
    return PARTITION_ROW_COUNT_KEY if feed.partition_column else ROW_COUNT_KEY


def inline_check_specs(feed: Feed) -> list[dg.AssetCheckSpec]:
    """The checks the asset itself evaluates, from what the merge just returned."""
    return [
        dg.AssetCheckSpec(
            COUNTS_RECONCILE,
            asset=feed.name,
            blocking=True,
            partitions_def=daily_partitions,
            description=(
                "Rows before the merge + inserted - deleted equals rows after it, for the "
                "partition and the table, all read from the Delta log; and the merge's source "
                "rows equal the rows read from the landing batch."
            ),
        ),
        dg.AssetCheckSpec(
            NO_OUT_OF_BAND_WRITES,
            asset=feed.name,
            partitions_def=daily_partitions,
            description=(
                "Since this partition's previous materialization, only the pipeline wrote to the "
                "table, and the rows it held before this merge are what was recorded then."
            ),
        ),
    ]


def reconcile(
    result: UpsertResult, *, landing_rows: int, table_rows_before_commit: int | None
) -> dg.AssetCheckResult:
    """Judges that the commit's counts add up, from the merge metrics and the log.

    The partition identity uses the snapshot the merge started from: delta-rs refuses to commit a
    merge when another commit touched the files it read, so no other write can land in this
    partition in between. The table identity cannot use that snapshot when concurrent commits to
    other partitions landed between it and this merge's commit (a backfill does exactly that): the
    table then holds their rows too. It is therefore judged against the version just before this
    commit (``table_rows_before_commit``, read from the log), which includes them.

    Args:
        result: What the upsert returned.
        landing_rows: Rows read from the landing batch.
        table_rows_before_commit: Table rows at ``result.version - 1`` when other commits landed
            between ``read_version`` and the commit; ``None`` if unknown or not needed.
    """
    table_before = (
        table_rows_before_commit if result.concurrent_commits else result.before.table_rows
    )
    net = result.inserted - result.deleted
    metadata: dict[str, dg.MetadataValue] = {
        "landing_rows": _int(landing_rows),
        "source_rows": _int(result.source_rows),
        "inserted": _int(result.inserted),
        "deleted": _int(result.deleted),
        "read_version": _int(result.read_version),
        "version": _int(result.version),
        "concurrent_commits": _int(result.concurrent_commits),
    }
    problems = []
    if result.source_rows != landing_rows:
        problems.append(f"merge saw {result.source_rows} source rows, landing had {landing_rows}")
    pairs = [("table", table_before, result.table_rows)]
    if result.partition is not None:
        pairs.insert(0, ("partition", result.before.partition_rows, result.partition_rows))
    unknown = []
    for scope, before, after in pairs:
        if before is None or after is None:
            unknown.append(scope)
            continue
        metadata[f"{scope}_rows_before"] = _int(before)
        metadata[f"{scope}_rows_expected"] = _int(before + net)
        metadata[f"{scope}_rows_after"] = _int(after)
        if before + net != after:
            problems.append(f"{scope}: {before} + {net} != {after}")
    if problems:
        return dg.AssetCheckResult(
            check_name=COUNTS_RECONCILE,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(problems),
            metadata=metadata,
        )
    if unknown:
        return dg.AssetCheckResult(
            check_name=COUNTS_RECONCILE,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"cannot reconcile the {' and '.join(unknown)} counts: data files without "
                "numRecords make them unknown"
            ),
            metadata=metadata,
        )
    return dg.AssetCheckResult(check_name=COUNTS_RECONCILE, passed=True, metadata=metadata)


def _in_scope(commit: Commit, feed: Feed, partition_key: str) -> bool:
    """Whether a pipeline commit changed the rows this check compares."""
    return commit.pipeline_asset == feed.name and (
        feed.partition_column is None or commit.pipeline_partition == partition_key
    )


def judge_out_of_band(
    feed: Feed,
    result: UpsertResult,
    *,
    partition_key: str,
    previous: dg.AssetMaterialization | None,
    commits: Sequence[Commit] | None,
) -> dg.AssetCheckResult:
    """Judges that nothing but the pipeline wrote since the previous materialization.

    Args:
        feed: The feed of the asset.
        result: What the upsert returned.
        partition_key: The partition being materialized.
        previous: This partition's previous materialization (for an unpartitioned table, the
            asset's latest), or ``None`` on the first one.
        commits: The log's commits after the version ``previous`` recorded, up to the version this
            merge read; ``None`` if the log no longer holds them all.
    """
    if previous is None:
        return dg.AssetCheckResult(
            check_name=NO_OUT_OF_BAND_WRITES,
            passed=True,
            description="first materialization: nothing recorded to compare with",
            metadata={"read_version": _int(result.read_version)},
        )
    scope_key = _scope_rows_key(feed)
    recorded_version = _recorded_int(previous, VERSION_KEY)
    recorded_rows = _recorded_int(previous, scope_key)
    rows_before = (
        result.before.partition_rows if feed.partition_column else result.before.table_rows
    )
    metadata: dict[str, dg.MetadataValue] = {"read_version": _int(result.read_version)}
    if recorded_version is not None:
        metadata["recorded_version"] = _int(recorded_version)
    if commits is None or recorded_version is None:
        return dg.AssetCheckResult(
            check_name=NO_OUT_OF_BAND_WRITES,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="the log no longer holds every commit since the previous materialization",
            metadata=metadata,
        )
    foreign = [commit for commit in commits if commit.pipeline_asset is None]
    metadata["foreign_commits"] = _int(len(foreign))
    metadata["pipeline_commits"] = _int(len(commits) - len(foreign))
    problems = []
    if foreign:
        metadata["foreign_commit_versions"] = dg.MetadataValue.text(
            ", ".join(f"v{commit.version} {commit.operation}" for commit in foreign)
        )
        problems.append(
            f"{len(foreign)} commit(s) made outside the pipeline: "
            + ", ".join(f"v{commit.version} {commit.operation}" for commit in foreign)
        )
    if recorded_rows is not None and rows_before is not None:
        nets = [net_rows(commit) for commit in commits if _in_scope(commit, feed, partition_key)]
        if all(net is not None for net in nets):
            expected = recorded_rows + sum(net for net in nets if net is not None)
            metadata["recorded_rows"] = _int(recorded_rows)
            metadata["expected_rows_before"] = _int(expected)
            metadata["rows_before"] = _int(rows_before)
            if rows_before != expected:
                problems.append(
                    f"{rows_before} rows before this merge, {expected} expected from the "
                    f"previous materialization (v{recorded_version}: {recorded_rows} rows)"
                )
    return dg.AssetCheckResult(
        check_name=NO_OUT_OF_BAND_WRITES,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems) or None,
        metadata=metadata,
    )


def _previous_materialization(
    instance: dg.DagsterInstance, feed: Feed, partition_key: str
) -> dg.AssetMaterialization | None:
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(feed.name),
        asset_partitions=[partition_key] if feed.partition_column else None,
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    return records[0].asset_materialization if records else None


def inline_check_results(
    context: dg.AssetExecutionContext,
    feed: Feed,
    lake: DeltaMergeResource,
    result: UpsertResult,
    *,
    landing_rows: int,
) -> list[dg.AssetCheckResult]:
    """Evaluates the inline checks of one materialization (before it is recorded)."""
    table_uri = lake.table_uri(feed.name)
    options = lake.delta_storage_options()
    table_rows_before_commit = None
    if result.concurrent_commits:
        table_rows_before_commit = read_row_counts(
            table_uri, version=result.version - 1, storage_options=options
        ).table_rows
    previous = _previous_materialization(context.instance, feed, context.partition_key)
    commits = None
    recorded_version = _recorded_int(previous, VERSION_KEY) if previous else None
    if recorded_version is not None:
        try:
            commits = commits_between(
                table_uri, recorded_version, result.read_version, storage_options=options
            )
        except HistoryUnavailableError:
            commits = None
    return [
        reconcile(
            result, landing_rows=landing_rows, table_rows_before_commit=table_rows_before_commit
        ),
        judge_out_of_band(
            feed,
            result,
            partition_key=context.partition_key,
            previous=previous,
            commits=commits,
        ),
    ]


def judge_volume(
    latest: dg.AssetMaterialization,
    history: Sequence[dg.AssetMaterialization],
    band: VolumeBand = VOLUME_BAND,
) -> dg.AssetCheckResult:
    """Judges a materialization's inserted / updated / deleted against the asset's history."""
    metadata: dict[str, dg.MetadataValue] = {"history": _int(len(history))}
    if len(history) < band.min_history:
        return dg.AssetCheckResult(
            passed=True,
            description=(
                f"{len(history)} earlier materialization(s): no verdict before {band.min_history}"
            ),
            metadata=metadata,
        )
    problems = []
    for key in VOLUME_METRICS:
        value = _recorded_int(latest, key)
        past = [v for v in (_recorded_int(m, key) for m in history) if v is not None]
        if value is None or len(past) < band.min_history:
            continue
        median = statistics.median(past)
        mad = statistics.median(abs(v - median) for v in past)
        spread = max(1.4826 * mad, band.min_spread_ratio * median, band.min_spread_rows)
        low, high = median - band.k * spread, median + band.k * spread
        name = key.removeprefix("upsert/")
        metadata[name] = _int(value)
        metadata[f"{name}_median"] = dg.MetadataValue.float(float(median))
        metadata[f"{name}_band"] = dg.MetadataValue.text(f"[{max(low, 0):.0f}, {high:.0f}]")
        if not low <= value <= high:
            problems.append(f"{name} {value} outside [{max(low, 0):.0f}, {high:.0f}]")
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems) or None,
        metadata=metadata,
    )


def build_standalone_checks(
    feed: Feed, band: VolumeBand = VOLUME_BAND
) -> list[dg.AssetChecksDefinition]:
    """The checks of ``feed`` that run as their own step, after the asset or on their own."""

    @dg.asset_check(
        asset=feed.name,
        name=VOLUME_WITHIN_HISTORY,
        partitions_def=daily_partitions,
        description=(
            f"Rows inserted / updated / deleted stay within a robust band (median ± {band.k} "
            f"spreads) of the asset's last {band.history} materializations."
        ),
    )
    def _volume(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        asset_key = dg.AssetKey(feed.name)
        mine = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[context.partition_key]),
            limit=1,
        ).records
        if not mine:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"partition {context.partition_key} has no materialization to judge",
            )
        earlier = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, before_storage_id=mine[0].storage_id),
            limit=band.history,
        ).records
        return judge_volume(
            mine[0].asset_materialization, [r.asset_materialization for r in earlier], band
        )

    @dg.asset_check(
        asset=feed.name,
        name=NOT_EMPTY,
        partitions_def=daily_partitions,
        description=(
            "The partition (or, for an unpartitioned table, the table) holds rows, by the "
            "numRecords of its files in the Delta log."
        ),
    )
    def _not_empty(
        context: dg.AssetCheckExecutionContext, lake: DeltaMergeResource
    ) -> dg.AssetCheckResult:
        day = daily_partitions.time_window_for_partition_key(context.partition_key).start.date()
        partition = {feed.partition_column: day} if feed.partition_column else None
        try:
            counts = lake.row_counts(feed.name, partition=partition)
        except TableNotFoundError:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"no Delta table at {lake.table_uri(feed.name)}",
            )
        rows = counts.partition_rows if partition else counts.table_rows
        metadata = {
            "rows": _int(rows) if rows is not None else dg.MetadataValue.text("unknown"),
            "files": _int(counts.partition_files if partition else counts.table_files),
            "files_without_stats": _int(counts.files_without_stats),
            "version": _int(counts.version),
        }
        description: str | None = None
        if rows is None:
            description = f"unknown: {counts.files_without_stats} file(s) lack numRecords"
        elif rows == 0:
            description = "no rows"
        return dg.AssetCheckResult(
            passed=bool(rows),
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
            metadata=metadata,
        )

    return [_volume, _not_empty]


lake_checks = [*build_standalone_checks(ORDERS), *build_standalone_checks(CUSTOMERS)]
"""The standalone checks of every feed."""

with warnings.catch_warnings():
    # Superseded by FreshnessPolicy, which the daemon judges per asset from its latest
    # materialization; this check judges what a daily-partitioned table needs: that the latest
    # due partition was materialized by the deadline.
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    freshness_checks = dg.build_time_partition_freshness_checks(
        assets=[feed.name for feed in FEEDS], deadline_cron=FRESHNESS_DEADLINE_CRON
    )
"""Dagster's own freshness checks: the latest due partition materialized by the deadline."""
