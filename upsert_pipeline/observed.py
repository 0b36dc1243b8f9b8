"""Tables other engines write, observed: one Dagster observation per commit, with its counts.

An observable source asset per table. Each observation run reads the commits since the version
the asset's latest observation recorded (``upsert_pipeline.delta.observe``) and records one
``AssetObservation`` per commit, oldest first: the rows it inserted / updated / deleted / copied
by its own metrics (delta-rs's or Spark's spelling), and the table's and partitions' row counts
from the log at that version (deletion vectors subtracted). A commit without metrics leaves the
``commit/rows_*`` keys out and sets ``commit/counts_unknown``. Nothing reads a data file.
"""

import warnings
from collections.abc import Mapping, Sequence

import dagster as dg
from deltalake.exceptions import TableNotFoundError

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.delta.commit_files import recorded_times
from upsert_pipeline.delta.observe import DEFAULT_MAX_COMMITS, ObservedCommit, observe_commits
from upsert_pipeline.delta.storage import storage_options_for
from upsert_pipeline.load_metadata import (
    partition_profiles_table,
    profile_metadata,
    schema_change_metadata,
)
from upsert_pipeline.metadata import column_schema

# An observable source asset is what Dagster offers for a table it does not write: observations,
# a data version per commit. It is marked beta in 1.13 and warns each time one is built; chosen on
# purpose, so that one message is silenced here, once.
warnings.filterwarnings(
    "ignore",
    message=r"Function `observable_source_asset` is currently in beta",
    category=dg.BetaWarning,
)

OBSERVED_GROUP = "observed"
"""The UI group of observed tables."""

_PARTITION_ROWS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("partition", "string", description="column=value"),
        dg.TableColumn("rows", "int", description="live rows from the log; empty if unknown"),
    ]
)


def commit_metadata(observed: ObservedCommit) -> dict[str, dg.MetadataValue]:
    """One commit's observation: its counts (left out where unknown) and the rows at its version."""
    commit, changes = observed.commit, observed.changes
    metadata: dict[str, dg.MetadataValue] = {
        keys.VERSION: dg.MetadataValue.int(commit.version),
        keys.OPERATION: dg.MetadataValue.text(commit.operation or "unknown"),
        keys.DATA_CHANGE: dg.MetadataValue.bool(commit.data_change),
        keys.COMMIT_COUNTS_UNKNOWN: dg.MetadataValue.bool(not changes.known),
        keys.TABLE_FILES: dg.MetadataValue.int(observed.table_files),
        keys.FILES_WITHOUT_STATS: dg.MetadataValue.int(observed.files_without_stats),
    }
    if commit.engine:
        metadata[keys.ENGINE] = dg.MetadataValue.text(commit.engine)
    if commit.timestamp_ms is not None:
        metadata[keys.COMMIT_TIMESTAMP] = dg.MetadataValue.timestamp(commit.timestamp_ms / 1000)
    for key, value in (
        (keys.COMMIT_ROWS_INSERTED, changes.inserted),
        (keys.COMMIT_ROWS_UPDATED, changes.updated),
        (keys.COMMIT_ROWS_DELETED, changes.deleted),
        (keys.COMMIT_ROWS_COPIED, changes.copied),
    ):
        if value is not None:
            metadata[key] = dg.MetadataValue.int(value)
    if observed.table_rows is not None:
        metadata[keys.ROW_COUNT] = dg.MetadataValue.int(observed.table_rows)
    metadata.update(commit_facts(observed))
    if observed.partition_rows:
        metadata[keys.PARTITION_ROW_COUNTS] = dg.MetadataValue.table(
            records=[
                dg.TableRecord({"partition": label, "rows": rows})
                for label, rows in observed.partition_rows.items()
            ],
            schema=_PARTITION_ROWS_SCHEMA,
        )
    return metadata


def commit_facts(observed: ObservedCommit) -> dict[str, dg.MetadataValue]:
    """Beyond counts, where the foreign commit and the log hold it: the schema change (with the
    schema before and after), the table's profile at the version, the bytes and files the
    commit added and removed, and the phase times its writer recorded (Spark's and delta-rs's
    ``executionTimeMs`` / ``scanTimeMs`` / ``rewriteTimeMs``)."""
    metadata: dict[str, dg.MetadataValue] = {}
    if observed.schema is not None:
        metadata.update(schema_change_metadata(observed.schema_changes, observed.schema_before))
        metadata[keys.COLUMN_SCHEMA] = dg.MetadataValue.table_schema(column_schema(observed.schema))
    if observed.profile is not None:
        metadata.update(profile_metadata(observed.profile))
    if observed.partition_profiles:
        metadata[keys.PARTITIONS_PROFILE] = partition_profiles_table(observed.partition_profiles)
    times = recorded_times(observed.commit.metrics)
    for name, key in (
        ("execution_ms", keys.COST_MERGE_EXECUTION_MS),
        ("scan_ms", keys.COST_MERGE_SCAN_MS),
        ("rewrite_ms", keys.COST_MERGE_REWRITE_MS),
    ):
        if name in times:
            metadata[key] = dg.MetadataValue.int(times[name])
    files = observed.files
    if files is not None:
        metadata[keys.COST_BYTES_WRITTEN] = dg.MetadataValue.int(files.bytes_added)
        metadata[keys.COST_COMMIT_FILES_ADDED] = dg.MetadataValue.int(files.files_added)
        metadata[keys.COST_COMMIT_FILES_REMOVED] = dg.MetadataValue.int(files.files_removed)
        metadata[keys.COST_DELETION_VECTORS_UPDATED] = dg.MetadataValue.int(
            files.deletion_vectors_updated
        )
        if files.bytes_removed is not None:
            metadata[keys.COST_BYTES_REMOVED] = dg.MetadataValue.int(files.bytes_removed)
    return metadata


