"""Reading one partition's landing batch and holding it to its feed's schema."""

from __future__ import annotations

import datetime as dt
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from upsert_pipeline.delta import UpsertError
from upsert_pipeline.delta.validation import conform
from upsert_pipeline.feeds import Feed


class LandingFileNotFoundError(UpsertError, FileNotFoundError):
    """No landing batch exists for the partition."""


class LandingFileError(UpsertError):
    """The landing file exists but is not a readable parquet batch."""


class InvalidPartitionKeyError(UpsertError, ValueError):
    """The partition key is not a plain ``YYYY-MM-DD`` day, so it cannot name a landing file."""


def _day(partition_key: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(partition_key)
    except ValueError:
        day = None
    if day is None or day.isoformat() != partition_key:
        raise InvalidPartitionKeyError(f"partition key {partition_key!r} is not a YYYY-MM-DD day")
    return day


def landing_path(landing_uri: str, feed: Feed, partition_key: str) -> str:
    """``<landing>/<feed>/<YYYY-MM-DD>.parquet``; the key must be a plain day (no ``../``)."""
    day = _day(partition_key)
    return f"{landing_uri.rstrip('/')}/{feed.name}/{day.isoformat()}.parquet"


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path:
        return pafs.FileSystem.from_uri(path)  # type: ignore[no-any-return]
    return pafs.LocalFileSystem(), str(PurePosixPath(path))


def read_landing_batch(
    landing_uri: str, feed: Feed, partition_key: str, *, filesystem: pafs.FileSystem | None = None
) -> pa.Table:
    """Reads the landing batch of ``feed`` for one day and conforms it to the feed's schema.

    Args:
        landing_uri: The landing root, a local path or an object-store URI.
        feed: The feed whose batch to read.
        partition_key: The day, ``YYYY-MM-DD``.
        filesystem: The filesystem to read with; derived from ``landing_uri`` when ``None``.

    Returns:
        The batch with exactly the feed's columns and types.

    Raises:
        LandingFileNotFoundError: No file at the landing path (the error names it).
        LandingFileError: The file is empty, truncated or not parquet.
        BatchSchemaError: A column is missing, unexpected or of the wrong type.
    """
    path = landing_path(landing_uri, feed, partition_key)
    fs, fs_path = (filesystem, path) if filesystem is not None else _filesystem(path)
    info = fs.get_file_info(fs_path)
    if info.type != pafs.FileType.File:
        raise LandingFileNotFoundError(f"no landing batch for {feed.name} {partition_key}: {path}")
    try:
        batch = pq.read_table(fs_path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as error:
        raise LandingFileError(
            f"landing file {path} is not a readable parquet file: {error}"
        ) from error
    return conform(batch, feed.schema)
