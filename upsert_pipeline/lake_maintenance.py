"""``maintain_lake``: compaction, vacuum and a checkpoint of every feed's table, as Dagster assets.

One unpartitioned asset per table (``maintenance/<table>``, group ``maintenance``) wraps
``upsert_pipeline.delta.maintenance.maintain``. Its materialization carries the work done as integer
metadata (files and bytes before and after, partitions compacted, files vacuumed, versions), so
the UI plots it run after run, and its inline check ``row_counts_unchanged`` fails if any row count
of the table or of a partition changed. Every commit carries the pipeline's markers, so the feed's
own checks never call it an out-of-band write.
"""

from collections.abc import Sequence

import dagster as dg
from deltalake.exceptions import TableNotFoundError
from pydantic import Field

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.checks.maintenance import judge_counts_unchanged
from upsert_pipeline.checks.names import ROW_COUNTS_UNCHANGED
from upsert_pipeline.checks.wiring import check_result
from upsert_pipeline.delta.history import PIPELINE_MARKER, RUN_MARKER
from upsert_pipeline.delta.maintenance import (
    DEFAULT_RETENTION_HOURS,
    MaintenancePolicy,
    MaintenanceResult,
    maintain,
)
from upsert_pipeline.resources import DeltaMergeResource

MAINTENANCE_GROUP = "maintenance"
MAINTAIN_LAKE = "maintain_lake"

JOB_MARKER = "dagster.job"
_DEFAULTS = MaintenancePolicy()


class MaintenanceConfig(dg.Config):
    """Run config of a maintenance asset (the Launchpad's ``ops: <asset>: config:``)."""

    max_small_files: int = Field(
        default=_DEFAULTS.max_small_files,
        description="Compact a partition holding more small files than this.",
    )
    small_file_bytes: int = Field(
        default=_DEFAULTS.small_file_bytes, description="A data file smaller than this is small."
    )
    target_size: int | None = Field(
        default=_DEFAULTS.target_size,
        description="Compacted files' target size in bytes; null for delta-rs's default.",
    )
    retention_hours: int = Field(
        default=DEFAULT_RETENTION_HOURS,
        description="Vacuum deletes files removed longer ago than this (default 7 days).",
    )
    enforce_retention_duration: bool = Field(
        default=True,
        description="Refuse a retention shorter than the table's deletedFileRetentionDuration.",
    )

    def policy(self) -> MaintenancePolicy:
        """The plain-Python policy this config describes."""
        return MaintenancePolicy(
            max_small_files=self.max_small_files,
            small_file_bytes=self.small_file_bytes,
            target_size=self.target_size,
            retention_hours=self.retention_hours,
            enforce_retention_duration=self.enforce_retention_duration,
        )


def maintenance_metadata(result: MaintenanceResult) -> dict[str, dg.MetadataValue]:
    """The work done, as integers the UI plots across runs; row counts left out when unknown."""
    metadata: dict[str, dg.MetadataValue] = {
        keys.FILES_BEFORE: dg.MetadataValue.int(result.files_before),
        keys.FILES_AFTER: dg.MetadataValue.int(result.files_after),
        keys.BYTES_BEFORE: dg.MetadataValue.int(result.bytes_before),
        keys.BYTES_AFTER: dg.MetadataValue.int(result.bytes_after),
        keys.PARTITIONS_COMPACTED: dg.MetadataValue.int(len(result.partitions_compacted)),
        keys.FILES_COMPACTED: dg.MetadataValue.int(result.files_compacted),
        keys.FILES_WRITTEN: dg.MetadataValue.int(result.files_written),
        keys.FILES_VACUUMED: dg.MetadataValue.int(result.files_vacuumed),
        keys.VERSION_BEFORE: dg.MetadataValue.int(result.version_before),
        keys.VERSION: dg.MetadataValue.int(result.version_after),
        keys.COMPACTED_PARTITIONS: dg.MetadataValue.json(list(result.partitions_compacted)),
        keys.PARTITIONS_SKIPPED: dg.MetadataValue.json(list(result.partitions_skipped)),
        keys.VACUUM_SKIPPED: dg.MetadataValue.bool(result.vacuum_skipped),
        keys.URI: dg.MetadataValue.path(result.table_uri),
    }
    if result.checkpoint_version is not None:
        metadata[keys.CHECKPOINT_VERSION] = dg.MetadataValue.int(result.checkpoint_version)
    if result.table_rows_after is not None:
        metadata[keys.ROW_COUNT] = dg.MetadataValue.int(result.table_rows_after)
    return metadata