def last_observed(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[int | None, str | None]:
    """The table version and table id the asset's latest observation recorded, if any."""
    records = instance.fetch_observations(key, limit=1).records
    if not records or records[0].asset_observation is None:
        return None, None
    metadata = records[0].asset_observation.metadata
    version, table_id = metadata.get(keys.VERSION), metadata.get(keys.TABLE_ID)
    return (
        version.value if isinstance(version, dg.IntMetadataValue) else None,
        table_id.value if isinstance(table_id, dg.TextMetadataValue) else None,
    )


def build_observed_table(
    name: str,
    uri: str,
    *,
    description: str | None = None,
    max_commits: int = DEFAULT_MAX_COMMITS,
    storage_options: Mapping[str, str] | None = None,
) -> dg.SourceAsset:
    """An observable source asset of the Delta table at ``uri``, written by other engines.

    Example:
        >>> events = build_observed_table("partner_events", "s3://partner/events")
    """
    key = dg.AssetKey(name)

    @dg.observable_source_asset(
        key=key,
        group_name=OBSERVED_GROUP,
        description=description
        or f"A Delta table other engines write, at {uri}: each commit observed with its counts.",
        metadata={keys.URI: dg.MetadataValue.path(uri)},
        tags={"dagster/kind/deltalake": ""},
    )
    def _observe(context: dg.AssetExecutionContext) -> dg.ObserveResult:
        after, table_id = last_observed(context.instance, key)
        # Resolved at run time, like the lake's: the store's standard environment plus overrides.
        options = storage_options_for(uri, overrides=storage_options) or None
        try:
            seen = observe_commits(
                uri,
                after_version=after,
                table_id=table_id,
                max_commits=max_commits,
                storage_options=options,
            )
        except TableNotFoundError:
            context.log.warning(f"no Delta table at {uri} yet")
            return dg.ObserveResult(metadata={keys.NEW_COMMITS: dg.MetadataValue.int(0)})
        if seen.skipped_versions:
            context.log.warning(
                f"{len(seen.skipped_versions)} version(s) not recorded (beyond {max_commits} "
                f"or cleaned up from the log): {seen.skipped_versions[0]}.."
                f"{seen.skipped_versions[-1]}"
            )
        if seen.recreated:
            context.log.warning(
                f"{uri} is another table than the one observed up to v{after} (dropped and "
                f"created again: table id {seen.table_id}); observing its commits from v0"
            )
        summary = {
            keys.NEW_COMMITS: dg.MetadataValue.int(len(seen.commits)),
            keys.SKIPPED_VERSIONS: dg.MetadataValue.int(len(seen.skipped_versions)),
            keys.TABLE_ID: dg.MetadataValue.text(seen.table_id),
            keys.RECREATED: dg.MetadataValue.bool(seen.recreated),
        }
        version = dg.DataVersion(str(seen.latest_version))
        if not seen.commits:
            return dg.ObserveResult(
                metadata={keys.VERSION: dg.MetadataValue.int(seen.latest_version), **summary},
                data_version=version,
            )
        *earlier, latest = seen.commits
        for observed in earlier:
            metadata = {**commit_metadata(observed), keys.TABLE_ID: summary[keys.TABLE_ID]}
            observation = dg.AssetObservation(asset_key=key, metadata=metadata)
            context.log_event(observation)
        context.log.info(
            f"{name}: {len(seen.commits)} new commit(s), v{seen.commits[0].version}.."
            f"v{latest.version}"
        )
        return dg.ObserveResult(
            metadata={**commit_metadata(latest), **summary}, data_version=version
        )

    return _observe


OBSERVE_TABLES = "observe_tables"


def observed_definitions(assets: Sequence[dg.SourceAsset]) -> dg.Definitions:
    """The job ``observe_tables`` over the observed tables, and its schedule (every 15 minutes,
    stopped until turned on); nothing when no table is observed."""
    if not assets:
        return dg.Definitions()
    job = dg.define_asset_job(
        OBSERVE_TABLES,
        selection=dg.AssetSelection.assets(*(asset.key for asset in assets)),
        description="Observes every table other engines write: each new commit with its counts.",
    )
    schedule = dg.ScheduleDefinition(
        job=job, cron_schedule="*/15 * * * *", default_status=dg.DefaultScheduleStatus.STOPPED
    )
    return dg.Definitions(jobs=[job], schedules=[schedule])
