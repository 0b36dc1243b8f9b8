"""Each feed's partitions, built from its YAML (``partitions: {start, cadence, timezone}``)."""

import datetime as dt
import functools
import zoneinfo

import dagster as dg
import pyarrow as pa

from upsert_pipeline.delta import PartitionValue
from upsert_pipeline.feeds import DEFAULT_PARTITIONING, Feed, Partitioning

_FMT_DAY = "%Y-%m-%d"


@functools.cache
def feed_partitions(partitioning: Partitioning) -> dg.TimeWindowPartitionsDefinition:
    """The Dagster partitions of a feed's ``Partitioning`` (one object per distinct spec, so
    feeds that declare the same partitions share one definition and can run in one job)."""
    start, zone = partitioning.start, partitioning.timezone
    if partitioning.cadence == "hourly":
        return dg.HourlyPartitionsDefinition(start_date=start, timezone=zone)
    if partitioning.cadence == "weekly":
        return dg.WeeklyPartitionsDefinition(start_date=start.strftime(_FMT_DAY), timezone=zone)
    if partitioning.cadence == "monthly":
        return dg.MonthlyPartitionsDefinition(start_date=start.strftime(_FMT_DAY), timezone=zone)
    return dg.DailyPartitionsDefinition(start_date=start.strftime(_FMT_DAY), timezone=zone)


daily_partitions = feed_partitions(DEFAULT_PARTITIONING)
"""The partitions of every feed that declares none: daily, UTC, from ``feeds.DEFAULT_START``.
The jobs over every feed (``ingest_daily``, ``check_lake``) run on these."""


def partition_window_start(feed: Feed, partition_key: str) -> dt.datetime:
    """The start of a feed's partition, timezone-aware (the second 02:00 of an autumn night is
    its own instant, keyed ``2026-10-25-02:00+0100`` by Dagster).

    Raises:
        ValueError: The key is not spelled as the feed's partitions' keys are.
    """
    definition = feed_partitions(feed.partitions)
    start = definition.time_window_for_partition_key(partition_key).start
    spellings = (start.strftime(definition.fmt), start.strftime(definition.fmt + "%z"))
    if partition_key not in spellings:  # strptime takes "2026-1-2"
        raise ValueError(f"{partition_key!r} is not a partition key of {feed.name}")
    return start


def partition_start(feed: Feed, partition_key: str) -> dt.datetime:
    """The wall-clock start (in the feed's timezone, naive) of a feed's partition.

    Raises:
        ValueError: The key is not spelled as the feed's partitions' keys are.
    """
    return partition_window_start(feed, partition_key).replace(tzinfo=None)


def start_value(feed: Feed, start: dt.datetime) -> PartitionValue:
    """A partition's start as its partition column holds it: the instant in UTC for a timestamp
    column (timezone-aware for ``timestamp[us, tz=UTC]``, as Delta Lake stores such partition
    values; naive for ``timestamp[us]``, since wall-clock hours repeat when the clocks go back),
    else the date. ``start`` is timezone-aware, or naive wall-clock time in the feed's zone."""
    kind = feed.schema.field(feed.partition_column).type if feed.partition_column else None
    if kind is not None and pa.types.is_timestamp(kind):
        if start.tzinfo is None:
            start = start.replace(tzinfo=zoneinfo.ZoneInfo(feed.partitions.timezone))
        instant = start.astimezone(dt.UTC)
        return instant if kind.tz is not None else instant.replace(tzinfo=None)
    return start.date()


def partition_scope(feed: Feed, partition_key: str) -> dict[str, PartitionValue] | None:
    """The ``{column: start}`` of a feed's table that a partition key stands for (what its
    merge is scoped to and its counts are read for), or ``None`` for an unpartitioned table.
    The start is a date, or for an hourly feed's timestamp column the hour's start
    (``start_value``)."""
    if feed.partition_column is None:
        return None
    return {feed.partition_column: start_value(feed, partition_window_start(feed, partition_key))}
