"""Dagster resources: where batches land and the Delta lake they are merged into."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import pyarrow as pa
from pydantic import Field

from upsert_pipeline.delta import (
    Batch,
    DisallowedUriError,
    PartitionValue,
    RetryPolicy,
    RowCounts,
    UpsertError,
    UpsertResult,
    UriPolicy,
    app_id_for,
    read_partition_row_counts,
    upsert,
)
from upsert_pipeline.delta.predicates import check_identifier
from upsert_pipeline.delta.storage import storage_options_for
from upsert_pipeline.delta.stores import SINGLE_WRITER_OPTION
from upsert_pipeline.delta.uris import DEFAULT_SCHEMES
from upsert_pipeline.feeds import Feed
from upsert_pipeline.landing import InvalidPartitionKeyError, LandingFile, read_partition
from upsert_pipeline.landing.fingerprints import LandedFile, scan
from upsert_pipeline.landing.reading import list_partition_files
from upsert_pipeline.partitions import partition_start

PROJECT_DIR = Path(__file__).resolve().parent.parent
LAKE_URI_ENV = "UPSERT_PIPELINE_LAKE_URI"
LANDING_URI_ENV = "UPSERT_PIPELINE_LANDING_URI"
DEFAULT_LAKE_URI = str(PROJECT_DIR / "data" / "lake")
DEFAULT_LANDING_URI = str(PROJECT_DIR / "data" / "landing")
ALLOWED_SCHEMES = sorted(DEFAULT_SCHEMES)


def _allowed_schemes() -> list[str]:
    return list(ALLOWED_SCHEMES)


class _AllowListedResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A resource whose URIs are held to an allow-list of schemes and roots, and that reaches an
    object store with options resolved from the store's standard environment and its config."""

    allowed_schemes: list[str] = Field(
        default_factory=_allowed_schemes,
        description="URI schemes allowed ('file' covers plain paths).",
    )
    allowed_roots: list[str] = Field(
        default_factory=list,
        description="Roots every URI must lie under; empty allows any root.",
    )

    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Object-store options in delta-rs's keys (e.g. AWS_ENDPOINT_URL), over the "
        "store's standard environment variables (AWS_*, GOOGLE_*, AZURE_STORAGE_*). Give "
        "secrets as dg.EnvVar in code, never as literals in run config.",
    )

    def uri_policy(self) -> UriPolicy:
        """The allow-list this resource's URIs are held to."""
        return UriPolicy.of(schemes=self.allowed_schemes, roots=self.allowed_roots)

    def resolved_storage_options(self, uri: str) -> dict[str, str]:
        """The options of ``uri``'s store: its standard variables, then this resource's config.

        The one mapping both the Delta writer (``storage_options``) and the landing reader (a
        pyarrow filesystem) are built from; see ``upsert_pipeline.delta.storage``.
        """
        return storage_options_for(uri, overrides=self.storage_options)


class LandingResource(_AllowListedResource):
    """The folder (or object-store prefix) where each feed's partitions land, laid out as each
    feed's ``landing:`` says (by default ``<uri>/<feed>/<YYYY-MM-DD>.parquet``)."""

    uri: str = Field(description="Landing root; each feed's landing.path lies under it.")

    def path(self, feed: Feed, partition_key: str) -> str:
        """The glob of ``feed``'s landing files of one partition (a file path by default).

        Raises:
            InvalidPartitionKeyError: The key is not one of the feed's partitions.
        """
        root = self.uri_policy().check(self.uri, what="landing")
        glob = feed.layout.partition_glob(_start(feed, partition_key), partition_key)
        return f"{root.rstrip('/')}/{glob}"

    def files(self, feed: Feed, partition_key: str) -> list[LandingFile]:
        """The landing files of one partition of ``feed`` (possibly none)."""
        self.uri_policy().check(self.uri, what="landing")
        return list_partition_files(
            self.uri,
            feed.layout,
            _start(feed, partition_key),
            partition_key,
            storage_options=self.resolved_storage_options(self.uri),
        )

    def scan(self, feed: Feed) -> list[LandedFile]:
        """Every landing file of every partition of ``feed``, from one listing."""
        self.uri_policy().check(self.uri, what="landing")
        return scan(self.uri, feed.layout, storage_options=self.resolved_storage_options(self.uri))

    def read_batch(
        self, feed: Feed, partition_key: str, *, files: Sequence[LandingFile] | None = None
    ) -> pa.Table:
        """Reads and validates every landing file of one partition of ``feed`` (``files``, when
        the caller listed them with ``files``); see ``upsert_pipeline.landing.read_partition``."""
        return read_partition(
            self.uri,
            feed.layout,
            feed_name=feed.name,
            partition_key=partition_key,
            start=_start(feed, partition_key),
            schema=feed.schema,
            keys=feed.keys,
            evolve=feed.evolve_schema,
            uri_policy=self.uri_policy(),
            storage_options=self.resolved_storage_options(self.uri),
            files=files,
        )


