"""The checks' Dagster wiring: their specs, the asset checks that fetch what a judge needs from
the event log and the Delta log, and each ``Verdict`` as Dagster's check result or evaluation.

Two checks run inline, in the materialization's own step, because what they compare is known when
the merge returns: ``counts_reconcile`` (blocking) and ``no_out_of_band_writes``. Two are
``@dg.asset_check`` functions, evaluated after the asset in the same run or on their own (from the
UI or the ``check_lake`` job): ``volume_within_history`` and ``not_empty``. Every one judges each
partition of its run (one, or a backfill's range) and records a verdict per partition
(``checks/evaluations.py``). No check opens a data file.
"""

import warnings
from collections.abc import Iterator, Sequence

import dagster as dg

# Not exported at the top level in 1.13; it is the type of AssetCheckEvaluation's field.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from deltalake.exceptions import TableNotFoundError

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.checks.evaluations import (
    check_outputs,
    latest_record,
    latest_target,
    partition_evaluation,
    target_of,
)
from upsert_pipeline.checks.judges import (
    VOLUME_BAND,
    Severity,
    Verdict,
    VolumeBand,
    judge_expectation,
    judge_not_empty,
    judge_out_of_band,
    judge_reconcile,
    judge_volume,
    one_per_partition,
)
from upsert_pipeline.checks.names import (
    COUNTS_RECONCILE,
    NO_OUT_OF_BAND_WRITES,
    NOT_EMPTY,
    VOLUME_WITHIN_HISTORY,
    expectation_check,
)
from upsert_pipeline.delta import UpsertResult, read_row_counts
from upsert_pipeline.delta.history import HistoryUnavailableError, commits_between
from upsert_pipeline.feeds import Feed
from upsert_pipeline.partitions import feed_partitions, partition_scope
from upsert_pipeline.quality import RuleOutcome
from upsert_pipeline.resources import DeltaMergeResource

# Every check here is partitioned like its asset, so the UI shows a verdict per partition. In
# Dagster 1.13 a partitions_def on a check is a preview feature, and AssetCheckSpec warns each
# time one is built: on every import of the code location, in every run worker, a block per check
# per feed. The warning tells us nothing new (we chose the preview on purpose), so it is
# silenced here, once, for that one message only; any other PreviewWarning still shows.
warnings.filterwarnings(
    "ignore",
    message=r"Specifying a partitions_def on an AssetCheckSpec",
    category=dg.PreviewWarning,
)


_RERUN_HEADROOM = 4
"""Records read per partition of the volume band, to leave re-runs out and still fill it."""


def check_result(verdict: Verdict, *, check_name: str | None = None) -> dg.AssetCheckResult:
    """A verdict as Dagster's check result (of an unpartitioned check); counts stay integers."""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity(verdict.severity.value),
        description=verdict.description,
        metadata=dict(verdict.metadata),
    )


def recorded_ints(materialization: dg.AssetMaterialization | None) -> dict[str, int]:
    """The integer metadata a materialization recorded (the counts a judge compares)."""
    if materialization is None:
        return {}
    return {
        key: value.value
        for key, value in materialization.metadata.items()
        if isinstance(value, dg.IntMetadataValue) and value.value is not None
    }


def inline_check_specs(feed: Feed) -> list[dg.AssetCheckSpec]:
    """The checks the asset itself evaluates, from what the merge just returned."""
    return [
        dg.AssetCheckSpec(
            COUNTS_RECONCILE,
            asset=feed.name,
            blocking=True,
            partitions_def=feed_partitions(feed.partitions),
            description=(
                "Rows before the merge + inserted - deleted equals rows after it, for the "
                "partition and the table, all read from the Delta log; and the merge's source "
                "rows equal the rows read from the landing batch."
            ),
        ),
        dg.AssetCheckSpec(
            NO_OUT_OF_BAND_WRITES,
            asset=feed.name,
            partitions_def=feed_partitions(feed.partitions),
            description=(
                "Since this partition's previous materialization, only the pipeline wrote to the "
                "table, and the rows it held before this merge are what was recorded then."
            ),
        ),
        *(
            dg.AssetCheckSpec(
                expectation_check(expectation.name),
                asset=feed.name,
                partitions_def=feed_partitions(feed.partitions),
                description=(
                    f"Rows of the landed batch failing {expectation.rule!r} (a NULL passes) are "
                    f"at most {expectation.tolerance:.2%}; failing rows: "
                    f"{expectation.on_fail.value}."
                ),
            )
            for expectation in feed.expectations
        ),
    ]


def _previous_materialization(
    instance: dg.DagsterInstance, feed: Feed, partition_key: str
) -> dg.AssetMaterialization | None:
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(feed.name),
        asset_partitions=[partition_key] if feed.partition_column else None,
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    return records[0].asset_materialization if records else None


