"""The feeds: what lands, with which schema, and how it is keyed and partitioned in the lake.

A feed is declared in one YAML file, ``upsert_pipeline/defs/<feed>/defs.yaml``. This module holds
the typed ``Feed``, the column-type names the YAML uses, the pydantic model of the YAML's feed
attributes (``FeedModel``: columns, keys, partitions, landing; the feed component extends it with
checks, schedule, sensor and freshness) and ``load_feed`` for plain-Python callers (the
sample-data generator, the ``upsert`` API, tests). It imports nothing above it: no Dagster, no
component. ``ORDERS`` and ``CUSTOMERS`` are loaded from the YAML files on first use.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from upsert_pipeline.landing.layout import (
    Cadence,
    CsvOptions,
    LandingLayout,
    missing_placeholder,
)
from upsert_pipeline.quality import Expectation, InvalidRuleError, OnFail, parse_rule

COMPONENT_TYPE = "upsert_pipeline.components.FeedComponent"
"""The ``type:`` of a feed's ``defs.yaml``."""

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
class Partitioning:
    """A feed's time partitions: from ``start`` (wall time in ``timezone``), one per ``cadence``.

    Example:
        >>> Partitioning(dt.datetime(2019, 1, 1), "monthly").cadence
        'monthly'
    """

    start: dt.datetime
    cadence: Cadence = "daily"
    timezone: str = "UTC"


DEFAULT_START = "2026-11-01"
"""The start of a feed's partitions when its YAML names none (the sample data's first day)."""
DEFAULT_PARTITIONING = Partitioning(dt.datetime.fromisoformat(DEFAULT_START))
"""Daily partitions in UTC from ``DEFAULT_START``: what a feed without ``partitions:`` gets."""


@dataclass(frozen=True)
class Feed:
    """A landing feed upserted, one partition at a time, into one Delta table.

    Attributes:
        name: The asset name and the table's folder in the lake (``<lake>/<name>``).
        schema: The columns every landing batch must carry, with their types.
        keys: The merge key columns.
        partition_column: The column the table is partitioned by and every row's value of
            which must equal the start of its partition: a date32 (the day, the week's first
            day, the month's first) or, for hourly partitions, a timestamp[us, tz=UTC] (the
            hour's start in UTC) or naive timestamp[us] (the same, without a zone); ``None`` for
            an unpartitioned table (each partition's batch then upserts into the whole table).
        description: Shown in the Dagster UI.
        evolve_schema: Whether a batch may bring new (nullable) columns, which the merge then
            adds to the table; otherwise such a batch is refused.
        landing: Where its partitions' files land and in which format; ``None`` for the
            default, ``<landing>/<name>/<YYYY-MM-DD>.parquet`` (see ``layout``).
        partitions: Its partitions' start, cadence and timezone.
        expectations: Quality rules evaluated on each batch before the merge
            (``upsert_pipeline.quality``).
    """

    name: str
    schema: pa.Schema
    keys: tuple[str, ...]
    partition_column: str | None
    description: str
    evolve_schema: bool = True
    landing: LandingLayout | None = None
    partitions: Partitioning = field(default=DEFAULT_PARTITIONING)
    expectations: tuple[Expectation, ...] = ()

    @property
    def layout(self) -> LandingLayout:
        """The feed's landing layout: its declared one, else ``<name>/{date}.parquet``."""
        return self.landing or LandingLayout.default(self.name)


class _Model(BaseModel):
    """A YAML mapping: unknown attributes are refused (a typo is never silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class ColumnModel(_Model):
    """One column every landing batch of the feed carries."""

    name: str = Field(description="The column name.")
    type: str = Field(
        description=(
            "Its Arrow type as Arrow prints it: int64, string, date32, double, bool, "
            "decimal128(12, 2), timestamp[us, tz=UTC], ..."
        )
    )
    nullable: bool = Field(default=True, description="Whether the column may hold nulls.")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        arrow_type(value)  # raises UnknownColumnTypeError (a ValueError) naming the choices
        return value


class CsvModel(_Model):
    """How a CSV feed's files are written."""

    delimiter: str = Field(default=",", description="One character, e.g. ',' ';' '|'.")
    header: bool = Field(default=True, description="Whether the first line names the columns.")

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError(f'delimiter {value!r} must be one character, e.g. delimiter: ";"')
        return value


