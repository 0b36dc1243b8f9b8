"""The whole of a feed's ``defs.yaml`` as a plain pydantic model, without Dagster.

``FeedSpec`` is ``FeedModel`` (columns, keys, partitions, landing) plus what the Dagster layer
builds from the YAML: check thresholds, a schedule, a landing sensor and a freshness policy. The
feed component is this model with ``build_defs``; ``python -m upsert_pipeline.check_defs``
validates every ``defs.yaml`` with it in a fraction of a second, without loading Dagster.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from upsert_pipeline.checks.judges import VolumeBand
from upsert_pipeline.feeds import FeedModel, _Model

_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_CRON_PART = re.compile(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?")


def cron_problem(cron: str) -> str | None:
    """What is wrong with a five-field cron string (numbers, ranges, steps, lists), or ``None``.

    Example:
        >>> cron_problem("0 9 * * *") is None, cron_problem("0 25 * * *")
        (True, 'hour 25 is out of 0-23')
    """
    fields = cron.split()
    if len(fields) != len(_CRON_FIELDS):
        return (
            f"a cron has 5 fields (minute hour day-of-month month day-of-week), not {len(fields)}"
        )
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            match = _CRON_PART.fullmatch(part)
            if not match:
                return f"{name} field {text!r} is not a number, range, list or */step"
            for number in re.findall(r"\d+", match[1]):
                if not low <= int(number) <= high:
                    return f"{name} {number} is out of {low}-{high}"
            if match[2] is not None and int(match[2]) == 0:
                return f"{name} step /0 never fires"
    return None


def _within(
    name: str, value: float, low: float, high: float | None = None, *, open_low: bool = False
) -> None:
    """Refuses ``value`` outside ``[low, high]`` (``(low, high]`` when ``open_low``).

    Bounds are checked by validators rather than ``Field(ge=...)``: Dagster's components resolve
    nested plain models only when their fields are plain types.
    """
    if (value <= low if open_low else value < low) or (high is not None and value > high):
        bound = f"{'>' if open_low else '>='} {low}" + (
            f" and <= {high}" if high is not None else ""
        )
        raise ValueError(f"{name} must be {bound}, not {value}")


class VolumeBandModel(_Model):
    """Thresholds of ``volume_within_history`` (see ``VolumeBand``)."""

    history: int = VolumeBand.history
    min_history: int = VolumeBand.min_history
    k: float = VolumeBand.k
    min_spread_ratio: float = VolumeBand.min_spread_ratio
    min_spread_rows: int = VolumeBand.min_spread_rows
    min_fraction: float = VolumeBand.min_fraction

    @model_validator(mode="after")
    def _bounds(self) -> VolumeBandModel:
        _within("history", self.history, 0, open_low=True)
        _within("min_history", self.min_history, 0)
        _within("k", self.k, 0, open_low=True)
        _within("min_spread_ratio", self.min_spread_ratio, 0)
        _within("min_spread_rows", self.min_spread_rows, 0)
        _within("min_fraction", self.min_fraction, 0, 1)
        return self


class ChecksModel(_Model):
    """The feed's check thresholds."""

    volume: VolumeBandModel = Field(default_factory=VolumeBandModel)


class ScheduleModel(_Model):
    """A schedule that materializes the feed's latest complete partition (for a daily feed: the
    previous day's) at the given minute of each partition's end."""

    hour_of_day: int = Field(default=1, description="Hour of each tick (0-23; not hourly).")
    minute_of_hour: int = Field(default=0, description="Minute of each tick (0-59).")
    default_status: Literal["RUNNING", "STOPPED"] = Field(
        default="STOPPED", description="Whether the schedule runs as soon as it is deployed."
    )

    @model_validator(mode="after")
    def _bounds(self) -> ScheduleModel:
        _within("hour_of_day", self.hour_of_day, 0, 23)
        _within("minute_of_hour", self.minute_of_hour, 0, 59)
        return self


class SensorModel(_Model):
    """A sensor that runs the partitions whose landing files appeared or changed."""

    minimum_interval_seconds: int = Field(
        default=60, description="How often (>= 5 s) the daemon lists the landing folder."
    )
    default_status: Literal["RUNNING", "STOPPED"] = Field(
        default="STOPPED", description="Whether the sensor runs as soon as it is deployed."
    )

    @model_validator(mode="after")
    def _bounds(self) -> SensorModel:
        _within("minimum_interval_seconds", self.minimum_interval_seconds, 5)
        return self


class FreshnessModel(_Model):
    """Dagster's cron freshness policy: evaluated by the daemon, shown in the UI, never a run."""

    deadline_cron: str = Field(description="When the feed must have been materialized by.")
    lower_bound_hours: float = Field(
        description="How long (> 0 hours) before each deadline a materialization counts."
    )
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _bounds(self) -> FreshnessModel:
        _within("lower_bound_hours", self.lower_bound_hours, 0, open_low=True)
        return self

    @field_validator("deadline_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if problem := cron_problem(value):
            raise ValueError(f'deadline_cron {value!r}: {problem}; e.g. "0 9 * * *" (09:00 daily)')
        return value


class FeedSpec(FeedModel):
    """Everything a feed's ``defs.yaml`` may declare."""

    checks: ChecksModel = Field(default_factory=ChecksModel)
    schedule: ScheduleModel | None = None
    sensor: SensorModel | None = None
    freshness: FreshnessModel | None = None

    @property
    def volume_band(self) -> VolumeBand:
        """The thresholds of the feed's volume check."""
        return VolumeBand(**self.checks.volume.model_dump())
