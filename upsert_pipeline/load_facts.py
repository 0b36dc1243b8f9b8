"""What a step records about one partition's load beyond its counts, read after the merge: the
profile of the committed snapshot, the expectations' counts, the schema change and the cost."""

from __future__ import annotations

import dagster as dg

from upsert_pipeline.cost import Stopwatch, cost_metadata
from upsert_pipeline.delta import UpsertResult
from upsert_pipeline.delta.commit_files import read_commit_files
from upsert_pipeline.delta.profile import read_profiles
from upsert_pipeline.feeds import Feed
from upsert_pipeline.load_metadata import profile_metadata, quality_metadata, schema_metadata
from upsert_pipeline.quality import QualityOutcome
from upsert_pipeline.resources import DeltaMergeResource


def load_facts(
    lake: DeltaMergeResource,
    feed: Feed,
    result: UpsertResult,
    quality: QualityOutcome,
    quarantined: UpsertResult | None,
) -> dict[str, dg.MetadataValue]:
    """The profile of the version the merge committed (the partition's and the table's, from
    its add actions: the result's when the upsert profiled, else read at that version), the
    expectations' counts and the schema change, as metadata."""
    scope = result.partition
    profiles = list(result.profiles) or read_profiles(
        lake.table_uri(feed.name),
        [scope, None] if scope else [None],
        version=result.version,
        storage_options=lake.delta_storage_options(),
    )
    return {
        **profile_metadata(profiles[0], profiles[1] if scope else None, columns=feed.schema.names),
        **quality_metadata(quality, quarantined),
        **schema_metadata(result),
    }


def load_cost(
    lake: DeltaMergeResource,
    feed: Feed,
    watch: Stopwatch,
    result: UpsertResult,
    *,
    landing_bytes: int,
) -> dict[str, dg.MetadataValue]:
    """The cost of the load: phase times, the landing bytes read, the commit's files and bytes
    (from its commit file, when the merge wrote a version), peak memory."""
    files = (
        read_commit_files(
            lake.table_uri(feed.name),
            result.version,
            storage_options=lake.delta_storage_options(),
        )
        if result.committed
        else None
    )
    return cost_metadata(watch, result, files, landing_bytes=landing_bytes)
