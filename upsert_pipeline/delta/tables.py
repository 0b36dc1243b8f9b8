"""Opening a Delta table, creating it on first write even when several writers race to create it."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from upsert_pipeline.delta.retry import is_commit_conflict
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
    two writers that both find none both try to write version 0; the loser's commit fails
    (``CommitFailedError: ... Protocol changed`` in delta-rs 1.6, seen under real races). That
    failure means the table now exists: it is opened, not created again.

    Raises:
        CommitFailedError: Creation kept failing with the table still absent (not a race).
    """
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
            )
        except Exception as error:
            if not is_commit_conflict(error) or attempt == _CREATE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
