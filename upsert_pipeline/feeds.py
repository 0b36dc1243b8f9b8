"""The feeds: what lands, with which schema, and how it is keyed and partitioned in the lake.

A feed is declared in one YAML file, ``upsert_pipeline/defs/<feed>/defs.yaml``, which the feed
component (``upsert_pipeline.components``) resolves to a ``Feed``. This module holds that typed
spec, the column-type names the YAML uses, and ``load_feed`` for plain-Python callers (the
sample-data generator, the ``upsert`` API, tests). ``ORDERS`` and ``CUSTOMERS`` are loaded from
the YAML files on first use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import yaml  # type: ignore[import-untyped]

from upsert_pipeline.quality import Expectation

DEFS_DIR = Path(__file__).resolve().parent / "defs"
"""The defs folder: one sub-folder per feed, each with its ``defs.yaml``."""

_SIMPLE_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "binary": pa.binary(),
    "date32": pa.date32(),
    "date32[day]": pa.date32(),
}
_DECIMAL = re.compile(r"decimal128\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:,\s*tz=([\w/+\-:]+))?\]")

COLUMN_TYPES = (*_SIMPLE_TYPES, "decimal128(<precision>, <scale>)", "timestamp[<unit>, tz=<zone>]")
"""The column type names a feed's YAML may use (Arrow's own spelling, as ``str(type)`` prints)."""


class UnknownColumnTypeError(ValueError):
    """A feed declares a column type this project cannot map to an Arrow type."""


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type a feed's YAML names, spelled as Arrow prints it.

    Example:
        >>> arrow_type("decimal128(12, 2)"), arrow_type("timestamp[us, tz=UTC]")
        (Decimal128Type(decimal128(12, 2)), TimestampType(timestamp[us, tz=UTC]))

    Raises:
        UnknownColumnTypeError: Not one of ``COLUMN_TYPES``.
    """
    text = name.strip()
    if text in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[text]
    if match := _DECIMAL.fullmatch(text):
        return pa.decimal128(int(match[1]), int(match[2]))
    if match := _TIMESTAMP.fullmatch(text):
        return pa.timestamp(match[1], tz=match[2])
    raise UnknownColumnTypeError(
        f"unknown column type {name!r}; use one of: {', '.join(COLUMN_TYPES)}"
    )


@dataclass(frozen=True)
class Feed:
    """A daily landing feed upserted into one Delta table.

    Attributes:
        name: The asset name, the landing folder (``<landing>/<name>/<YYYY-MM-DD>.parquet``) and
            the table's folder in the lake (``<lake>/<name>``).
        schema: The columns every landing batch must carry, with their types.
        keys: The merge key columns.
        partition_column: The date column the table is partitioned by and every row's value of
            which must equal the partition's day; ``None`` for an unpartitioned table (each daily
            batch then upserts into the whole table).
        description: Shown in the Dagster UI.
        evolve_schema: Whether a batch may bring new (nullable) columns, which the merge then
            adds to the table; otherwise such a batch is refused.
        expectations: Quality rules evaluated on each batch before the merge
            (``upsert_pipeline.quality``).
    """

    name: str
    schema: pa.Schema
    keys: tuple[str, ...]
    partition_column: str | None
    description: str
    evolve_schema: bool = True
    expectations: tuple[Expectation, ...] = ()


def feed_yaml(name: str, *, defs_dir: Path = DEFS_DIR) -> Path:
    """The ``defs.yaml`` that declares the feed ``name``."""
    return defs_dir / name / "defs.yaml"


def load_feed(name: str, *, defs_dir: Path = DEFS_DIR) -> Feed:
    """The feed declared in ``<defs_dir>/<name>/defs.yaml``, validated as the component loads it.

    Example:
        >>> load_feed("orders").keys
        ('order_id',)

    Raises:
        FileNotFoundError: No such feed folder.
    """
    from upsert_pipeline.components.feed import FeedComponent

    path = feed_yaml(name, defs_dir=defs_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no feed {name!r}: {path} does not exist")
    return FeedComponent.from_yaml_file(path).feed


def feed_names(*, defs_dir: Path = DEFS_DIR) -> tuple[str, ...]:
    """The feeds of the defs folder: every sub-folder whose ``defs.yaml`` declares a
    ``FeedComponent`` (not, say, an observed table), sorted."""
    from upsert_pipeline.components.feed import COMPONENT_TYPE

    return tuple(
        sorted(
            path.parent.name
            for path in defs_dir.glob("*/defs.yaml")
            if (yaml.safe_load(path.read_text()) or {}).get("type") == COMPONENT_TYPE
        )
    )


ORDERS: Feed
CUSTOMERS: Feed


def __getattr__(name: str) -> object:
    """``ORDERS`` and ``CUSTOMERS``, loaded from their YAML on first use."""
    if name == "ORDERS":
        value: object = load_feed("orders")
    elif name == "CUSTOMERS":
        value = load_feed("customers")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
