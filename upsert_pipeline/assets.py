"""Partitioned ingestion assets: each day's landing batch MERGEd into its feed's Delta table."""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from upsert_pipeline.checks.evaluations import check_outputs, latest_target, partition_evaluation
from upsert_pipeline.checks.judges import Verdict
from upsert_pipeline.checks.wiring import inline_check_specs, inline_verdicts
from upsert_pipeline.cost import EXPECTATIONS, LANDING_READ, RECORDING, UPSERT, Stopwatch
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER
from upsert_pipeline.feeds import Feed
from upsert_pipeline.load_facts import load_cost, load_facts
from upsert_pipeline.metadata import upsert_metadata
from upsert_pipeline.partitions import daily_partitions, partition_scope
from upsert_pipeline.quality import evaluate_expectations
from upsert_pipeline.quarantine import write_quarantine
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


@dataclass(frozen=True)
class _Merged:
    """One partition's merge in this step, and the inline checks' verdicts on it."""

    partition_key: str
    metadata: dict[str, dg.MetadataValue]
    verdicts: dict[str, Verdict]


def build_upsert_asset(
    feed: Feed, *, freshness_policy: dg.FreshnessPolicy | None = None
) -> dg.AssetsDefinition:
    """A daily-partitioned asset that upserts the day's landing batch of ``feed`` into the lake.

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

    Example:
        >>> refunds = build_upsert_asset(load_feed("refunds"))
    """
    check_specs = inline_check_specs(feed)

    @dg.asset(
        name=feed.name,
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"deltalake", "parquet"},
        group_name="lake",
        description=feed.description,
        check_specs=check_specs,
        freshness_policy=freshness_policy,
    )
    def _upsert_asset(
        context: dg.AssetExecutionContext,
        config: UpsertConfig,
        landing: LandingResource,
        lake: DeltaMergeResource,
    ) -> Iterator[
        dg.MaterializeResult[None]
        | dg.AssetMaterialization
        | dg.AssetCheckEvaluation
        | dg.Output[None]
    ]:
        selected = [spec for spec in check_specs if spec.key in context.selected_asset_check_keys]
        merged: list[_Merged] = []
        for partition_key in context.partition_keys:
            try:
                merged.append(_merge(context, config, feed, landing, lake, partition_key))
            except Exception:
                # The days merged before this one are committed: record them (their
                # materializations and verdicts) before the run fails on this one.
                for done in merged:
                    yield dg.AssetMaterialization(
                        asset_key=feed.name, partition=done.partition_key, metadata=done.metadata
                    )
                yield from _evaluations(context.instance, feed.name, selected, merged)
                raise
        for done in merged:
            context.add_asset_metadata(done.metadata, partition_key=done.partition_key)
        yield dg.MaterializeResult()
        yield from _evaluations(context.instance, feed.name, selected, merged)
        yield from check_outputs(context.assets_def, [spec.key for spec in selected])

    return _upsert_asset


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
        batch = landing.read_batch(feed, partition_key)
    with watch.phase(EXPECTATIONS):
        quality = evaluate_expectations(
            batch, feed.expectations, feed=feed.name, partition=partition_key
        )
    with watch.phase(UPSERT):
        result = lake.upsert(
            feed.name,
            quality.kept,
            keys=feed.keys,
            partition=partition_scope(feed.partition_column, partition_key),
            commit_metadata={
                "dagster.run_id": context.run.run_id,
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
    metadata.update(load_cost(lake, feed, landing, watch, result, partition_key=partition_key))
    return _Merged(partition_key=partition_key, metadata=metadata, verdicts=verdicts)


def _evaluations(
    instance: dg.DagsterInstance,
    feed_name: str,
    specs: list[dg.AssetCheckSpec],
    merged: list[_Merged],
) -> Iterator[dg.AssetCheckEvaluation]:
    """Each selected inline check's verdict on each merged partition, after its materialization."""
    for done in merged:
        target = latest_target(instance, dg.AssetKey(feed_name), done.partition_key)
        for spec in specs:
            yield partition_evaluation(spec, done.partition_key, done.verdicts[spec.name], target)


def __getattr__(name: str) -> dg.AssetsDefinition:
    """A feed's asset by name (``from upsert_pipeline.assets import orders``), as the defs folder
    builds it: for scripts and tests that materialize it directly. No second definition exists."""
    if name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from upsert_pipeline.definitions import feed_definitions

    for asset in feed_definitions().assets or ():
        if isinstance(asset, dg.AssetsDefinition) and asset.key == dg.AssetKey(name):
            return asset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r} (no such feed)")
