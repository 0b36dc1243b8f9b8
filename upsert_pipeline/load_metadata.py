"""Materialization metadata beyond counts: the column profile, the expectations' counts, the schema
change and the quarantine write, as values the Dagster UI shows (tables) and plots (numbers)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import dagster as dg
import pyarrow as pa

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.delta import UpsertResult
from upsert_pipeline.delta.profile import Exactness, Profile
from upsert_pipeline.delta.schema_changes import SchemaChanges, schema_changes
from upsert_pipeline.metadata import column_schema
from upsert_pipeline.quality import QualityOutcome

_PROFILE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("column", "string"),
        dg.TableColumn("null_count", "int", description="An upper bound where nulls = bound."),
        dg.TableColumn("nulls", "string", description="exact | bound | unknown"),
        dg.TableColumn("min", "string", description="A lower bound where min_max = bound."),
        dg.TableColumn("max", "string", description="An upper bound where min_max = bound."),
        dg.TableColumn("min_max", "string", description="exact | bound | unknown"),
        dg.TableColumn("null_fraction", "float", description="Only where nulls = exact."),
        dg.TableColumn("reason", "string", description="Why a figure is a bound or unknown."),
    ]
)

_RULES_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("rule", "string"),
        dg.TableColumn("expression", "string"),
        dg.TableColumn("on_fail", "string"),
        dg.TableColumn("passing", "int", description="True or NULL (a NULL passes, as in CHECK)."),
        dg.TableColumn("failing", "int"),
        dg.TableColumn("null", "int", description="Rows where the rule is NULL."),
        dg.TableColumn("failing_fraction", "float"),
        dg.TableColumn("tolerance", "float"),
    ]
)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def profile_table(profile: Profile) -> dg.TableMetadataValue:
    """One row per column of ``profile``."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "column": column.column,
                    "null_count": column.null_count,
                    "nulls": column.nulls.value,
                    "min": _text(column.min),
                    "max": _text(column.max),
                    "min_max": column.min_max.value,
                    "null_fraction": column.null_fraction,
                    "reason": column.reason,
                }
            )
            for column in profile.columns
        ],
        schema=_PROFILE_SCHEMA,
    )


_PARTITION_PROFILE_SCHEMA = dg.TableSchema(
    columns=[dg.TableColumn("partition", "string"), *_PROFILE_SCHEMA.columns]
)


