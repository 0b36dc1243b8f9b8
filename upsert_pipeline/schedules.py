"""Jobs and their schedules: daily ingestion, the standalone checks, and freshness."""

import dagster as dg

from upsert_pipeline.assets import customers, freshness_checks, lake_checks, orders
from upsert_pipeline.partitions import daily_partitions

ingest_job = dg.define_asset_job(
    "ingest_daily",
    selection=[orders, customers],
    partitions_def=daily_partitions,
    description="Upserts one day's landing batches of every feed into the lake.",
)

ingest_schedule = dg.build_schedule_from_partitioned_job(
    ingest_job, hour_of_day=1, default_status=dg.DefaultScheduleStatus.STOPPED
)

check_job = dg.define_asset_job(
    "check_lake",
    selection=dg.AssetSelection.checks(*lake_checks),
    partitions_def=daily_partitions,
    description="Evaluates the standalone checks of one day's partition, without materializing.",
)

freshness_job = dg.define_asset_job(
    "check_freshness",
    selection=dg.AssetSelection.checks(*freshness_checks),
    description="Evaluates whether each feed's latest due partition was materialized in time.",
)

freshness_schedule = dg.ScheduleDefinition(
    job=freshness_job,
    cron_schedule="15 9 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