def maintenance_key(table: str) -> dg.AssetKey:
    """``maintenance/<table>``: the asset that maintains one table of the lake."""
    return dg.AssetKey([MAINTENANCE_GROUP, table])


def build_maintenance_asset(table: str) -> dg.AssetsDefinition:
    """The unpartitioned asset that compacts, vacuums and checkpoints the lake's ``table``.

    Example:
        >>> maintain_orders = build_maintenance_asset("orders")
    """
    key = maintenance_key(table)

    @dg.asset(
        key=key,
        deps=[table],
        group_name=MAINTENANCE_GROUP,
        kinds={"deltalake"},
        description=(
            f"Compacts the partitions of {table} that hold too many small files, vacuums files "
            "removed longer ago than the retention, writes a checkpoint; the row counts of the "
            "table and of every partition, from the log, must be unchanged."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                ROW_COUNTS_UNCHANGED,
                asset=key,
                description="Every row count (table and partitions) is the same after as before.",
            )
        ],
    )
    def _maintain(
        context: dg.AssetExecutionContext, config: MaintenanceConfig, lake: DeltaMergeResource
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        uri = lake.table_uri(table)
        try:
            result = maintain(
                uri,
                policy=config.policy(),
                commit_metadata={
                    PIPELINE_MARKER: table,
                    JOB_MARKER: context.run.job_name,
                    RUN_MARKER: context.run.run_id,
                },
                storage_options=lake.delta_storage_options(),
            )
        except TableNotFoundError:
            context.log.warning(f"no Delta table at {uri} yet: nothing to maintain")
            return dg.MaterializeResult(
                metadata={keys.URI: dg.MetadataValue.path(uri)},
                check_results=[
                    dg.AssetCheckResult(
                        check_name=ROW_COUNTS_UNCHANGED,
                        passed=True,
                        description="no table yet: nothing maintained",
                    )
                ],
            )
        context.log.info(
            f"{table}: {result.files_before} -> {result.files_after} files, "
            f"{len(result.partitions_compacted)} partition(s) compacted, "
            f"{result.files_vacuumed} file(s) vacuumed; version "
            f"{result.version_before} -> {result.version_after}"
        )
        return dg.MaterializeResult(
            metadata=maintenance_metadata(result),
            check_results=[
                check_result(judge_counts_unchanged(result), check_name=ROW_COUNTS_UNCHANGED)
            ],
        )

    return _maintain


def maintenance_definitions(tables: Sequence[str]) -> dg.Definitions:
    """The maintenance asset of each table, the job ``maintain_lake`` over them all (run without
    a partition) and its schedule (Sundays 03:00 UTC, stopped until turned on)."""
    assets = [build_maintenance_asset(table) for table in tables]
    if not assets:
        return dg.Definitions()
    job = dg.define_asset_job(
        MAINTAIN_LAKE,
        selection=dg.AssetSelection.assets(*assets),
        description=(
            "Compacts, vacuums and checkpoints every table of the lake; proves from the log that "
            "no row count changed. Runs without a partition."
        ),
    )
    schedule = dg.ScheduleDefinition(
        job=job, cron_schedule="0 3 * * 0", default_status=dg.DefaultScheduleStatus.STOPPED
    )
    return dg.Definitions(assets=assets, jobs=[job], schedules=[schedule])
