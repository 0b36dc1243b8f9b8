"""A feed's landing layout: the path template of its partitions' files and their format.

A layout's ``path`` lies under the landing root and may hold the placeholders of ``PLACEHOLDERS``
and glob wildcards (``*``, ``?``, ``**``), so one partition may land as any number of files::

    shipments/dt={date}/*.csv.gz      # every gzipped CSV of the day's folder
    events/{year}/{month}/part-*.json # newline-delimited JSON, one folder per month
"""

from __future__ import annotations

import datetime as dt
import re
import string
from dataclasses import dataclass, field
from typing import Literal

Format = Literal["parquet", "csv", "json"]
FORMATS: tuple[Format, ...] = ("parquet", "csv", "json")
"""The landing formats: parquet, CSV, newline-delimited JSON."""

Cadence = Literal["hourly", "daily", "weekly", "monthly"]
CADENCES: tuple[Cadence, ...] = ("hourly", "daily", "weekly", "monthly")

PLACEHOLDERS = ("date", "year", "month", "day", "hour", "key")
"""``{date}`` (YYYY-MM-DD of the partition's start), ``{year}``, ``{month}``, ``{day}``, ``{hour}``
(zero-padded), ``{key}`` (the partition key as Dagster names it)."""

_PLACEHOLDER_PATTERNS = {
    "date": r"\d{4}-\d{2}-\d{2}",
    "year": r"\d{4}",
    "month": r"\d{2}",
    "day": r"\d{2}",
    "hour": r"\d{2}",
    "key": r"[^/]+",
}
# Which placeholders tell the partitions of a cadence apart (any one set suffices).
_DISTINGUISHING: dict[Cadence, tuple[frozenset[str], ...]] = {
    "hourly": (
        frozenset({"key"}),
        frozenset({"date", "hour"}),
        frozenset({"year", "month", "day", "hour"}),
    ),
    "daily": (frozenset({"key"}), frozenset({"date"}), frozenset({"year", "month", "day"})),
    "weekly": (frozenset({"key"}), frozenset({"date"}), frozenset({"year", "month", "day"})),
    "monthly": (frozenset({"key"}), frozenset({"date"}), frozenset({"year", "month"})),
}
_GLOB_CHARS = frozenset("*?[")
_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_.\- ]*")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
"""The suffixes a CSV or JSON landing file's compression is read from (as pyarrow detects it)."""


@dataclass(frozen=True)
class CsvOptions:
    """How a feed's CSV files are written: the field delimiter and whether a header row names
    the columns (otherwise they are in the feed's declared order)."""

    delimiter: str = ","
    header: bool = True


@dataclass(frozen=True)
class LandingLayout:
    """Where a feed's partitions land under the landing root, and in which format.

    Example:
        >>> layout = LandingLayout("shipments/dt={date}/*.csv.gz", format="csv")
        >>> layout.partition_glob(dt.datetime(2026, 11, 2), "2026-11-02")
        'shipments/dt=2026-11-02/*.csv.gz'
    """

    path: str
    format: Format = "parquet"
    csv: CsvOptions = field(default_factory=CsvOptions)

    @classmethod
    def default(cls, feed_name: str) -> LandingLayout:
        """Today's layout: one parquet file per day, ``<feed>/<YYYY-MM-DD>.parquet``."""
        return cls(f"{feed_name}/{{date}}.parquet")

    def placeholders(self) -> frozenset[str]:
        """The placeholders the path uses."""
        return placeholders_of(self.path)

    def partition_glob(self, start: dt.datetime, partition_key: str) -> str:
        """The glob (relative to the landing root) of the files of the partition starting at
        ``start`` and named ``partition_key``.

        Raises:
            InvalidPartitionKeyError: The key could climb out of its folder (``/``, ``..``).
        """
        from upsert_pipeline.landing.errors import InvalidPartitionKeyError

        if "key" in self.placeholders() and (
            not _SAFE_KEY.fullmatch(partition_key) or ".." in partition_key
        ):
            raise InvalidPartitionKeyError(
                f"partition key {partition_key!r} cannot name a landing path"
            )
        return self.path.format(
            date=start.strftime("%Y-%m-%d"),
            year=start.strftime("%Y"),
            month=start.strftime("%m"),
            day=start.strftime("%d"),
            hour=start.strftime("%H"),
            key=partition_key,
        )

    def template_regex(self) -> re.Pattern[str]:
        """Matches a file path (relative to the landing root) of any partition, with one named
        group per placeholder (a placeholder used twice must repeat its value)."""
        pattern, seen = [], set()
        for literal, name, _, _ in string.Formatter().parse(self.path):
            pattern.append(glob_to_regex(literal))
            if name is None:
                continue
            if name in seen:
                pattern.append(f"(?P={name})")
            else:
                seen.add(name)
                pattern.append(f"(?P<{name}>{_PLACEHOLDER_PATTERNS[name]})")
        return re.compile("".join(pattern))

    def search_root(self) -> str:
        """The deepest folder (relative to the landing root) every partition's files lie under."""
        return static_prefix(self.path.split("{", 1)[0])


def placeholders_of(path: str) -> frozenset[str]:
    """The ``{...}`` names in a layout path."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(path) if name is not None)


def missing_placeholder(path: str, cadence: Cadence) -> str | None:
    """What a layout path lacks to tell ``cadence``'s partitions apart, or ``None``.

    Example:
        >>> missing_placeholder("shipments/dt={date}/*.csv", "daily") is None
        True
    """
    try:
        used = placeholders_of(path)
    except ValueError as error:
        return f"the path's braces do not parse ({error}); write placeholders as {{date}}"
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}}; use " + ", ".join(
            f"{{{name}}}" for name in PLACEHOLDERS
        )
    choices = _DISTINGUISHING[cadence]
    if any(choice <= used for choice in choices):
        return None
    first = "{date}" if cadence != "hourly" else "{date} and {hour}"
    alternatives = "; or ".join(
        ", ".join(f"{{{name}}}" for name in sorted(choice, key=PLACEHOLDERS.index))
        for choice in choices[2:] + choices[:1]
    )
    folder, _, name = path.rpartition("/")
    example = (
        f"{folder}/dt={{date}}/{name}"
        if cadence != "hourly"
        else (f"{folder}/dt={{date}}/hour={{hour}}/{name}")
    )
    return (
        f"the path does not tell {cadence} partitions apart: put {first} (or {alternatives}) "
        f"in it, e.g. {example.lstrip('/')!r}"
    )


def glob_to_regex(glob: str) -> str:
    """A glob as a regex: ``*`` and ``?`` stay within one folder, ``**`` crosses folders."""
    out, index = [], 0
    while index < len(glob):
        char = glob[index]
        if glob.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def static_prefix(glob: str) -> str:
    """The folders of ``glob`` before its first wildcard (``a/b/*.csv`` -> ``a/b``)."""
    parts = []
    for part in glob.split("/")[:-1]:
        if _GLOB_CHARS & set(part):
            break
        parts.append(part)
    return "/".join(parts)


def compression_of(path: str) -> str | None:
    """The compression a file's suffix names (``.gz`` -> ``gzip``), or ``None``."""
    for suffix, codec in COMPRESSION_SUFFIXES.items():
        if path.endswith(suffix):
            return codec
    return None
