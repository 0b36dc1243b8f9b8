"""Observing a table that other engines write: each commit since the last one seen, with its counts.

Plain Python, no Dagster. For every new version: what the commit did to rows, from its own
``commitInfo.operationMetrics`` (delta-rs's snake_case or Spark's camelCase spelling, see
``history.row_changes``), and the rows of the table and of each partition at that version, from the
log with deletion vectors subtracted (``counts.snapshot_counts``). Never from a data file. A commit
without metrics has unknown counts (``None``), never zeros.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
from deltalake import DeltaTable

from upsert_pipeline.delta.commit_files import CommitFiles, commit_files
from upsert_pipeline.delta.counts import snapshot_counts
from upsert_pipeline.delta.history import (
    Commit,
    RowChanges,
    parse_commit,
    read_versions_actions,
    row_changes,
)
from upsert_pipeline.delta.partition_counts import partition_row_counts
from upsert_pipeline.delta.profile import Profile, snapshot_profiles
from upsert_pipeline.delta.result import PartitionValue
from upsert_pipeline.delta.schema_changes import SchemaChanges, schema_changes

DEFAULT_MAX_COMMITS = 100
"""The most commits one observation records; older unseen ones are skipped (and listed)."""


@dataclass(frozen=True, kw_only=True)
class ObservedCommit:
    """One commit of an observed table and the table's row counts at its version.

    Attributes:
        commit: The commit, as its commit file records it.
        changes: Rows it inserted / updated / deleted / copied by its metrics; ``None`` each
            where they do not say.
        table_rows: Live rows of the table at this version (``None`` if the log cannot tell).
        table_files: Data files of the table at this version.
        files_without_stats: Data files at this version without ``numRecords``.
        partition_rows: Live rows of each partition at this version, by label
            (``order_date=2026-11-02``); ``{}`` for an unpartitioned table.
        schema: The table's schema at this version.
        schema_changes: How the commit changed the schema (empty when it did not, or when the
            version before is not known).
        schema_before: The schema at the version before, when the commit changed it.
        profile: The table's column profile at this version, from its add actions.
        partition_profiles: The profile of each partition the commit touched (its files' partition
            values), at this version.
        files: The files and bytes the commit added and removed, from its commit file.
    """

    commit: Commit
    changes: RowChanges
    table_rows: int | None
    table_files: int
    files_without_stats: int
    partition_rows: Mapping[str, int | None]
    schema: pa.Schema | None = None
    schema_changes: SchemaChanges = field(default_factory=SchemaChanges)
    schema_before: pa.Schema | None = None
    profile: Profile | None = None
    files: CommitFiles | None = None
    partition_profiles: tuple[Profile, ...] = ()

    @property
    def version(self) -> int:
        """The version the commit wrote."""
        return self.commit.version


@dataclass(frozen=True, kw_only=True)
class Observation:
    """The commits of a table since a version.

    Attributes:
        table_uri: The table.
        latest_version: The table's latest version when observed.
        commits: The new commits, oldest first.
        skipped_versions: New versions not recorded: beyond ``max_commits``, or whose commit
            file is gone from the log (cleaned up).
        table_id: The table's id (``metaData.id``): a table dropped and created again at the
            same URI has a new one.
        recreated: The table at the URI is not the one observed before (another id, or fewer
            versions than already seen): its commits were observed from version 0.
    """

    table_uri: str
    latest_version: int
    commits: tuple[ObservedCommit, ...]
    skipped_versions: tuple[int, ...]
    table_id: str = ""
    recreated: bool = False


def observe_commits(
    table_uri: str,
    *,
    after_version: int | None = None,
    table_id: str | None = None,
    max_commits: int = DEFAULT_MAX_COMMITS,
    storage_options: Mapping[str, str] | None = None,
) -> Observation:
    """The commits of ``table_uri`` after ``after_version``, each with its counts.

    Args:
        table_uri: The Delta table (a path or ``s3://...``).
        after_version: The last version already recorded; ``None`` to start from version 0.
        table_id: The id of the table ``after_version`` belongs to, if known. When the table now
            at the URI has another id (dropped and created again), or has fewer versions than
            ``after_version``, its commits are observed from version 0 and ``recreated`` is set.
        max_commits: Record at most this many (the newest); the older new ones are skipped.
        storage_options: Object-store options (delta-rs's ``AWS_*`` spelling).

    Returns:
        The observation; ``commits`` is empty when nothing was committed since.

    Example:
        >>> seen = observe_commits("s3://lake/events", after_version=17)
        >>> [(c.version, c.changes.inserted, c.table_rows) for c in seen.commits]
        [(18, 2, 8), (19, 0, 8)]
    """
    options = dict(storage_options) if storage_options else None
    table = DeltaTable(table_uri, storage_options=options)
    latest = table.version()
    current_id = str(table.metadata().id)
    recreated = after_version is not None and (
        (table_id is not None and table_id != current_id) or after_version > latest
    )
    first = 0 if after_version is None or recreated else after_version + 1
    new_versions = list(range(first, latest + 1))
    skipped = new_versions[: max(0, len(new_versions) - max_commits)]
    records = []
    reading = new_versions[len(skipped) :]
    previous: pa.Schema | None = None
    if reading and reading[0] > 0:
        table.load_as_version(reading[0] - 1)
        previous = _schema(table)
    # Each commit file read once: its commit and its files both come from the same actions.
    for version, actions in read_versions_actions(table_uri, reading, storage_options):
        if actions is None:
            skipped.append(version)
            previous = None  # the schema before the next commit is unknown
            continue
        commit = parse_commit(version, actions)
        table.load_as_version(version)
        counts = snapshot_counts(table)
        schema = _schema(table)
        changes = schema_changes(previous, schema)
        files = commit_files(version, actions)
        touched = _touched(files)
        try:
            profile, *partition_profiles = snapshot_profiles(table, [None, *touched])
        except pa.ArrowException:  # a partition value the log spells unlike its column's type
            [profile] = snapshot_profiles(table, [None])
            partition_profiles = []
        records.append(
            ObservedCommit(
                commit=commit,
                changes=row_changes(commit),
                table_rows=counts.table_rows,
                table_files=counts.table_files,
                files_without_stats=counts.files_without_stats,
                partition_rows=partition_row_counts(table),
                schema=schema,
                schema_changes=changes,
                schema_before=previous if changes.schema_changed else None,
                profile=profile,
                files=files,
                partition_profiles=tuple(partition_profiles),
            )
        )
        previous = schema
    return Observation(
        table_uri=table_uri,
        latest_version=latest,
        commits=tuple(records),
        skipped_versions=tuple(skipped),
        table_id=current_id,
        recreated=recreated,
    )


def _schema(table: DeltaTable) -> pa.Schema:
    return pa.schema(table.schema().to_arrow())


def _touched(files: CommitFiles | None) -> list[dict[str, PartitionValue]]:
    """The partitions a commit's files belong to, without null partition values (the profile
    selects partitions by equality)."""
    if files is None:
        return []
    return [
        {column: value for column, value in values.items() if value is not None}
        for values in files.partitions
        if all(value is not None for value in values.values())
    ]