def _start(feed: Feed, partition_key: str) -> dt.datetime:
    """The start of ``feed``'s partition ``partition_key``.

    Raises:
        InvalidPartitionKeyError: The key is none of the feed's partitions (``../``, a typo).
    """
    try:
        return partition_start(feed, partition_key)
    except Exception as error:  # Dagster raises several types for a malformed key
        raise InvalidPartitionKeyError(
            f"{feed.name}: partition key {partition_key!r} is not one of its "
            f"{feed.partitions.cadence} partitions"
        ) from error


class DeltaMergeResource(_AllowListedResource):
    """Merges batches into the lake's Delta tables and reads their row counts from the log."""

    lake_uri: str = Field(description="Lake root: each feed's Delta table is <lake_uri>/<feed>.")
    single_writer: bool = Field(
        default=False,
        description="Skip the probe of the object store's conditional PUT: only when exactly one "
        "process ever writes each table (a store that ignores If-None-Match loses concurrent "
        "commits). UPSERT_PIPELINE_SINGLE_WRITER=true does the same.",
    )
    max_commit_attempts: int = Field(
        default=RetryPolicy().max_attempts,
        description="Times a merge is run when its commit conflicts with a concurrent one.",
    )
    max_backoff_s: float = Field(
        default=RetryPolicy().max_backoff_s,
        description="Cap, in seconds, of the jittered wait between conflicting attempts.",
    )
    idempotent: bool = Field(
        default=True,
        description="Record each commit's partition as a Delta application transaction "
        "(lineage; concurrent merges of one partition then conflict and are retried). It never "
        "skips a batch: a re-run always merges and converges the partition to its batch.",
    )

    def retry_policy(self) -> RetryPolicy:
        """How conflicting merges are retried."""
        return RetryPolicy(
            max_attempts=self.max_commit_attempts,
            initial_backoff_s=min(RetryPolicy().initial_backoff_s, self.max_backoff_s),
            max_backoff_s=self.max_backoff_s,
        )

    def table_uri(self, table: str) -> str:
        """The URI of one table of the lake.

        Raises:
            DisallowedUriError: ``table`` is not a plain name, or the lake is not allowed.
        """
        try:
            check_identifier(table)
        except UpsertError as error:
            raise DisallowedUriError(f"table name {table!r} is not a plain name") from error
        uri = f"{self.lake_uri.rstrip('/')}/{table}"
        return self.uri_policy().check(uri, what="table")

    def delta_storage_options(self) -> dict[str, str] | None:
        """The lake's object-store options as delta-rs takes them (``None`` when there are none)."""
        options = self.resolved_storage_options(self.lake_uri)
        if self.single_writer:
            options[SINGLE_WRITER_OPTION] = "true"
        return options or None

    def upsert(
        self,
        table: str,
        batch: Batch,
        *,
        keys: tuple[str, ...],
        partition: Mapping[str, PartitionValue] | None = None,
        commit_metadata: Mapping[str, str] | None = None,
        snapshot: bool = False,
        allow_empty_snapshot: bool = False,
        evolve_schema: bool = False,
        required_columns: Sequence[str] | None = None,
        profile: bool = False,
    ) -> UpsertResult:
        """Upserts ``batch`` into ``table``; see ``upsert_pipeline.delta.upsert``.

        The merge scope's application id is ``app_id_for(table, partition)``, e.g.
        ``upsert_pipeline:orders:order_date=2026-11-02``; a conflicting commit is retried per
        ``retry_policy()`` and the result says how many attempts it took.
        """
        return upsert(
            self.table_uri(table),
            batch,
            keys=keys,
            partition=partition,
            storage_options=self.delta_storage_options(),
            commit_metadata=commit_metadata,
            retry=self.retry_policy(),
            idempotent=self.idempotent,
            app_id=app_id_for(table, partition),
            uri_policy=self.uri_policy(),
            snapshot=snapshot,
            allow_empty_snapshot=allow_empty_snapshot,
            evolve_schema=evolve_schema,
            required_columns=required_columns,
            profile=profile,
        )

    def partition_row_counts(
        self, table: str, partitions: Sequence[Mapping[str, PartitionValue] | None]
    ) -> list[RowCounts]:
        """The table's row counts and each of ``partitions``' (``None``: the table alone), in
        order, from one load of the Delta log; never from a data file."""
        return read_partition_row_counts(
            self.table_uri(table), partitions, storage_options=self.delta_storage_options()
        )