class LandingModel(_Model):
    """Where the feed's partitions land under the landing root, and in which format."""

    path: str | None = Field(
        default=None,
        description=(
            "A glob under the landing root with {date} {year} {month} {day} {hour} {key}; "
            "default <name>/{date}.parquet."
        ),
    )
    format: Literal["parquet", "csv", "json"] = Field(
        default="parquet", description="parquet | csv | json (newline-delimited)."
    )
    csv: CsvModel | None = Field(default=None, description="CSV options (format: csv only).")

    @model_validator(mode="after")
    def _csv_only_for_csv(self) -> LandingModel:
        if self.csv is not None and self.format != "csv":
            raise ValueError(f"csv: options are for format: csv, not format: {self.format}")
        return self


class PartitionsModel(_Model):
    """The feed's time partitions."""

    start: str = Field(
        default=DEFAULT_START,
        description="The first partition's start: 2019-01-01 (or 2019-01-01 06:00 for hourly).",
    )
    cadence: Literal["hourly", "daily", "weekly", "monthly"] = Field(default="daily")
    timezone: str = Field(default="UTC", description="An IANA zone, e.g. Europe/Berlin.")

    @field_validator("start")
    @classmethod
    def _start_is_a_date(cls, value: str) -> str:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"start {value!r} is not a date: write it as YYYY-MM-DD, e.g. start: "
                '"2019-01-01" (or "2019-01-01 06:00" for hourly partitions)'
            ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}: use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return value

    def partitioning(self) -> Partitioning:
        """The typed partitions."""
        start = dt.datetime.fromisoformat(self.start).replace(tzinfo=None)
        return Partitioning(start=start, cadence=self.cadence, timezone=self.timezone)


HOURLY_PARTITION_TYPES = ("timestamp[us, tz=UTC]", "timestamp[us,tz=UTC]", "timestamp[us]")
"""The partition column types of an hourly feed: the hour's start in UTC (Delta Lake stores a
timezone-aware timestamp's partition values in UTC), with or without the zone."""


def cross_field_problems(
    *,
    name: str,
    columns: dict[str, str],
    column_names: list[str],
    keys: list[str],
    partition_column: str | None,
    cadence: Cadence,
    landing_path: str | None,
) -> list[str]:
    """What is inconsistent between a feed's attributes, one message per mistake, each starting
    with the attribute it is about (``keys``, ``partition_column``, ``landing path``).

    ``FeedModel`` raises them; ``check_defs`` also asks for them when other attributes are
    invalid too, so one run of the checker names every mistake.
    """
    problems = []
    if len(set(column_names)) != len(column_names):
        problems.append(f"columns have duplicate names: {column_names}")
    missing = [key for key in keys if key not in columns]
    if missing:
        problems.append(
            f"keys {missing} are not among the columns; declare them under columns: or pick keys "
            f"from {column_names}"
        )
    if partition_column is not None:
        if partition_column not in columns:
            problems.append(
                f"partition_column {partition_column!r} is not among the columns; use one of "
                f"{column_names} (a date32 column) or null for an unpartitioned table"
            )
        elif cadence == "hourly":
            if columns[partition_column] not in HOURLY_PARTITION_TYPES:
                problems.append(
                    f"partition_column {partition_column!r} is {columns[partition_column]}; it "
                    "holds each hour's start, so declare it type: timestamp[us, tz=UTC] (or "
                    "timestamp[us] for the same instant without a zone)"
                )
        elif columns[partition_column] not in ("date32", "date32[day]"):
            problems.append(
                f"partition_column {partition_column!r} is {columns[partition_column]}; it holds "
                f"each partition's start day, so declare it type: date32 (a timestamp[us, tz=UTC] "
                f"column partitions hourly feeds only)"
            )
    path = landing_path or f"{name}/{{date}}.parquet"
    if problem := missing_placeholder(path, cadence):
        problems.append(f"landing path {path!r}: {problem}")
    return problems


class ExpectationModel(_Model):
    """A quality rule evaluated on each batch before the merge (see ``upsert_pipeline.quality``).

    A rule that evaluates to NULL passes, as in a SQL ``CHECK`` constraint.
    """

    name: str = Field(description="The rule's name; its asset check is expect_<name>.")
    rule: str = Field(description="A SQL boolean expression over the feed's columns.")
    on_fail: Literal["warn", "drop", "quarantine", "fail"] = Field(
        default="warn",
        description="warn: merge and count; drop: leave the row out; quarantine: leave it out "
        "and write it to <lake>/<feed>__quarantine; fail: refuse the batch.",
    )
    tolerance: float = Field(
        default=0.0,
        description="Failing fraction tolerated (0 to 1): above it the check fails (and fail "
        "refuses).",
    )

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(
                f"expectation name {value!r} must be an identifier (letters, digits, _), e.g. "
                "name: non_negative_amount"
            )
        return value

    @field_validator("tolerance")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"tolerance {value} must be a fraction from 0 to 1, e.g. 0.01")
        return value


