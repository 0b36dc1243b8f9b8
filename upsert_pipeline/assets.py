"""Partitioned ingestion assets: each day's landing batch MERGEd into its feed's Delta table."""

import datetime as dt

import dagster as dg
from pydantic import Field

from upsert_pipeline.checks import inline_check_results, inline_check_specs
from upsert_pipeline.delta import PartitionValue
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER
from upsert_pipeline.feeds import CUSTOMERS, ORDERS, Feed
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


def build_upsert_asset(feed: Feed) -> dg.AssetsDefinition:
    """A daily-partitioned asset that upserts the day's landing batch of ``feed`` into the lake.

    Each materialization reports the merge's counts and the log's row counts as integer metadata,
    so the UI lists and plots them per partition, and evaluates the inline checks of
    ``upsert_pipeline.checks`` on them.

    Example:
        >>> refunds = build_upsert_asset(Feed(name="refunds", schema=..., keys=("refund_id",),
        ...                                   partition_column="refund_date", description="..."))
    """

    @dg.asset(
        name=feed.name,
        partitions_def=daily_partitions,
        kinds={"deltalake", "parquet"},
        group_name="lake",
        description=feed.description,
        check_specs=inline_check_specs(feed),
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


orders = build_upsert_asset(ORDERS)
customers = build_upsert_asset(CUSTOMERS)
