"""The quarantine table of a feed: rows failing a ``quarantine`` expectation, beside its table."""

from __future__ import annotations

import pyarrow as pa

from upsert_pipeline.delta import UpsertResult
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER
from upsert_pipeline.feeds import Feed
from upsert_pipeline.partitions import partition_scope
from upsert_pipeline.quality import QualityOutcome
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
    id, into the feed's quarantine table (partitioned like the feed); ``None`` when there are
    none. Counted like every load, from its own commit: a re-run of the partition updates the
    rows it quarantined before (their run id) instead of adding them twice.
    """
    rows = quality.quarantined
    if not rows.num_rows:
        return None
    rows = rows.append_column(
        pa.field(RUN_ID_COLUMN, pa.string(), nullable=False),
        pa.array([run_id] * rows.num_rows, pa.string()),
    )
    return lake.upsert(
        quarantine_table(feed),
        rows,
        keys=(*feed.keys, RULE_COLUMN),
        partition=partition_scope(feed.partition_column, partition_key),
        commit_metadata={
            "dagster.run_id": run_id,
            PIPELINE_MARKER: quarantine_table(feed),
            PARTITION_MARKER: partition_key,
        },
        evolve_schema=True,
    )
