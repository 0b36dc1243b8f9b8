"""Turning an ``UpsertResult`` into materialization metadata the Dagster UI shows and plots."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

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
        "upsert/source_rows": dg.MetadataValue.int(result.source_rows),
        "upsert/rows_inserted": dg.MetadataValue.int(result.inserted),
        "upsert/rows_updated": dg.MetadataValue.int(result.updated),
        "upsert/rows_deleted": dg.MetadataValue.int(result.deleted),
        "upsert/rows_unchanged": dg.MetadataValue.int(result.unchanged),
        "upsert/rows_copied": dg.MetadataValue.int(result.copied),
        "delta/version": dg.MetadataValue.int(result.version),
        "delta/read_version": dg.MetadataValue.int(result.read_version),
        "delta/files_added": dg.MetadataValue.int(result.files_added),
        "delta/files_removed": dg.MetadataValue.int(result.files_removed),
        "delta/files_scanned": dg.MetadataValue.int(result.files_scanned),
        "delta/files_skipped": dg.MetadataValue.int(result.files_skipped),
        "delta/files_without_stats": dg.MetadataValue.int(result.after.files_without_stats),
        "delta/merge_ms": dg.MetadataValue.int(result.execution_time_ms),
        "delta/commit_attempts": dg.MetadataValue.int(result.commit_attempts),
        "delta/columns_added": dg.MetadataValue.json(list(result.columns_added)),
        "delta/columns_filled": dg.MetadataValue.json(list(result.columns_filled)),
        "upsert/tombstones": dg.MetadataValue.int(result.tombstones),
        "upsert/snapshot": dg.MetadataValue.bool(result.snapshot),
        "dagster/uri": dg.MetadataValue.path(result.table_uri),
        "dagster/table_name": dg.MetadataValue.text(table_name),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            column_schema(result.schema if result.schema is not None else schema)
        ),
    }
    if result.table_rows is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(result.table_rows)
    if result.partition is not None:
        if result.partition_rows is not None:
            metadata["dagster/partition_row_count"] = dg.MetadataValue.int(result.partition_rows)
        if result.before.partition_rows is not None:
            metadata["upsert/partition_rows_before"] = dg.MetadataValue.int(
                result.before.partition_rows
            )
    return metadata
