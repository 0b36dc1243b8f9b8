"""Turning an ``UpsertResult`` into materialization metadata the Dagster UI shows and plots."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.delta import UpsertResult


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The Arrow schema as Dagster's ``dagster/column_schema``."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=str(field.type),
                constraints=dg.TableColumnConstraints(nullable=field.nullable),
            )
            for field in schema
        ]
    )


def upsert_metadata(
    result: UpsertResult, *, table_name: str, schema: pa.Schema
) -> dict[str, dg.MetadataValue]:
    """Every count of the upsert as an integer (plottable across partitions), plus lineage.

    A row count the log cannot give (a data file without ``numRecords``) is left out rather than
    guessed; ``delta/files_without_stats`` then says how many files lack the stat. The column
    schema is the table's after the merge (``schema`` when the result does not carry it), so
    columns added by schema evolution show up.
    """
    metadata: dict[str, dg.MetadataValue] = {
        keys.SOURCE_ROWS: dg.MetadataValue.int(result.source_rows),
        keys.ROWS_INSERTED: dg.MetadataValue.int(result.inserted),
        keys.ROWS_UPDATED: dg.MetadataValue.int(result.updated),
        keys.ROWS_DELETED: dg.MetadataValue.int(result.deleted),
        keys.ROWS_UNCHANGED: dg.MetadataValue.int(result.unchanged),
        keys.ROWS_COPIED: dg.MetadataValue.int(result.copied),
        keys.VERSION: dg.MetadataValue.int(result.version),
        keys.READ_VERSION: dg.MetadataValue.int(result.read_version),
        keys.FILES_ADDED: dg.MetadataValue.int(result.files_added),
        keys.FILES_REMOVED: dg.MetadataValue.int(result.files_removed),
        keys.FILES_SCANNED: dg.MetadataValue.int(result.files_scanned),
        keys.FILES_SKIPPED: dg.MetadataValue.int(result.files_skipped),
        keys.FILES_WITHOUT_STATS: dg.MetadataValue.int(result.after.files_without_stats),
        keys.MERGE_MS: dg.MetadataValue.int(result.execution_time_ms),
        keys.COMMIT_ATTEMPTS: dg.MetadataValue.int(result.commit_attempts),
        keys.COLUMNS_ADDED: dg.MetadataValue.json(list(result.columns_added)),
        keys.COLUMNS_FILLED: dg.MetadataValue.json(list(result.columns_filled)),
        keys.TOMBSTONES: dg.MetadataValue.int(result.tombstones),
        keys.SNAPSHOT: dg.MetadataValue.bool(result.snapshot),
        keys.URI: dg.MetadataValue.path(result.table_uri),
        keys.TABLE_NAME: dg.MetadataValue.text(table_name),
        keys.COLUMN_SCHEMA: dg.MetadataValue.table_schema(
            column_schema(result.schema if result.schema is not None else schema)
        ),
    }
    if result.table_rows is not None:
        metadata[keys.ROW_COUNT] = dg.MetadataValue.int(result.table_rows)
    if result.partition is not None:
        if result.partition_rows is not None:
            metadata[keys.PARTITION_ROW_COUNT] = dg.MetadataValue.int(result.partition_rows)
        if result.before.partition_rows is not None:
            metadata[keys.PARTITION_ROWS_BEFORE] = dg.MetadataValue.int(
                result.before.partition_rows
            )
    return metadata