class FeedModel(_Model):
    """The feed attributes of a ``defs.yaml``: what lands, how it is keyed and partitioned."""

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The asset and the table <lake>/<name>; by default its landing folder.",
    )
    description: str = Field(description="Shown in the Dagster UI.")
    columns: list[ColumnModel] = Field(min_length=1, description="What every batch carries.")
    keys: list[str] = Field(min_length=1, description="The merge key columns.")
    partition_column: str | None = Field(
        default=None,
        description="The date column the table is partitioned by; null for an unpartitioned table.",
    )
    evolve_schema: bool = Field(
        default=True, description="Whether a batch may add (nullable) columns to the table."
    )
    landing: LandingModel = Field(default_factory=LandingModel)
    partitions: PartitionsModel = Field(default_factory=PartitionsModel)
    expectations: list[ExpectationModel] = Field(
        default_factory=list, description="Quality rules evaluated on each batch before the merge."
    )

    @model_validator(mode="after")
    def _columns_cover_keys_and_partition(self) -> FeedModel:
        problems = cross_field_problems(
            name=self.name,
            columns={column.name: column.type for column in self.columns},
            column_names=[column.name for column in self.columns],
            keys=self.keys,
            partition_column=self.partition_column,
            cadence=self.partitions.cadence,
            landing_path=self.landing.path,
        )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _expectations_parse(self) -> FeedModel:
        names = [expectation.name for expectation in self.expectations]
        if len(set(names)) != len(names):
            raise ValueError(f"expectations: duplicate names in {names}")
        schema = self._schema()
        for expectation in self.expectations:
            try:
                parse_rule(expectation.rule, schema)
            except InvalidRuleError as error:
                raise ValueError(f"expectation {expectation.name!r}: {error}") from error
        return self

    def _schema(self) -> pa.Schema:
        return pa.schema(
            [
                pa.field(column.name, arrow_type(column.type), nullable=column.nullable)
                for column in self.columns
            ]
        )

    @property
    def feed(self) -> Feed:
        """The typed spec the rest of the package works with."""
        schema = self._schema()
        landing = None
        if self.landing != LandingModel():
            csv = self.landing.csv or CsvModel()
            landing = LandingLayout(
                path=self.landing.path or f"{self.name}/{{date}}.parquet",
                format=self.landing.format,
                csv=CsvOptions(delimiter=csv.delimiter, header=csv.header),
            )
        return Feed(
            name=self.name,
            schema=schema,
            keys=tuple(self.keys),
            partition_column=self.partition_column,
            description=self.description,
            evolve_schema=self.evolve_schema,
            landing=landing,
            partitions=self.partitions.partitioning(),
            expectations=tuple(
                Expectation(
                    name=expectation.name,
                    rule=expectation.rule,
                    on_fail=OnFail(expectation.on_fail),
                    tolerance=expectation.tolerance,
                )
                for expectation in self.expectations
            ),
        )


def feed_attributes(path: Path) -> dict[str, Any]:
    """The ``attributes:`` of a feed's ``defs.yaml``.

    Raises:
        ValueError: The file does not declare a feed component.
    """
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or document.get("type") != COMPONENT_TYPE:
        raise ValueError(f"{path} does not declare a {COMPONENT_TYPE}")
    attributes = document.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ValueError(f"{path}: attributes: must be a mapping")
    return attributes


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
    path = feed_yaml(name, defs_dir=defs_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no feed {name!r}: {path} does not exist")
    attributes = feed_attributes(path)
    # The feed's own attributes; checks, schedule, sensor and freshness are the component's.
    return FeedModel.model_validate(
        {key: value for key, value in attributes.items() if key in FeedModel.model_fields}
    ).feed


def feed_names(*, defs_dir: Path = DEFS_DIR) -> tuple[str, ...]:
    """The feeds of the defs folder: every sub-folder whose ``defs.yaml`` declares a
    ``FeedComponent`` (not, say, an observed table), sorted."""
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
