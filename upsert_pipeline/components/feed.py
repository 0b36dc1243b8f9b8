"""``FeedComponent``: one feed's YAML (``defs/<feed>/defs.yaml``) as its asset, checks and schedule.

Example ``defs.yaml``::

    type: upsert_pipeline.components.FeedComponent
    attributes:
      name: refunds
      description: Refunds upserted by refund_id, partitioned by refund_date.
      columns:
        - {name: refund_id, type: int64, nullable: false}
        - {name: refund_date, type: date32, nullable: false}
        - {name: amount, type: "decimal128(12, 2)"}
      keys: [refund_id]
      partition_column: refund_date
"""

from datetime import timedelta
from pathlib import Path
from typing import Literal

import dagster as dg
import pyarrow as pa
import yaml  # type: ignore[import-untyped]
from pydantic import Field, field_validator, model_validator

from upsert_pipeline.assets import build_upsert_asset
from upsert_pipeline.checks.judges import VolumeBand
from upsert_pipeline.checks.wiring import build_standalone_checks
from upsert_pipeline.feeds import Feed, arrow_type
from upsert_pipeline.quality import Expectation, InvalidRuleError, OnFail, parse_rule

COMPONENT_TYPE = "upsert_pipeline.components.FeedComponent"
"""The ``type:`` of a feed's ``defs.yaml``."""


class ColumnModel(dg.Model, dg.Resolvable):
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


class ExpectationModel(dg.Model, dg.Resolvable):
    """A quality rule evaluated on each batch before the merge (see ``upsert_pipeline.quality``).

    A rule that evaluates to NULL passes, as in a SQL ``CHECK`` constraint.
    """

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The rule's name; its asset check is expect_<name>.",
    )
    rule: str = Field(description="A SQL boolean expression over the feed's columns.")
    on_fail: Literal["warn", "drop", "quarantine", "fail"] = Field(
        default="warn",
        description="warn: merge and count; drop: leave the row out; quarantine: leave it out "
        "and write it to <lake>/<feed>__quarantine; fail: refuse the batch.",
    )
    tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Failing fraction tolerated: above it the check fails (and fail refuses).",
    )


class VolumeBandModel(dg.Model, dg.Resolvable):
    """Thresholds of ``volume_within_history`` (see ``VolumeBand``)."""

    history: int = Field(default=VolumeBand.history, gt=0)
    min_history: int = Field(default=VolumeBand.min_history, ge=0)
    k: float = Field(default=VolumeBand.k, gt=0)
    min_spread_ratio: float = Field(default=VolumeBand.min_spread_ratio, ge=0)
    min_spread_rows: int = Field(default=VolumeBand.min_spread_rows, ge=0)
    min_fraction: float = Field(default=VolumeBand.min_fraction, ge=0, le=1)


class ChecksModel(dg.Model, dg.Resolvable):
    """The feed's check thresholds."""

    volume: VolumeBandModel = Field(default_factory=VolumeBandModel)


class ScheduleModel(dg.Model, dg.Resolvable):
    """A daily schedule that materializes the previous day's partition of the feed."""

    hour_of_day: int = Field(default=1, ge=0, le=23, description="UTC hour of each tick.")
    minute_of_hour: int = Field(default=0, ge=0, le=59)
    default_status: Literal["RUNNING", "STOPPED"] = Field(
        default="STOPPED", description="Whether the schedule runs as soon as it is deployed."
    )


class FreshnessModel(dg.Model, dg.Resolvable):
    """Dagster's cron freshness policy: evaluated by the daemon, shown in the UI, never a run."""

    deadline_cron: str = Field(description="When the feed must have been materialized by.")
    lower_bound_hours: float = Field(
        gt=0, description="How long before each deadline a materialization counts."
    )
    timezone: str = "UTC"


class FeedComponent(dg.Component, dg.Model, dg.Resolvable):
    """A daily landing feed upserted into its own Delta table, with its checks and schedule.

    Each feed is one ``defs/<feed>/defs.yaml``; forking a feed is copying that folder and editing
    the YAML.
    """

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The asset, the landing folder <landing>/<name>/, the table <lake>/<name>.",
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
    checks: ChecksModel = Field(default_factory=ChecksModel)
    schedule: ScheduleModel | None = None
    freshness: FreshnessModel | None = None
    expectations: list[ExpectationModel] = Field(
        default_factory=list, description="Quality rules evaluated on each batch before the merge."
    )

    @model_validator(mode="after")
    def _columns_cover_keys_and_partition(self) -> "FeedComponent":
        names = [column.name for column in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in {names}")
        missing = [key for key in self.keys if key not in names]
        if self.partition_column is not None and self.partition_column not in names:
            missing.append(self.partition_column)
        if missing:
            raise ValueError(f"keys / partition_column {missing} are not among the columns")
        return self

    @model_validator(mode="after")
    def _expectations_parse(self) -> "FeedComponent":
        names = [expectation.name for expectation in self.expectations]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate expectation names in {names}")
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

    @classmethod
    def from_yaml_file(cls, path: Path) -> "FeedComponent":
        """The component a ``defs.yaml`` declares, validated as ``dg`` and the loader do."""
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict) or document.get("type") != COMPONENT_TYPE:
            raise ValueError(f"{path} does not declare a {COMPONENT_TYPE}")
        return cls.model_validate(document.get("attributes") or {})

    @property
    def feed(self) -> Feed:
        """The typed spec the rest of the package works with."""
        return Feed(
            name=self.name,
            schema=self._schema(),
            keys=tuple(self.keys),
            partition_column=self.partition_column,
            description=self.description,
            evolve_schema=self.evolve_schema,
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

    @property
    def volume_band(self) -> VolumeBand:
        """The thresholds of the feed's volume check."""
        return VolumeBand(**self.checks.volume.model_dump())

    def freshness_policy(self) -> dg.FreshnessPolicy | None:
        """The feed's freshness policy, if it declares one."""
        if self.freshness is None:
            return None
        return dg.FreshnessPolicy.cron(
            deadline_cron=self.freshness.deadline_cron,
            lower_bound_delta=timedelta(hours=self.freshness.lower_bound_hours),
            timezone=self.freshness.timezone,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The feed's asset, its standalone checks and, if declared, its daily job and schedule."""
        feed = self.feed
        asset = build_upsert_asset(feed, freshness_policy=self.freshness_policy())
        checks = build_standalone_checks(feed, self.volume_band)
        if self.schedule is None:
            return dg.Definitions(assets=[asset], asset_checks=checks)
        job = dg.define_asset_job(
            f"ingest_{feed.name}",
            selection=dg.AssetSelection.assets(asset) | dg.AssetSelection.checks(*checks),
            description=f"Upserts one day's landing batch of {feed.name}, then runs its checks.",
        )
        schedule = dg.build_schedule_from_partitioned_job(
            job,
            hour_of_day=self.schedule.hour_of_day,
            minute_of_hour=self.schedule.minute_of_hour,
            default_status=dg.DefaultScheduleStatus[self.schedule.default_status],
        )
        return dg.Definitions(assets=[asset], asset_checks=checks, jobs=[job], schedules=[schedule])
