"""Partitioned ingestion assets: each partition's landing files MERGEd into its Delta table."""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from upsert_pipeline.checks.evaluations import check_outputs, partition_evaluation
from upsert_pipeline.checks.judges import VOLUME_BAND, Verdict, VolumeBand, judge_expectation
from upsert_pipeline.checks.names import expectation_check
from upsert_pipeline.checks.wiring import inline_check_specs, inline_verdicts
from upsert_pipeline.cost import EXPECTATIONS, LANDING_READ, RECORDING, UPSERT, Stopwatch
from upsert_pipeline.delta import UpsertResult
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER, RUN_MARKER
from upsert_pipeline.feeds import Feed
from upsert_pipeline.load_facts import load_cost, load_facts
from upsert_pipeline.metadata import upsert_metadata
from upsert_pipeline.partitions import feed_partitions, partition_scope
from upsert_pipeline.quality import ExpectationFailedError, evaluate_expectations
from upsert_pipeline.quarantine import write_quarantine
from upsert_pipeline.recording import standalone_specs
from upsert_pipeline.recovery import DEFAULT_GRACE_S, recover_first
from upsert_pipeline.resources import DeltaMergeResource, LandingResource


class UpsertConfig(dg.Config):
    """Run config of an upsert asset (the Launchpad's ``ops: <asset>: config:``)."""

    snapshot: bool = Field(
        default=False,
        description=(
            "Load the batch as the complete truth of its partition: rows of the partition whose "
            "key it lacks are deleted. Only for a partitioned table; never touches other "
            "partitions."
        ),
    )
    allow_empty_snapshot: bool = Field(
        default=False,
        description="Let an empty snapshot batch delete every row of its partition.",
    )
    recovery_grace_s: float = Field(
        default=DEFAULT_GRACE_S,
        description=(
            "Before merging, commits of this asset whose run died before recording them are "
            "recorded (recovered); a commit of a run the instance still calls started counts as "
            "dead once it is this old, in seconds."
        ),
    )


@dataclass(frozen=True)
class _Merged:
    """One partition's merge in this step, and the inline checks' verdicts on it."""

    partition_key: str
    result: UpsertResult
    metadata: dict[str, dg.MetadataValue]
    verdicts: dict[str, Verdict]


def build_upsert_asset(
    feed: Feed,
    *,
    freshness_policy: dg.FreshnessPolicy | None = None,
    volume_band: VolumeBand = VOLUME_BAND,
) -> dg.AssetsDefinition:
    """A partitioned asset (the feed's own start and cadence) that upserts each partition's
    landing files of ``feed`` into the lake.

    Each partition's materialization reports the merge's counts and the log's row counts as
    integer metadata, so the UI lists and plots them per partition, and records the inline checks
    of ``upsert_pipeline.checks.wiring`` on them. A backfill runs as one run over its range of
    days (``BackfillPolicy.single_run``): one process instead of one per day, the days merged one
    after another, each its own commit with its own counts and check verdicts.

    The defs folder builds one per feed (``FeedComponent``); call it directly to serve a feed
    from Python.

    Args:
        feed: The feed to upsert.
        freshness_policy: Dagster's freshness policy of the asset, judged by the daemon.
        volume_band: The thresholds of ``volume_within_history``, which a run of the asset
            judges for each partition as it records it.

    Example:
        >>> refunds = build_upsert_asset(load_feed("refunds"))
    """
    check_specs = inline_check_specs(feed)

    @dg.asset(
        name=feed.name,
        partitions_def=feed_partitions(feed.partitions),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"deltalake", feed.layout.format},
        group_name="lake",
        description=feed.description,
        check_specs=check_specs,
        freshness_policy=freshness_policy,
        output_required=False,
    )
    def _upsert_asset(
        context: dg.AssetExecutionContext,
        config: UpsertConfig,
        landing: LandingResource,
        lake: DeltaMergeResource,
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckEvaluation | dg.Output[None]]:
        selected = [spec for spec in check_specs if spec.key in context.selected_asset_check_keys]
        # Commits of runs that died before recording them, recorded before this run merges.
        recorder = yield from recover_first(
            context.instance,
            feed,
            lake,
            run_id=context.run.run_id,
            grace_s=config.recovery_grace_s,
            inline_specs=selected,
            standalone_specs=standalone_specs(context, feed),
            band=volume_band,
            partitions_def=context.assets_def.partitions_def,
            log=context.log,
        )
        # Each day recorded and judged as soon as its commit lands (recording.py says why the
        # asset yields no output of its own).
        for partition_key in context.partition_keys:
            try:
                done = _merge(context, config, feed, landing, lake, partition_key)
            except ExpectationFailedError as refused:
                # Nothing was written, so nothing is materialized; each rule's check still
                # records its verdict on the refused batch, so the UI says which rule refused it.
                yield from _refused_verdicts(selected, partition_key, refused)
                raise
            yield from recorder.record(done.result, partition_key, done.metadata, done.verdicts)
        yield from check_outputs(context.assets_def, [spec.key for spec in selected])

    return _upsert_asset


