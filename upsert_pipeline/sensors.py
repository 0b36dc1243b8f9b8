"""The landing sensor of a feed: a run for the partitions whose landing files appeared or changed.

Each tick lists the feed's landing folder once (``LandingResource.scan``), groups the files by the
partition their path names, and compares each partition's fingerprint (its files' paths, sizes and
modification times; an object store's LastModified) with the one kept in the cursor. Partitions
that are new or changed are requested; adjacent ones as one ranged run (the asset's
``BackfillPolicy.single_run`` runs a range in one process, each partition its own commit), so many
arrivals in one tick start one run. The run key holds the files' fingerprint: the same files are
never run twice, and a re-delivery (new size or modification time) runs its partition again.
Files of a partition that does not exist yet (today's, for a daily feed) wait until it does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo
from collections import defaultdict
from collections.abc import Mapping

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from upsert_pipeline.feeds import Feed
from upsert_pipeline.landing import LandingFile
from upsert_pipeline.landing.fingerprints import changed, fingerprint
from upsert_pipeline.partitions import feed_partitions
from upsert_pipeline.resources import LandingResource


def landing_sensor_name(feed: Feed) -> str:
    """``<feed>_landing``."""
    return f"{feed.name}_landing"


def partition_key_of(feed: Feed, fields: Mapping[str, str]) -> str | None:
    """The partition a landing path's placeholder values name, or ``None`` when it names none of
    the feed's partitions (before its start, not yet ended, or not a date)."""
    definition = feed_partitions(feed.partitions)
    if fields.get("key"):
        key = fields["key"]
    else:
        try:
            if fields.get("date"):
                day = dt.date.fromisoformat(fields["date"])
            else:
                year, month = int(fields["year"]), int(fields["month"])
                day = dt.date(year, month, int(fields.get("day") or 1))
            start = dt.datetime.combine(day, dt.time(int(fields.get("hour") or 0)))
        except (KeyError, ValueError):
            return None
        zone = zoneinfo.ZoneInfo(feed.partitions.timezone)
        key = definition.get_partition_key_for_timestamp(start.replace(tzinfo=zone).timestamp())
    return key if definition.has_partition_key(key) else None


def _ranges(feed: Feed, keys: list[str]) -> list[tuple[str, str]]:
    """``keys`` (sorted) as runs of adjacent partitions: ``[(first, last), ...]``."""
    definition = feed_partitions(feed.partitions)
    ranges: list[tuple[str, str]] = []
    for key in keys:
        if ranges and definition.get_next_partition_key(ranges[-1][1]) == key:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges


def landing_fingerprints(feed: Feed, landing: LandingResource) -> dict[str, str]:
    """Each existing partition's fingerprint, from one listing of the feed's landing folder."""
    files: dict[str, list[LandingFile]] = defaultdict(list)
    for landed in landing.scan(feed):
        if (key := partition_key_of(feed, landed.fields)) is not None:
            files[key].append(landed.file)
    return {key: fingerprint(found) for key, found in files.items()}


def build_landing_sensor(
    feed: Feed,
    job: dg.UnresolvedAssetJobDefinition,
    *,
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """The sensor ``<feed>_landing`` that runs ``job`` for partitions whose files arrived."""

    @dg.sensor(
        name=landing_sensor_name(feed),
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Runs {feed.name} for each partition whose landing files appeared or changed "
            "(path, size, modification time); adjacent partitions as one ranged run."
        ),
    )
    def _landing_sensor(
        context: dg.SensorEvaluationContext, landing: LandingResource
    ) -> dg.SensorResult:
        previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        current = landing_fingerprints(feed, landing)
        requests = []
        for first, last in _ranges(feed, changed(previous, current)):
            digest = hashlib.sha256()
            key = first
            while True:
                digest.update(f"{key}={current.get(key)}\n".encode())
                if key == last:
                    break
                key = feed_partitions(feed.partitions).get_next_partition_key(key) or last
            run_key = f"{feed.name}:{first}..{last}:{digest.hexdigest()[:16]}"
            if first == last:
                requests.append(dg.RunRequest(run_key=run_key, partition_key=first))
            else:
                requests.append(
                    dg.RunRequest(
                        run_key=run_key,
                        tags={
                            ASSET_PARTITION_RANGE_START_TAG: first,
                            ASSET_PARTITION_RANGE_END_TAG: last,
                        },
                    )
                )
        if requests:
            context.log.info(
                f"{feed.name}: {len(requests)} run(s) for "
                + ", ".join(r.run_key.split(":")[1] for r in requests if r.run_key)
            )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

    return _landing_sensor
