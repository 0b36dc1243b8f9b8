"""The code location's entry point: ``upsert_pipeline.definitions:defs``."""

import os

import dagster as dg

from upsert_pipeline.assets import customers, freshness_checks, lake_checks, orders
from upsert_pipeline.lake_maintenance import (
    maintain_lake_job,
    maintain_lake_schedule,
    maintenance_assets,
)
from upsert_pipeline.resources import (
    DEFAULT_LAKE_URI,
    DEFAULT_LANDING_URI,
    LAKE_URI_ENV,
    LANDING_URI_ENV,
    DeltaMergeResource,
    LandingResource,
)
from upsert_pipeline.schedules import (
    check_job,
    freshness_job,
    freshness_schedule,
    ingest_job,
    ingest_schedule,
)


def _setting(env_var: str, default: str) -> str:
    """The environment variable as a ``dg.EnvVar`` (resolved at run time) when it is set, else the
    project-folder default, so ``dagster dev`` works on a fresh clone with nothing configured."""
    return dg.EnvVar(env_var) if env_var in os.environ else default


defs = dg.Definitions(
    assets=[orders, customers, *maintenance_assets],
    asset_checks=[*lake_checks, *freshness_checks],
    jobs=[ingest_job, check_job, freshness_job, maintain_lake_job],
    schedules=[ingest_schedule, freshness_schedule, maintain_lake_schedule],
    resources={
        "landing": LandingResource(uri=_setting(LANDING_URI_ENV, DEFAULT_LANDING_URI)),
        "lake": DeltaMergeResource(lake_uri=_setting(LAKE_URI_ENV, DEFAULT_LAKE_URI)),
    },
)
