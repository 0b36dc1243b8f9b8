"""The materialization metadata keys, defined once: the writer (``metadata.py``) records them and
the checks (``checks/``) read them back from the event log.

Dagster's standard keys come first: the UI knows them (row counts, the table's URI and schema).
"""

# Dagster's standard table keys.
ROW_COUNT = "dagster/row_count"
PARTITION_ROW_COUNT = "dagster/partition_row_count"
URI = "dagster/uri"
TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"

# The merge's own counts, from the commit's metrics.
SOURCE_ROWS = "upsert/source_rows"
ROWS_INSERTED = "upsert/rows_inserted"
ROWS_UPDATED = "upsert/rows_updated"
ROWS_DELETED = "upsert/rows_deleted"
ROWS_UNCHANGED = "upsert/rows_unchanged"
ROWS_COPIED = "upsert/rows_copied"
TOMBSTONES = "upsert/tombstones"
SNAPSHOT = "upsert/snapshot"
PARTITION_ROWS_BEFORE = "upsert/partition_rows_before"

# The Delta log's side of the commit.
VERSION = "delta/version"
READ_VERSION = "delta/read_version"
FILES_ADDED = "delta/files_added"
FILES_REMOVED = "delta/files_removed"
FILES_SCANNED = "delta/files_scanned"
FILES_SKIPPED = "delta/files_skipped"
FILES_WITHOUT_STATS = "delta/files_without_stats"
MERGE_MS = "delta/merge_ms"
COMMIT_ATTEMPTS = "delta/commit_attempts"
COLUMNS_ADDED = "delta/columns_added"
COLUMNS_FILLED = "delta/columns_filled"

VOLUME_METRICS = (ROWS_INSERTED, ROWS_UPDATED, ROWS_DELETED)
"""The counts the volume check compares with the asset's history."""

# maintain_lake: the work done on a table (files, bytes) and its versions.
FILES_BEFORE = "maintenance/files_before"
FILES_AFTER = "maintenance/files_after"
BYTES_BEFORE = "maintenance/bytes_before"
BYTES_AFTER = "maintenance/bytes_after"
PARTITIONS_COMPACTED = "maintenance/partitions_compacted"
FILES_COMPACTED = "maintenance/files_compacted"
FILES_WRITTEN = "maintenance/files_written"
FILES_VACUUMED = "maintenance/files_vacuumed"
COMPACTED_PARTITIONS = "maintenance/compacted"
VERSION_BEFORE = "delta/version_before"
CHECKPOINT_VERSION = "delta/checkpoint_version"

# Observed tables: one observation per commit another engine wrote, with that commit's counts.
OPERATION = "delta/operation"
ENGINE = "delta/engine"
DATA_CHANGE = "delta/data_change"
COMMIT_TIMESTAMP = "delta/commit_timestamp"
TABLE_FILES = "delta/table_files"
PARTITION_ROW_COUNTS = "delta/partition_row_counts"
NEW_COMMITS = "delta/new_commits"
SKIPPED_VERSIONS = "delta/skipped_versions"
COMMIT_ROWS_INSERTED = "commit/rows_inserted"
COMMIT_ROWS_UPDATED = "commit/rows_updated"
COMMIT_ROWS_DELETED = "commit/rows_deleted"
COMMIT_ROWS_COPIED = "commit/rows_copied"
COMMIT_COUNTS_UNKNOWN = "commit/counts_unknown"

# Crash recovery: a commit whose run died before recording it, recorded by a later run.
RECOVERED = "recovery/recovered"
RECOVERED_RUN_ID = "recovery/dead_run_id"
LOG_CHECKED_THROUGH = "recovery/log_checked_through"
"""The table version through which every pipeline commit of the asset was found recorded when
this materialization's run started: the next run reads the log only after it."""
TABLE_ID = "delta/table_id"
"""The observed table's ``metaData.id``: it changes when the table is dropped and created again."""
RECREATED = "delta/recreated"
# maintain_lake under concurrent merges: work left for the next run.
PARTITIONS_SKIPPED = "maintenance/partitions_skipped"
VACUUM_SKIPPED = "maintenance/vacuum_skipped"
