"""Partitioned ingestion assets: each day's landing batch MERGEd into its feed's Delta table."""

import datetime as dt

import dagster as dg
from pydantic import Field

from upsert_pipeline.checks.wiring import inline_check_results, inline_check_specs
from upsert_pipeline.delta import PartitionValue
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER
from upsert_pipeline.feeds import Feed
from upsert_pipeline.metadata import upsert_metadata
from upsert_pipeline.partitions import daily_partitions
from upsert_pipeline.resources import DeltaMergeResource, LandingResource


def partition_scope(feed: Feed, day: dt.date) -> dict[str, PartitionValue] | None:
    """The ``{column: day}`` a feed's merge is scoped to, or ``None`` for an unpartitioned table."""
    return {feed.partition_column: day} if feed.partition_column else None


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


def build_upsert_asset(
    feed: Feed, *, freshness_policy: dg.FreshnessPolicy | None = None
) -> dg.AssetsDefinition:
    """A daily-partitioned asset that upserts the day's landing batch of ``feed`` into the lake.

    Each materialization reports the merge's counts and the log's row counts as integer metadata,
    so the UI lists and plots them per partition, and evaluates the inline checks of
    ``upsert_pipeline.checks.wiring`` on them.

    The defs folder builds one per feed (``FeedComponent``); call it directly to serve a feed
    from Python.

    Args:
        feed: The feed to upsert.
        freshness_policy: Dagster's freshness policy of the asset, judged by the daemon.

    Example:
        >>> refunds = build_upsert_asset(load_feed("refunds"))
    """

    @dg.asset(
        name=feed.name,
        partitions_def=daily_partitions,
        kinds={"deltalake", "parquet"},
        group_name="lake",
        description=feed.description,
        check_specs=inline_check_specs(feed),
        freshness_policy=freshness_policy,
    )
    def _upsert_asset(
        context: dg.AssetExecutionContext,
        config: UpsertConfig,
        landing: LandingResource,
        lake: DeltaMergeResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        batch = landing.read_batch(feed, context.partition_key)
        result = lake.upsert(
            feed.name,
            batch,
            keys=feed.keys,
            partition=partition_scope(feed, context.partition_time_window.start.date()),
            commit_metadata={
                "dagster.run_id": context.run.run_id,
                PIPELINE_MARKER: feed.name,
                PARTITION_MARKER: context.partition_key,
            },
            snapshot=config.snapshot,
            allow_empty_snapshot=config.allow_empty_snapshot,
            evolve_schema=feed.evolve_schema,
            required_columns=feed.schema.names,
        )
        context.log.info(
            f"{feed.name} {context.partition_key}: {result.inserted} inserted, {result.updated} "
            f"updated, {result.deleted} deleted, {result.unchanged} unchanged"
            f"{' (snapshot)' if result.snapshot else ''}; version "
            f"{result.read_version} -> {result.version}"
        )
        return dg.MaterializeResult(
            metadata=upsert_metadata(result, table_name=feed.name, schema=feed.schema),
            check_results=inline_check_results(
                context, feed, lake, result, landing_rows=batch.num_rows
            ),
        )

    return _upsert_asset


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
