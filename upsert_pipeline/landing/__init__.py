"""Landing files: where a feed's partitions land, in which format, and reading them. No Dagster.

``layout`` turns a feed's ``landing.path`` (``shipments/dt={date}/*.csv.gz``) into one partition's
glob and back; ``formats`` reads one file (parquet, CSV, newline-delimited JSON, compression from
the suffix); ``reading`` reads every file of a partition and holds it to the feed's columns;
``fingerprints`` says which partitions' files appeared or changed (the landing sensor's cursor).
"""

from upsert_pipeline.landing.errors import (
    CorruptParquetError,
    EmptyLandingFileError,
    InvalidPartitionKeyError,
    LandingFileError,
    LandingFileNotFoundError,
    LandingParseError,
    NotParquetError,
    TruncatedParquetError,
)
from upsert_pipeline.landing.layout import (
    CADENCES,
    FORMATS,
    PLACEHOLDERS,
    CsvOptions,
    LandingLayout,
    missing_placeholder,
)
from upsert_pipeline.landing.reading import LandingFile, list_partition_files, read_partition

__all__ = [
    "CADENCES",
    "FORMATS",
    "PLACEHOLDERS",
    "CorruptParquetError",
    "CsvOptions",
    "EmptyLandingFileError",
    "InvalidPartitionKeyError",
    "LandingFile",
    "LandingFileError",
    "LandingFileNotFoundError",
    "LandingLayout",
    "LandingParseError",
    "NotParquetError",
    "TruncatedParquetError",
    "list_partition_files",
    "missing_placeholder",
    "read_partition",
]