def inline_verdicts(
    instance: dg.DagsterInstance,
    feed: Feed,
    lake: DeltaMergeResource,
    result: UpsertResult,
    *,
    partition_key: str,
    landing_rows: int,
    expectations: Sequence[RuleOutcome] = (),
) -> dict[str, Verdict]:
    """The inline checks' verdicts on one partition's merge, by check name; judged before the
    materialization is recorded (the previous one is what ``no_out_of_band_writes`` compares)."""
    table_uri = lake.table_uri(feed.name)
    options = lake.delta_storage_options()
    table_rows_before_commit = None
    if result.concurrent_commits:
        table_rows_before_commit = read_row_counts(
            table_uri, version=result.version - 1, storage_options=options
        ).table_rows
    materialization = _previous_materialization(instance, feed, partition_key)
    previous = recorded_ints(materialization) if materialization else None
    commits = None
    recorded_version = previous.get(keys.VERSION) if previous else None
    if recorded_version is not None:
        try:
            commits = commits_between(
                table_uri, recorded_version, result.read_version, storage_options=options
            )
        except HistoryUnavailableError:
            commits = None
    return {
        COUNTS_RECONCILE: judge_reconcile(
            result, landing_rows=landing_rows, table_rows_before_commit=table_rows_before_commit
        ),
        NO_OUT_OF_BAND_WRITES: judge_out_of_band(
            feed, result, partition_key=partition_key, previous=previous, commits=commits
        ),
        **{
            expectation_check(outcome.expectation.name): judge_expectation(outcome)
            for outcome in expectations
        },
    }


def volume_verdict(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partition_key: str,
    band: VolumeBand = VOLUME_BAND,
) -> tuple[Verdict, AssetCheckEvaluationTargetMaterializationData | None]:
    """``volume_within_history``'s verdict on the partition's latest materialization, judged
    against the asset's materializations recorded before it, and that materialization."""
    mine = latest_record(instance, asset_key, partition_key)
    return volume_verdict_on(instance, asset_key, partition_key, mine, band), (
        target_of(mine) if mine else None
    )


def volume_verdict_on(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partition_key: str,
    mine: dg.EventLogRecord | None,
    band: VolumeBand = VOLUME_BAND,
) -> Verdict:
    """``volume_within_history``'s verdict on ``mine``, the partition's latest materialization
    record (looked up by the caller), judged against the materializations recorded before it."""
    if mine is None:
        missing = f"partition {partition_key} has no materialization to judge"
        return Verdict(False, Severity.WARN, missing)
    # Each day counts once in the history (its newest load) and the judged day's own earlier
    # loads not at all: read enough records to fill the band despite re-runs.
    earlier = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, before_storage_id=mine.storage_id),
        limit=band.history * _RERUN_HEADROOM,
    ).records
    history = one_per_partition(
        [(record.partition_key, recorded_ints(record.asset_materialization)) for record in earlier],
        judged=partition_key,
        limit=band.history,
    )
    return judge_volume(recorded_ints(mine.asset_materialization), history, band)


def build_standalone_checks(
    feed: Feed, band: VolumeBand = VOLUME_BAND
) -> list[dg.AssetChecksDefinition]:
    """The checks of ``feed`` that run after the asset in the same run, or on their own."""

    # Dagster types a check function as returning one AssetCheckResult; it runs a generator of
    # per-partition evaluations too (checks/evaluations.py says why these yield them).
    @dg.asset_check(  # type: ignore[arg-type]
        asset=feed.name,
        name=VOLUME_WITHIN_HISTORY,
        partitions_def=feed_partitions(feed.partitions),
        description=(
            f"Rows inserted / updated / deleted stay within a robust band (median ± {band.k} "
            f"spreads) of the asset's last {band.history} materializations."
        ),
    )
    def _volume(
        context: dg.AssetCheckExecutionContext,
    ) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
        [spec] = context.check_specs
        for partition_key in context.partition_keys:
            verdict, target = volume_verdict(
                context.instance, dg.AssetKey(feed.name), partition_key, band
            )
            yield partition_evaluation(spec, partition_key, verdict, target)
        yield from check_outputs(context.op_execution_context.assets_def, [spec.key])

    # Dagster types a check function as returning one AssetCheckResult; it runs a generator of
    # per-partition evaluations too (checks/evaluations.py says why these yield them).
    @dg.asset_check(  # type: ignore[arg-type]
        asset=feed.name,
        name=NOT_EMPTY,
        partitions_def=feed_partitions(feed.partitions),
        description=(
            "The partition (or, for an unpartitioned table, the table) holds rows, by the "
            "numRecords of its files in the Delta log."
        ),
    )
    def _not_empty(
        context: dg.AssetCheckExecutionContext, lake: DeltaMergeResource
    ) -> Iterator[dg.AssetCheckEvaluation | dg.Output[None]]:
        [spec] = context.check_specs
        scopes = [partition_scope(feed, key) for key in context.partition_keys]
        try:
            # One load of the log counts every partition of the run.
            all_counts = lake.partition_row_counts(feed.name, scopes)
        except TableNotFoundError:
            missing = Verdict(
                False, Severity.ERROR, f"no Delta table at {lake.table_uri(feed.name)}"
            )
            verdicts = [missing] * len(scopes)
        else:
            verdicts = [
                judge_not_empty(counts, partitioned=feed.partition_column is not None)
                for counts in all_counts
            ]
        for partition_key, verdict in zip(context.partition_keys, verdicts, strict=True):
            target = latest_target(context.instance, spec.asset_key, partition_key)
            yield partition_evaluation(spec, partition_key, verdict, target)
        yield from check_outputs(context.op_execution_context.assets_def, [spec.key])

    return [_volume, _not_empty]
