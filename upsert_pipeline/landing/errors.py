"""Named errors of a landing partition: each says which feed, partition and file (and line)."""

from __future__ import annotations

from upsert_pipeline.delta import UpsertError


class LandingFileNotFoundError(UpsertError, FileNotFoundError):
    """No landing file exists for the partition."""


class LandingFileError(UpsertError):
    """A landing file exists but is not a readable batch of its declared format."""


class EmptyLandingFileError(LandingFileError):
    """The landing file has no bytes at all (an upload that never wrote)."""


class NotParquetError(LandingFileError):
    """The landing file does not start with the parquet magic bytes (CSV, JSON, HTML, ...)."""


class TruncatedParquetError(LandingFileError):
    """The landing file starts as parquet but its footer is missing (a cut-off upload)."""


class CorruptParquetError(LandingFileError):
    """The landing file is framed as parquet but cannot be decoded."""


class LandingParseError(LandingFileError):
    """A CSV or JSON landing file does not parse, or a value does not convert to its column's
    declared type; the message names the line when the parser reports one."""


class InvalidPartitionKeyError(UpsertError, ValueError):
    """The partition key cannot name a landing path (``../``, a slash, not a partition)."""
