"""Dagster resources: where batches land and the Delta lake they are merged into."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pyarrow as pa
from pydantic import Field

from upsert_pipeline.delta import (
    Batch,
    PartitionValue,
    RowCounts,
    UpsertResult,
    read_row_counts,
    upsert,
)
from upsert_pipeline.feeds import Feed
from upsert_pipeline.sources import landing_path, read_landing_batch

PROJECT_DIR = Path(__file__).resolve().parent.parent
LAKE_URI_ENV = "UPSERT_PIPELINE_LAKE_URI"
LANDING_URI_ENV = "UPSERT_PIPELINE_LANDING_URI"
DEFAULT_LAKE_URI = str(PROJECT_DIR / "data" / "lake")
DEFAULT_LANDING_URI = str(PROJECT_DIR / "data" / "landing")


class LandingResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The folder (or object-store prefix) where each feed's daily parquet batches land."""

    uri: str = Field(description="Landing root: <uri>/<feed>/<YYYY-MM-DD>.parquet.")

    def path(self, feed: Feed, partition_key: str) -> str:
        """The landing file of ``feed`` for one day."""
        return landing_path(self.uri, feed, partition_key)

    def read_batch(self, feed: Feed, partition_key: str) -> pa.Table:
        """Reads and validates the day's batch of ``feed``; see ``read_landing_batch``."""
        return read_landing_batch(self.uri, feed, partition_key)


class DeltaMergeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Merges batches into the lake's Delta tables and reads their row counts from the log."""

    lake_uri: str = Field(description="Lake root: each feed's Delta table is <lake_uri>/<feed>.")
    storage_options: dict[str, str] = Field(
        default_factory=dict, description="Object-store options passed to delta-rs."
    )

    def table_uri(self, table: str) -> str:
        """The URI of one table of the lake."""
        return f"{self.lake_uri.rstrip('/')}/{table}"

    def upsert(
        self,
        table: str,
        batch: Batch,
        *,
        keys: tuple[str, ...],
        partition: Mapping[str, PartitionValue] | None = None,
        commit_metadata: Mapping[str, str] | None = None,
    ) -> UpsertResult:
        """Upserts ``batch`` into ``table``; see ``upsert_pipeline.delta.upsert``."""
        return upsert(
            self.table_uri(table),
            batch,
            keys=keys,
            partition=partition,
            storage_options=self.storage_options or None,
            commit_metadata=commit_metadata,
        )

    def row_counts(
        self, table: str, *, partition: Mapping[str, PartitionValue] | None = None
    ) -> RowCounts:
        """The table's (and a partition's) row counts, from the Delta log alone."""
        return read_row_counts(
            self.table_uri(table), partition=partition, storage_options=self.storage_options or None
        )