def partition_profiles_table(profiles: Sequence[Profile]) -> dg.TableMetadataValue:
    """One row per (partition, column) of several partitions' profiles."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"partition": profile.scope, **record.data})
            for profile in profiles
            for record in profile_table(profile).records
        ],
        schema=_PARTITION_PROFILE_SCHEMA,
    )


def profile_metadata(
    scope: Profile, table: Profile | None = None, *, columns: Collection[str] | None = None
) -> dict[str, dg.MetadataValue]:
    """The profile of the materialized scope (its partition, or the table) as a table, the
    whole table's too when given, and each of ``columns``' (every column's when ``None``) exact
    null count and fraction as plottable numbers. A bound or unknown figure is left out of the
    numbers (the table says why).
    """
    metadata: dict[str, dg.MetadataValue] = {
        keys.PROFILE: profile_table(scope),
        keys.PROFILE_FILES_WITHOUT_STATS: dg.MetadataValue.int(len(scope.files_without_stats)),
        keys.PROFILE_FILES_WITH_DELETION_VECTORS: dg.MetadataValue.int(
            len(scope.files_with_deletion_vectors)
        ),
    }
    if table is not None:
        metadata[keys.TABLE_PROFILE] = profile_table(table)
    for column in scope.columns:
        if columns is not None and column.column not in columns:
            continue
        if column.nulls is not Exactness.EXACT:
            continue
        if column.null_count is not None:
            metadata[keys.PROFILE_NULL_COUNT.format(column=column.column)] = dg.MetadataValue.int(
                column.null_count
            )
        if column.null_fraction is not None:
            metadata[keys.PROFILE_NULL_FRACTION.format(column=column.column)] = (
                dg.MetadataValue.float(column.null_fraction)
            )
    return metadata


def quality_metadata(
    quality: QualityOutcome, quarantine: UpsertResult | None
) -> dict[str, dg.MetadataValue]:
    """Each rule's counts (a table, and plottable numbers per rule), the rows left out, and the
    quarantine commit's own counts. Empty for a feed without expectations."""
    if not quality.outcomes:
        return {}
    metadata: dict[str, dg.MetadataValue] = {
        keys.QUALITY_LANDED_ROWS: dg.MetadataValue.int(quality.landed_rows),
        keys.QUALITY_ROWS_DROPPED: dg.MetadataValue.int(quality.dropped),
        keys.QUALITY_ROWS_QUARANTINED: dg.MetadataValue.int(quality.quarantined.num_rows),
        keys.QUALITY_RULES: dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        "rule": outcome.expectation.name,
                        "expression": outcome.expectation.rule,
                        "on_fail": outcome.expectation.on_fail.value,
                        "passing": outcome.passing,
                        "failing": outcome.failing,
                        "null": outcome.null,
                        "failing_fraction": outcome.failing_fraction,
                        "tolerance": outcome.expectation.tolerance,
                    }
                )
                for outcome in quality.outcomes
            ],
            schema=_RULES_SCHEMA,
        ),
    }
    for outcome in quality.outcomes:
        rule = outcome.expectation.name
        metadata[keys.QUALITY_PASSING.format(rule=rule)] = dg.MetadataValue.int(outcome.passing)
        metadata[keys.QUALITY_FAILING.format(rule=rule)] = dg.MetadataValue.int(outcome.failing)
        metadata[keys.QUALITY_NULL.format(rule=rule)] = dg.MetadataValue.int(outcome.null)
        metadata[keys.QUALITY_FAILING_FRACTION.format(rule=rule)] = dg.MetadataValue.float(
            outcome.failing_fraction
        )
    if quarantine is not None:
        metadata[keys.QUARANTINE_URI] = dg.MetadataValue.path(quarantine.table_uri)
        metadata[keys.QUARANTINE_ROWS_INSERTED] = dg.MetadataValue.int(quarantine.inserted)
        metadata[keys.QUARANTINE_ROWS_UPDATED] = dg.MetadataValue.int(quarantine.updated)
        metadata[keys.QUARANTINE_ROWS_DELETED] = dg.MetadataValue.int(quarantine.deleted)
        if quarantine.partition_rows is not None:
            metadata[keys.QUARANTINE_PARTITION_ROWS] = dg.MetadataValue.int(
                quarantine.partition_rows
            )
        metadata[keys.QUARANTINE_VERSION] = dg.MetadataValue.int(quarantine.version)
    return metadata


def schema_metadata(result: UpsertResult) -> dict[str, dg.MetadataValue]:
    """What the merge did to the table's schema: a readable change list (columns added, types
    changed, columns the batch lacked and were filled with nulls) and, when the schema changed,
    the schema before (``dagster/column_schema`` carries the one after)."""
    if result.schema is None:
        return {}
    changes = schema_changes(result.schema_before, result.schema, filled=result.columns_filled)
    return schema_change_metadata(changes, result.schema_before if result.committed else None)


def schema_change_metadata(
    changes: SchemaChanges, before: pa.Schema | None
) -> dict[str, dg.MetadataValue]:
    """``schema/changed``, the readable ``schema/changes`` (when there are any) and, when the
    schema changed and the one before is known, ``schema/before``."""
    metadata: dict[str, dg.MetadataValue] = {
        keys.SCHEMA_CHANGED: dg.MetadataValue.bool(changes.schema_changed and before is not None),
    }
    if changes.describe():
        metadata[keys.SCHEMA_CHANGES] = dg.MetadataValue.json(changes.describe())
    if changes.schema_changed and before is not None:
        metadata[keys.SCHEMA_BEFORE] = dg.MetadataValue.table_schema(column_schema(before))
    return metadata
