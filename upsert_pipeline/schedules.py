"""The job that ingests a day of every feed, and its daily schedule."""

import dagster as dg

from upsert_pipeline.assets import customers, orders
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
