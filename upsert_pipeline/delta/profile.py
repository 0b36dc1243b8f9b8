"""Column profiles from the Delta log: null count, minimum and maximum per column, no file read.

Every add action of a snapshot carries its file's ``numRecords``, ``nullCount``, ``minValues`` and
``maxValues`` (``get_add_actions(flatten=True)`` reads them from the snapshot already in memory).
A profile aggregates them over the files of a partition, or of the table. Each figure is right or
says what it is instead:

- **exact**: summed (null count) or taken as the least / greatest (minimum / maximum) over files
  whose stats describe exactly their live rows.
- **bound**: a file in scope carries a deletion vector, whose removed rows its stats still
  describe: the null count is an upper bound, the minimum a lower and the maximum an upper bound.
  A string minimum or maximum of 32 or more characters is a bound too: Spark truncates string
  stats to a prefix of ``delta.dataSkippingStringPrefixLength`` (32) characters.
- **unknown**: a file in scope has no stats, or no stat for the column (a column past
  ``delta.dataSkippingNumIndexedCols`` or outside ``delta.dataSkippingStatsColumns``, or a type
  the writer keeps no minimum of, such as Spark's booleans). Nothing is estimated.

The files that make a figure a bound or unknown are named (``Profile.files_without_stats``,
``Profile.files_with_deletion_vectors``), never silently summed. Partition columns are profiled
from the add actions' partition values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from upsert_pipeline.delta.counts import _partition_mask, _removed_rows, uses_deletion_vectors
from upsert_pipeline.delta.partition_counts import PARTITION_PREFIX, partition_label
from upsert_pipeline.delta.result import PartitionValue

NULL_COUNT_PREFIX = "null_count."
MIN_PREFIX = "min."
MAX_PREFIX = "max."
STRING_PREFIX_LENGTH = 32
"""Spark's default ``delta.dataSkippingStringPrefixLength``: longer string stats are truncated."""
NUM_INDEXED_COLS = "delta.dataSkippingNumIndexedCols"
STATS_COLUMNS = "delta.dataSkippingStatsColumns"


class Exactness(StrEnum):
    """How far a profile figure can be trusted."""

    EXACT = "exact"
    BOUND = "bound"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class ColumnProfile:
    """One column's profile over a scope (a partition or the table).

    Attributes:
        column: The column (a nested leaf as ``struct.field``).
        null_count: Nulls in the scope; an upper bound when ``nulls`` is ``BOUND``; ``None``
            when unknown.
        nulls: Whether ``null_count`` is exact, an upper bound or unknown.
        min: The least value (a lower bound when ``min_max`` is ``BOUND``); ``None`` when
            unknown or every value is null.
        max: The greatest value (an upper bound when ``min_max`` is ``BOUND``).
        min_max: Whether ``min`` and ``max`` are exact, bounds or unknown.
        null_fraction: ``null_count / rows``, only when both are exact; else ``None``.
        reason: Why a figure is a bound or unknown; ``None`` when all are exact.
    """

    column: str
    null_count: int | None
    nulls: Exactness
    min: Any
    max: Any
    min_max: Exactness
    null_fraction: float | None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Profile:
    """The column profiles of one scope of one table version.

    Attributes:
        version: The table version profiled.
        scope: ``order_date=2026-11-02`` for a partition, ``""`` for the table.
        rows: Live rows in the scope (``numRecords`` minus deletion vectors); ``None`` if unknown.
        files: Data files in the scope.
        files_without_stats: Paths of files in the scope whose add action has no stats.
        files_with_deletion_vectors: Paths of files in the scope whose deletion vector removes
            rows (their stats also describe those rows).
        columns: One profile per column, in the table's column order.
    """

    version: int
    scope: str
    rows: int | None
    files: int
    files_without_stats: tuple[str, ...]
    files_with_deletion_vectors: tuple[str, ...]
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile:
        """The profile of column ``name``.

        Raises:
            KeyError: No such column in the profile.
        """
        for profile in self.columns:
            if profile.column == name:
                return profile
        raise KeyError(f"no column {name!r} in the profile of {self.scope or 'the table'}")


