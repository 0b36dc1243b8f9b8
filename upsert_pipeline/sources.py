"""Reading one partition's landing batch and holding it to its feed's schema.

Everything a landing batch can get wrong is refused with a named error before the batch reaches
the merge: a landing URI outside the allow-list, a partition key that is not a plain day (``../``),
a path that resolves outside the landing folder, a missing, empty, non-parquet, truncated or
otherwise unreadable file, and columns that do not fit the feed.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from upsert_pipeline.delta import DEFAULT_URI_POLICY, DisallowedUriError, UpsertError, UriPolicy
from upsert_pipeline.delta.operations import OP_COLUMN, with_string_op
from upsert_pipeline.delta.predicates import check_identifier
from upsert_pipeline.delta.validation import check_keys, conform_evolving
from upsert_pipeline.feeds import Feed

PARQUET_MAGIC = b"PAR1"
# A parquet file is at least: magic, a footer length (4 bytes), magic.
_MIN_PARQUET_BYTES = 2 * len(PARQUET_MAGIC) + 4


class LandingFileNotFoundError(UpsertError, FileNotFoundError):
    """No landing batch exists for the partition."""


class LandingFileError(UpsertError):
    """The landing file exists but is not a readable parquet batch."""


class EmptyLandingFileError(LandingFileError):
    """The landing file has no bytes at all (an upload that never wrote)."""


class NotParquetError(LandingFileError):
    """The landing file does not start with the parquet magic bytes (CSV, JSON, HTML, ...)."""


class TruncatedParquetError(LandingFileError):
    """The landing file starts as parquet but its footer is missing (a cut-off upload)."""


class CorruptParquetError(LandingFileError):
    """The landing file is framed as parquet but cannot be decoded."""


class InvalidPartitionKeyError(UpsertError, ValueError):
    """The partition key is not a plain ``YYYY-MM-DD`` day, so it cannot name a landing file."""


def _day(partition_key: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(partition_key)
    except (TypeError, ValueError):
        day = None
    if day is None or day.isoformat() != partition_key:
        raise InvalidPartitionKeyError(f"partition key {partition_key!r} is not a YYYY-MM-DD day")
    return day


def landing_path(
    landing_uri: str, feed: Feed, partition_key: str, *, uri_policy: UriPolicy | None = None
) -> str:
    """``<landing>/<feed>/<YYYY-MM-DD>.parquet``; the key must be a plain day (no ``../``).

    Raises:
        DisallowedUriError: ``landing_uri`` is not allowed by ``uri_policy`` (by default: the
            usual schemes, any root), or the feed's name is not a plain identifier.
        InvalidPartitionKeyError: The key is not a ``YYYY-MM-DD`` day.
    """
    (uri_policy or DEFAULT_URI_POLICY).check(landing_uri, what="landing")
    try:
        check_identifier(feed.name)
    except UpsertError as error:
        raise DisallowedUriError(f"feed name {feed.name!r} cannot name a landing folder") from error
    day = _day(partition_key)
    return f"{landing_uri.rstrip('/')}/{feed.name}/{day.isoformat()}.parquet"


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path:
        return pafs.FileSystem.from_uri(path)  # type: ignore[no-any-return]
    return pafs.LocalFileSystem(), str(PurePosixPath(path))


def _check_inside(landing_uri: str, path: str) -> None:
    """Refuses a local landing file that resolves (through symlinks) outside the landing root."""
    if "://" in landing_uri and not landing_uri.startswith("file://"):
        return
    root = os.path.realpath(landing_uri.removeprefix("file://"))
    resolved = os.path.realpath(path.removeprefix("file://"))
    if os.path.commonpath([root, resolved]) != root:
        raise DisallowedUriError(f"landing file {path} resolves outside the landing root {root}")


def _check_framing(fs: pafs.FileSystem, fs_path: str, path: str, size: int) -> None:
    """Names an empty, non-parquet or truncated file from its first and last bytes."""
    if size == 0:
        raise EmptyLandingFileError(f"landing file {path} is empty (0 bytes)")
    with fs.open_input_file(fs_path) as file:
        head = file.read_at(len(PARQUET_MAGIC), 0)
        tail = file.read_at(len(PARQUET_MAGIC), max(size - len(PARQUET_MAGIC), 0))
    if head != PARQUET_MAGIC:
        raise NotParquetError(
            f"landing file {path} is not parquet: it starts with {head!r}, not {PARQUET_MAGIC!r}"
        )
    if size < _MIN_PARQUET_BYTES or tail != PARQUET_MAGIC:
        raise TruncatedParquetError(
            f"landing file {path} is truncated: {size} bytes, no parquet footer at the end"
        )


def read_landing_batch(
    landing_uri: str,
    feed: Feed,
    partition_key: str,
    *,
    filesystem: pafs.FileSystem | None = None,
    uri_policy: UriPolicy | None = None,
) -> pa.Table:
    """Reads the landing batch of ``feed`` for one day and conforms it to the feed's schema.

    Args:
        landing_uri: The landing root, a local path or an object-store URI.
        feed: The feed whose batch to read.
        partition_key: The day, ``YYYY-MM-DD``.
        filesystem: The filesystem to read with; derived from ``landing_uri`` when ``None``.
        uri_policy: The allowed schemes and roots of ``landing_uri``.

    Returns:
        The batch with the feed's columns and types first, then any columns new to the feed (if
        it evolves its schema) and the control column ``_op`` (if present).

    Raises:
        DisallowedUriError: The landing URI is not allowed, or the file resolves outside it.
        InvalidPartitionKeyError: The key is not a plain day.
        LandingFileNotFoundError: No file at the landing path (the error names it).
        EmptyLandingFileError: The file has no bytes.
        NotParquetError: The file is not parquet.
        TruncatedParquetError: The file's parquet footer is missing.
        CorruptParquetError: The file is framed as parquet but does not decode.
        NullKeyError: A key column holds a null.
        DuplicateKeyError: Two rows share a key.
        BatchSchemaError: A column is missing, unexpected, of the wrong type, or null where the
            feed declares it not null.
    """
    path = landing_path(landing_uri, feed, partition_key, uri_policy=uri_policy)
    fs, fs_path = (filesystem, path) if filesystem is not None else _filesystem(path)
    info = fs.get_file_info(fs_path)
    if info.type != pafs.FileType.File:
        raise LandingFileNotFoundError(f"no landing batch for {feed.name} {partition_key}: {path}")
    if filesystem is None:
        _check_inside(landing_uri, path)
    _check_framing(fs, fs_path, path, int(info.size or 0))
    try:
        batch = pq.read_table(fs_path, filesystem=fs)
    except (pa.ArrowException, OSError) as error:
        raise CorruptParquetError(
            f"landing file {path} is not a readable parquet file: {error}"
        ) from error
    check_keys(batch, feed.keys)
    batch = with_string_op(batch)
    conformed, _, _ = conform_evolving(
        batch, feed.schema, evolve=feed.evolve_schema, control=(OP_COLUMN,)
    )
    return conformed