def _refused_verdicts(
    specs: list[dg.AssetCheckSpec], partition_key: str, refused: ExpectationFailedError
) -> Iterator[dg.AssetCheckEvaluation]:
    """Each selected rule check's verdict on a batch a ``fail`` rule refused (no materialization
    to point at: the batch was never merged)."""
    by_check = {expectation_check(o.expectation.name): o for o in refused.outcomes}
    for spec in specs:
        if spec.name in by_check:
            verdict = judge_expectation(by_check[spec.name])
            yield partition_evaluation(spec, partition_key, verdict, None)


def _merge(
    context: dg.AssetExecutionContext,
    config: UpsertConfig,
    feed: Feed,
    landing: LandingResource,
    lake: DeltaMergeResource,
    partition_key: str,
) -> _Merged:
    """Upserts one day's landing batch and judges the inline checks on what the merge returned.

    Before the merge, the feed's expectations are counted on the batch in memory (rows failing a
    ``drop`` or ``quarantine`` rule are left out, a ``fail`` rule beyond its tolerance refuses the
    batch with nothing written); after it, the quarantined rows are upserted beside the table and
    the partition's profile, schema change and cost are read from the log (``load_facts``).
    """
    watch = Stopwatch()
    with watch.phase(LANDING_READ):
        files = landing.files(feed, partition_key)
        batch = landing.read_batch(feed, partition_key, files=files)
    with watch.phase(EXPECTATIONS):
        quality = evaluate_expectations(
            batch, feed.expectations, feed=feed.name, partition=partition_key
        )
    with watch.phase(UPSERT):
        result = lake.upsert(
            feed.name,
            quality.kept,
            keys=feed.keys,
            partition=partition_scope(feed, partition_key),
            commit_metadata={
                RUN_MARKER: context.run.run_id,
                PIPELINE_MARKER: feed.name,
                PARTITION_MARKER: partition_key,
            },
            snapshot=config.snapshot,
            allow_empty_snapshot=config.allow_empty_snapshot,
            evolve_schema=feed.evolve_schema,
            required_columns=feed.schema.names,
            profile=True,
        )
    context.log.info(
        f"{feed.name} {partition_key}: {result.inserted} inserted, {result.updated} "
        f"updated, {result.deleted} deleted, {result.unchanged} unchanged"
        f"{' (snapshot)' if result.snapshot else ''}; version "
        f"{result.read_version} -> {result.version}"
        + (f"; {quality.removed} row(s) left out by expectations" if quality.removed else "")
    )
    with watch.phase(RECORDING):
        quarantined = write_quarantine(
            lake, feed, quality, partition_key=partition_key, run_id=context.run.run_id
        )
        metadata = {
            **upsert_metadata(result, table_name=feed.name, schema=feed.schema),
            **load_facts(lake, feed, result, quality, quarantined),
        }
        verdicts = inline_verdicts(
            context.instance,
            feed,
            lake,
            result,
            partition_key=partition_key,
            landing_rows=quality.kept.num_rows,
            expectations=quality.outcomes,
        )
    landing_bytes = sum(file.size for file in files)
    metadata.update(load_cost(lake, feed, watch, result, landing_bytes=landing_bytes))
    return _Merged(partition_key=partition_key, result=result, metadata=metadata, verdicts=verdicts)