def _stats_columns(
    actions: pa.Table, schema: pa.Schema, partition_columns: Sequence[str]
) -> list[str]:
    """The columns to profile: the table's, in order, a struct as its leaves that carry stats."""
    with_stats = [
        name[len(NULL_COUNT_PREFIX) :]
        for name in actions.column_names
        if name.startswith(NULL_COUNT_PREFIX)
    ]
    columns: list[str] = []
    for field in schema:
        if field.name in partition_columns:
            columns.append(field.name)
            continue
        leaves = [name for name in with_stats if name.startswith(f"{field.name}.")]
        columns.extend(leaves if pa.types.is_struct(field.type) and leaves else [field.name])
    return columns


def _missing_reason(configuration: Mapping[str, str | None]) -> str:
    """Why a column carries no stats, from the table's stats settings."""
    if configuration.get(STATS_COLUMNS):
        return f"not among {STATS_COLUMNS}={configuration[STATS_COLUMNS]}"
    if configuration.get(NUM_INDEXED_COLS):
        return f"past the stats limit {NUM_INDEXED_COLS}={configuration[NUM_INDEXED_COLS]}"
    return "no statistics recorded for this column (past the stats limit or not collected)"


def _is_long_string(value: object) -> bool:
    return isinstance(value, str) and len(value) >= STRING_PREFIX_LENGTH


def _column_profile(
    name: str,
    *,
    records: pa.Array,
    nulls: pa.Array | None,
    mins: pa.Array | None,
    maxs: pa.Array | None,
    rows: int | None,
    with_dv: bool,
    missing_reason: str,
) -> ColumnProfile:
    """Aggregates one column's per-file stats (arrays of one entry per file in scope)."""
    if nulls is None:
        return ColumnProfile(
            column=name,
            null_count=None,
            nulls=Exactness.UNKNOWN,
            min=None,
            max=None,
            min_max=Exactness.UNKNOWN,
            null_fraction=None,
            reason=missing_reason,
        )
    reasons: list[str] = []
    without_stats = records.null_count
    null_count: int | None
    if without_stats:
        reasons.append(f"{without_stats} file(s) without stats")
        null_count, null_kind = None, Exactness.UNKNOWN
    elif nulls.null_count:
        reasons.append(f"{nulls.null_count} file(s) without a null count")
        null_count, null_kind = None, Exactness.UNKNOWN
    else:
        null_count = int(pc.sum(nulls).as_py() or 0)
        null_kind = Exactness.BOUND if with_dv else Exactness.EXACT
    # A file's min/max are missing legitimately only when all its rows are null.
    all_null = pc.fill_null(pc.equal(nulls, records), False)
    if mins is None or maxs is None:
        has_both = pa.array([False] * len(records), pa.bool_())
    else:
        has_both = pc.and_(pc.is_valid(mins), pc.is_valid(maxs))
    unexplained = pc.and_(pc.invert(has_both), pc.invert(all_null))
    low_value: Any = None
    high_value: Any = None
    if pc.any(unexplained).as_py():
        min_max = Exactness.UNKNOWN
        if not without_stats:
            reasons.append("a file with values has no minimum / maximum for this column")
    else:
        min_max = Exactness.BOUND if with_dv else Exactness.EXACT
        if mins is not None and maxs is not None:
            try:
                low_value = pc.min(mins).as_py()
                high_value = pc.max(maxs).as_py()
            except pa.ArrowException as error:  # a stats type Arrow cannot order
                min_max = Exactness.UNKNOWN
                reasons.append(f"minimum / maximum not comparable: {error}")
        if _is_long_string(low_value) or _is_long_string(high_value):
            min_max = Exactness.BOUND
            reasons.append(f"string stats of {STRING_PREFIX_LENGTH}+ characters may be truncated")
    if with_dv:
        reasons.append("deletion vectors: stats include removed rows")
    fraction = (
        null_count / rows
        if null_kind is Exactness.EXACT and null_count is not None and rows
        else None
    )
    return ColumnProfile(
        column=name,
        null_count=null_count,
        nulls=null_kind,
        min=low_value,
        max=high_value,
        min_max=min_max,
        null_fraction=fraction,
        reason="; ".join(reasons) or None,
    )


