"""The partitions every asset of the code location shares: one per day of landed data."""

import datetime as dt

import dagster as dg

from upsert_pipeline.delta import PartitionValue

START_DATE = "2026-11-01"
"""The first day with a landing batch."""

daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE)


def partition_day(partition_key: str) -> dt.date:
    """The day a partition key (``2026-11-02``) stands for."""
    return daily_partitions.time_window_for_partition_key(partition_key).start.date()


def partition_scope(
    partition_column: str | None, partition_key: str
) -> dict[str, PartitionValue] | None:
    """The ``{column: day}`` of a feed's table that a partition key stands for (what its merge is
    scoped to and its counts are read for), or ``None`` for an unpartitioned table."""
    return {partition_column: partition_day(partition_key)} if partition_column else None
