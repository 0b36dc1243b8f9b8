"""The two Dagster assets compared end to end, and materializing one partition of either.

``project`` is this project's asset (``build_upsert_asset``) with its resources subclassed only
to time the calls inside a materialization. ``dagster_delta`` is the same partitioned upsert as
users write it today with ``dagster-delta``'s pyarrow IO manager in merge mode: the asset reads
the landing batch and returns it; the IO manager merges it into the partition.
"""

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_delta import DeltaLakePyarrowIOManager, LocalConfig, MergeConfig, MergeType, WriteMode

from upsert_pipeline.assets import build_upsert_asset
from upsert_pipeline.delta import Batch, UpsertResult
from upsert_pipeline.feeds import Feed
from upsert_pipeline.partitions import feed_partitions
from upsert_pipeline.resources import DeltaMergeResource, LandingResource

DAGSTER_DELTA_SCHEMA = "lake"
"""dagster-delta puts a table at ``<root_uri>/<schema>/<asset name>``."""

QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
"""Run config: events still go to the instance's event log; the console shows warnings only."""

INNER_SECONDS: dict[str, list[float]] = {"upsert": [], "landing_read": []}
"""Seconds of the calls made inside materializations (the in-process executor runs them here)."""


class TimedLake(DeltaMergeResource):
    """The project's lake resource, recording how long each ``upsert`` takes."""

    def upsert(self, table: str, batch: Batch, **options: Any) -> UpsertResult:
        """Times ``DeltaMergeResource.upsert``; every keyword passes through unchanged."""
        start = time.perf_counter()
        result = super().upsert(table, batch, **options)
        INNER_SECONDS["upsert"].append(time.perf_counter() - start)
        return result


class TimedLanding(LandingResource):
    """The project's landing resource, recording how long each batch read takes."""

    def read_batch(self, feed: Feed, partition_key: str, *args: Any, **kwargs: Any) -> pa.Table:
        """Times ``LandingResource.read_batch``; every argument passes through unchanged."""
        start = time.perf_counter()
        batch = super().read_batch(feed, partition_key, *args, **kwargs)
        INNER_SECONDS["landing_read"].append(time.perf_counter() - start)
        return batch


def write_landing(landing: Path, feed: Feed, partition_key: str, batch: pa.Table) -> None:
    """Writes ``batch`` where the landing resource looks for ``feed``'s day ``partition_key``."""
    folder = landing / feed.name
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(batch, folder / f"{partition_key}.parquet")


def project_asset(feed: Feed) -> dg.AssetsDefinition:
    """This project's asset for ``feed``."""
    return build_upsert_asset(feed)


def project_resources(lake_root: str, landing: str) -> dict[str, Any]:
    """The project's resources, timed; the table is ``<lake_root>/<feed.name>``."""
    return {"landing": TimedLanding(uri=landing), "lake": TimedLake(lake_uri=lake_root)}


def dagster_delta_asset(feed: Feed) -> dg.AssetsDefinition:
    """The same upsert done the ``dagster-delta`` way: return the batch, the IO manager merges."""

    @dg.asset(
        name=feed.name,
        partitions_def=feed_partitions(feed.partitions),
        metadata={"partition_expr": feed.partition_column},
        io_manager_key="delta_io_manager",
    )
    def _dagster_delta_asset(
        context: dg.AssetExecutionContext, landing: LandingResource
    ) -> pa.Table:
        return landing.read_batch(feed, context.partition_key)

    return _dagster_delta_asset


def dagster_delta_resources(lake_root: str, landing: str, feed: Feed) -> dict[str, Any]:
    """``dagster-delta``'s IO manager in merge mode (upsert on the feed's keys)."""
    predicate = " AND ".join(f"s.{key} = t.{key}" for key in feed.keys)
    return {
        "landing": TimedLanding(uri=landing),
        "delta_io_manager": DeltaLakePyarrowIOManager(
            root_uri=lake_root,
            schema=DAGSTER_DELTA_SCHEMA,
            mode=WriteMode.merge,
            merge_config=MergeConfig(
                merge_type=MergeType.upsert,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
            ),
            storage_options=LocalConfig(),
        ),
    }


def materialize(
    asset: dg.AssetsDefinition,
    resources: Mapping[str, Any],
    partition_key: str,
    instance: dg.DagsterInstance,
) -> dict[str, Any]:
    """Materializes one partition in process; returns its metadata as plain values."""
    result = dg.materialize(
        [asset],
        partition_key=partition_key,
        resources=dict(resources),
        instance=instance,
        run_config=QUIET_CONSOLE,
    )
    if not result.success:
        raise RuntimeError(f"materializing {partition_key} failed")
    events = result.get_asset_materialization_events()
    metadata = events[-1].materialization.metadata
    return {key: _plain(value) for key, value in metadata.items()}


def _plain(value: dg.MetadataValue) -> Any:
    raw = value.value
    return raw if isinstance(raw, int | float | str | dict | list) else str(raw)