def _values(actions: pa.Table, name: str) -> pa.Array | None:
    if name not in actions.column_names:
        return None
    return actions.column(name).combine_chunks()


def snapshot_profiles(
    table: DeltaTable, partitions: Sequence[Mapping[str, PartitionValue] | None]
) -> list[Profile]:
    """The profile of each of ``partitions`` (``None``: the whole table) of the snapshot ``table``
    holds, in order, from one read of its add actions (and deletion vectors, if the protocol
    allows them). Never opens a data file.

    Example:
        >>> [table_profile] = snapshot_profiles(DeltaTable("data/lake/orders"), [None])
        >>> table_profile.column("amount").null_count
        0
    """
    actions = pa.table(table.get_add_actions(flatten=True))
    metadata = table.metadata()
    partition_columns = list(metadata.partition_columns)
    schema = pa.schema(table.schema().to_arrow())
    paths = actions.column("path")
    removed: list[int | None]
    if actions.num_rows and uses_deletion_vectors(table):
        per_file = _removed_rows(table, paths)
        # Unreadable deletion vectors: every file may carry one.
        removed = [None] * actions.num_rows if per_file is None else per_file.to_pylist()
    else:
        removed = [0] * actions.num_rows
    missing_reason = _missing_reason(metadata.configuration)
    columns = _stats_columns(actions, schema, partition_columns)
    profiles = []
    for partition in partitions:
        mask = (
            _partition_mask(actions, partition)
            if partition
            else pa.array([True] * actions.num_rows, pa.bool_())
        )
        scoped = actions.filter(mask)
        scoped_removed = [r for r, keep in zip(removed, mask.to_pylist(), strict=True) if keep]
        records = scoped.column("num_records").combine_chunks()
        record_list = records.to_pylist()
        paths_in_scope = scoped.column("path").to_pylist()
        dv_paths = tuple(
            str(path)
            for path, gone in zip(paths_in_scope, scoped_removed, strict=True)
            if gone is None or gone > 0
        )
        live = [
            None if count is None or gone is None else count - gone
            for count, gone in zip(record_list, scoped_removed, strict=True)
        ]
        rows = None if any(count is None for count in live) else sum(int(c or 0) for c in live)
        column_profiles = []
        for name in columns:
            if name in partition_columns:
                values = _values(scoped, f"{PARTITION_PREFIX}{name}")
                assert values is not None
                nulls: pa.Array | None = pc.if_else(
                    pc.is_null(values), records, pa.scalar(0, records.type)
                )
                mins = maxs = values
            else:
                nulls = _values(scoped, f"{NULL_COUNT_PREFIX}{name}")
                mins = _values(scoped, f"{MIN_PREFIX}{name}")
                maxs = _values(scoped, f"{MAX_PREFIX}{name}")
            column_profiles.append(
                _column_profile(
                    name,
                    records=records,
                    nulls=nulls,
                    mins=mins,
                    maxs=maxs,
                    rows=rows,
                    with_dv=bool(dv_paths),
                    missing_reason=missing_reason,
                )
            )
        profiles.append(
            Profile(
                version=table.version(),
                scope=partition_label(partition) if partition else "",
                rows=rows,
                files=scoped.num_rows,
                files_without_stats=tuple(
                    str(path)
                    for path, count in zip(paths_in_scope, record_list, strict=True)
                    if count is None
                ),
                files_with_deletion_vectors=dv_paths,
                columns=tuple(column_profiles),
            )
        )
    return profiles


def read_profiles(
    table_uri: str,
    partitions: Sequence[Mapping[str, PartitionValue] | None],
    *,
    version: int | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> list[Profile]:
    """Loads the log of ``table_uri`` at ``version`` (the latest when ``None``) and profiles each
    of ``partitions``; see ``snapshot_profiles``.

    Example:
        >>> day, whole = read_profiles("data/lake/orders", [{"order_date": "2026-11-02"}, None])
    """
    table = DeltaTable(
        table_uri,
        version=version,
        storage_options=dict(storage_options) if storage_options else None,
    )
    return snapshot_profiles(table, partitions)
