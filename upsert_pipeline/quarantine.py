"""The quarantine table of a feed: rows failing a ``quarantine`` expectation, beside its table."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from upsert_pipeline.delta import UpsertResult
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER, RUN_MARKER
from upsert_pipeline.feeds import Feed
from upsert_pipeline.partitions import partition_scope
from upsert_pipeline.quality import OnFail, QualityOutcome
from upsert_pipeline.quality.expectations import RULE_COLUMN
from upsert_pipeline.resources import DeltaMergeResource

RUN_ID_COLUMN = "_run_id"
"""The run that quarantined a row."""


def quarantine_table(feed: Feed) -> str:
    """``<feed>__quarantine``: the lake table beside the feed's."""
    return f"{feed.name}__quarantine"


def write_quarantine(
    lake: DeltaMergeResource,
    feed: Feed,
    quality: QualityOutcome,
    *,
    partition_key: str,
    run_id: str,
) -> UpsertResult | None:
    """Upserts the quarantined rows, keyed by the feed's keys and the rule's name, with the run
    id, into the feed's quarantine table (partitioned like the feed); ``None`` when nothing was
    written. Counted like every load, from its own commit.

    For a partitioned feed the partition's quarantine is loaded as a snapshot: afterwards it
    holds exactly the rows the partition's latest batch failed. A re-run updates the rows it
    quarantined before (their run id) instead of adding them twice, and a corrected re-delivery
    deletes the rows it no longer fails. An unpartitioned feed's quarantine only gains and
    updates rows.
    """
    if not any(e.on_fail is OnFail.QUARANTINE for e in feed.expectations):
        return None
    partition = partition_scope(feed, partition_key)
    rows = quality.quarantined
    name = quarantine_table(feed)
    if not rows.num_rows and (
        partition is None
        or not DeltaTable.is_deltatable(
            lake.table_uri(name), storage_options=lake.delta_storage_options()
        )
    ):
        return None
    rows = rows.append_column(
        pa.field(RUN_ID_COLUMN, pa.string()),
        pa.array([run_id] * rows.num_rows, pa.string()),
    )
    return lake.upsert(
        name,
        rows,
        keys=(*feed.keys, RULE_COLUMN),
        partition=partition,
        commit_metadata={
            RUN_MARKER: run_id,
            PIPELINE_MARKER: name,
            PARTITION_MARKER: partition_key,
        },
        snapshot=partition is not None,
        allow_empty_snapshot=True,
        evolve_schema=True,
    )
