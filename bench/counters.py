"""The ways to get ``dagster/row_count`` and ``dagster/partition_row_count`` after a write.

Each counter returns ``(table_rows, partition_rows)``. The project's counts come from the Delta
log; every other counter is what a count-after-write integration runs instead: a scan.
"""

import datetime as dt
from collections.abc import Callable, Mapping

import narwhals as nw
import polars as pl
from deltalake import DeltaTable

from upsert_pipeline.delta import read_row_counts, snapshot_counts

Counts = tuple[int | None, int | None]
"""``(table_rows, partition_rows)``."""


def project_held(table: DeltaTable, column: str, day: dt.date) -> Counts:
    """The project: ``numRecords`` summed over the snapshot a ``DeltaTable`` already holds."""
    counts = snapshot_counts(table, {column: day})
    return counts.table_rows, counts.partition_rows


def project_log(
    uri: str, column: str, day: dt.date, storage_options: Mapping[str, str] | None
) -> Counts:
    """The project from a cold start: load the log (no data file), then sum ``numRecords``."""
    counts = read_row_counts(uri, partition={column: day}, storage_options=storage_options)
    return counts.table_rows, counts.partition_rows


def narwhals_len(
    uri: str, column: str, day: dt.date, storage_options: Mapping[str, str] | None
) -> Counts:
    """A narwhals ``len()`` on a polars lazy frame of the table, whole and filtered, collected."""
    frame = nw.from_native(pl.scan_delta(uri, storage_options=_polars(storage_options)))
    table_rows = frame.select(nw.len()).collect().item()
    partition_rows = frame.filter(nw.col(column) == day).select(nw.len()).collect().item()
    return int(table_rows), int(partition_rows)


def polars_len(
    uri: str, column: str, day: dt.date, storage_options: Mapping[str, str] | None
) -> Counts:
    """``pl.scan_delta(...).select(pl.len())``, whole and filtered to the partition."""
    frame = pl.scan_delta(uri, storage_options=_polars(storage_options))
    table_rows = frame.select(pl.len()).collect().item()
    partition_rows = frame.filter(pl.col(column) == day).select(pl.len()).collect().item()
    return int(table_rows), int(partition_rows)


def full_read(
    uri: str, column: str, day: dt.date, storage_options: Mapping[str, str] | None
) -> Counts:
    """Read the whole table into memory, count it, filter it to the partition, count that."""
    frame = pl.read_delta(uri, storage_options=_polars(storage_options))
    return frame.height, frame.filter(pl.col(column) == day).height


_POLARS_SKIPS = ("AWS_S3_ALLOW_UNSAFE_RENAME", "conditional_put")
"""delta-rs commit settings that polars' object-store reader does not take (reads need none)."""


def _polars(storage_options: Mapping[str, str] | None) -> dict[str, str] | None:
    if not storage_options:
        return None
    return {key: value for key, value in storage_options.items() if key not in _POLARS_SKIPS}


SCANS: dict[str, Callable[[str, str, dt.date, Mapping[str, str] | None], Counts]] = {
    "project_log": project_log,
    "narwhals_len": narwhals_len,
    "polars_scan_len": polars_len,
    "full_read_filter": full_read,
}
"""Every counter that starts from the table's URI, by the name used in results."""

COUNTERS = ("project_held", *SCANS)
"""Every counter, the project's in-memory one first."""
