"""Opening a Delta table, creating it on first write even when several writers race to create it."""

from __future__ import annotations

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import TableNotFoundError

from upsert_pipeline.delta.retry import is_commit_conflict
from upsert_pipeline.delta.stores import ensure_safe_commits
from upsert_pipeline.delta.validation import storage_schema

_CREATE_ATTEMPTS = 5


def open_or_create(
    table_uri: str,
    schema: pa.Schema,
    partition_by: list[str],
    storage_options: dict[str, str] | None,
) -> DeltaTable:
    """Loads the table, creating it empty (version 0) on first write.

    ``DeltaTable.create(mode="ignore")`` only checks for an existing table before it commits, so
    writers that all find none all commit a creation. Under real races (8 processes, delta-rs
    1.6.6) the losers either fail (``CommitFailedError: ... Protocol changed``) or, worse, have
    delta-rs's commit retry move their ``CREATE TABLE`` past the winner's: a second and third
    protocol-and-metadata commit at versions 1 and 2, with a new table id (12 of 15 raced tables).
    ``mode="error"`` and ``write_deltalake`` do the same. With ``max_commit_retries=0`` a creation
    that is not version 0 fails instead of being moved, so exactly one ``CREATE TABLE`` lands; the
    losers' failure means the table now exists, and it is opened.

    On an object store, the store's conditional PUT is probed first (once per process and
    bucket, see ``stores.ensure_safe_commits``), so no commit is ever made where a concurrent one
    could be lost.

    Raises:
        UnsafeObjectStoreError: The object store does not refuse a second create of a key.
        CommitFailedError: Creation kept failing with the table still absent (not a race).
    """
    ensure_safe_commits(table_uri, storage_options)
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            return DeltaTable(table_uri, storage_options=storage_options)
        except TableNotFoundError:
            pass
        try:
            return DeltaTable.create(
                table_uri,
                storage_schema(schema),
                partition_by=partition_by or None,
                mode="ignore",
                storage_options=storage_options,
                commit_properties=CommitProperties(max_commit_retries=0),
            )
        except Exception as error:
            if not is_commit_conflict(error) or attempt == _CREATE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
