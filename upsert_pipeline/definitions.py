"""The code location's entry point: ``upsert_pipeline.definitions:defs``.

The feeds and the observed tables come from the defs folder
(``upsert_pipeline/defs/<name>/defs.yaml``); this module adds what they all share: the
resources, the jobs over every feed (ingestion, checks, ``maintain_lake`` with its maintenance
assets), ``observe_tables``, and the executor.
"""

import functools
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from upsert_pipeline.check_defs import raise_for_mistakes
from upsert_pipeline.feeds import feed_names
from upsert_pipeline.lake_maintenance import maintenance_definitions
from upsert_pipeline.observed import observed_definitions
from upsert_pipeline.partitions import daily_partitions
from upsert_pipeline.recovery import build_recover_job
from upsert_pipeline.resources import (
    DEFAULT_LAKE_URI,
    DEFAULT_LANDING_URI,
    LAKE_URI_ENV,
    LANDING_URI_ENV,
    DeltaMergeResource,
    LandingResource,
)

INGEST_JOB = "ingest_daily"
"""One day of every feed on the default daily partitions, then their standalone checks (each feed
also has its own job ``ingest_<feed>`` on its own partitions)."""
CHECK_JOB = "check_lake"
"""The standalone checks of one day of those feeds, without materializing anything."""


def _setting(env_var: str, default: str) -> str:
    """The environment variable as a ``dg.EnvVar`` (resolved at run time) when it is set, else the
    project-folder default, so ``dagster dev`` works on a fresh clone with nothing configured."""
    return dg.EnvVar(env_var) if env_var in os.environ else default


def default_resources() -> dict[str, dg.ConfigurableResource]:  # type: ignore[type-arg]
    """The landing and lake resources, from the environment or the project-folder defaults."""
    return {
        "landing": LandingResource(uri=_setting(LANDING_URI_ENV, DEFAULT_LANDING_URI)),
        "lake": DeltaMergeResource(lake_uri=_setting(LAKE_URI_ENV, DEFAULT_LAKE_URI)),
    }


def build_definitions(
    feeds: dg.Definitions, *, resources: Mapping[str, object] | None = None
) -> dg.Definitions:
    """The code location: the feeds' definitions plus what every feed shares.

    Args:
        feeds: What the defs folder declares.
        resources: The resources by key; ``default_resources()`` when ``None``.

    Every run executes in one process (``in_process_executor``): a run is one partition's merge
    and a few checks that read the log, so a process per step would cost more in start-up
    (importing Dagster, delta-rs and polars) than the steps themselves take.
    """
    all_assets = [a for a in feeds.assets or () if isinstance(a, dg.AssetsDefinition)]
    # A job runs one partitions definition: the jobs over every feed take the feeds on the default
    # daily partitions; a feed with its own start or cadence runs in its own job ingest_<feed>.
    assets = [a for a in all_assets if a.partitions_def == daily_partitions]
    daily = {key for asset in assets for key in asset.keys}
    # The standalone checks, by key (the defs folder hands them back as AssetsDefinitions).
    checks = [
        key
        for check in feeds.asset_checks or ()
        if isinstance(check, dg.AssetsDefinition | dg.AssetChecksDefinition)
        for key in check.check_keys
        if key.asset_key in daily
    ]
    ingest_daily = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.assets(*assets) | dg.AssetSelection.checks(*checks),
        description=(
            "Upserts one day of every daily feed (default partitions), then runs their checks."
        ),
    )
    check_lake = dg.define_asset_job(
        CHECK_JOB,
        selection=dg.AssetSelection.checks(*checks),
        # A job of checks alone is not partitioned by inference (Dagster 1.13 infers it from
        # assets only), and its runs need a partition key: named here, despite the deprecation.
        partitions_def=daily_partitions,
        description="Evaluates the standalone checks of one day's partition; materializes nothing.",
    )
    tables = [key.path[-1] for asset in all_assets for key in asset.keys]
    recover_lake = build_recover_job([name for name in feed_names() if name in tables])
    shared = dg.Definitions(
        jobs=[ingest_daily, check_lake, recover_lake],
        resources=dict(default_resources() if resources is None else resources),
        executor=dg.in_process_executor,
    )
    observed = [
        asset
        for asset in feeds.assets or ()
        if isinstance(asset, dg.SourceAsset) and asset.is_observable
    ]
    return dg.Definitions.merge(
        feeds, shared, maintenance_definitions(tables), observed_definitions(observed)
    )


# load_from_defs_folder hands the standalone checks back as AssetsDefinitions, and Dagster 1.13
# turns them into check definitions again through `AssetsDefinition(execution_type=...)`, a beta
# parameter it then warns about in every process that resolves the code location (the webserver,
# the daemon, each run). We pass no such parameter; the warning is Dagster's own round trip.
warnings.filterwarnings(
    "ignore",
    message=r"Parameter `execution_type` of function `AssetsDefinition.__init__`",
    category=dg.BetaWarning,
)


@functools.cache
def feed_definitions() -> dg.Definitions:
    """What the defs folder declares: each feed's asset, checks, job and schedule (loaded once).

    Every feed's YAML is checked first (``check_defs``), so a broken feed fails the code location
    with an error whose first line names the file, the line and the mistake.
    """
    raise_for_mistakes(Path(__file__).parent / "defs")
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


defs = build_definitions(feed_definitions())
