"""``FeedComponent``: one feed's YAML (``defs/<feed>/defs.yaml``) as its asset, checks, schedule
and landing sensor.

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

import dagster as dg

from upsert_pipeline.assets import build_upsert_asset
from upsert_pipeline.checks.wiring import build_standalone_checks
from upsert_pipeline.feed_spec import FeedSpec
from upsert_pipeline.feeds import COMPONENT_TYPE, feed_attributes
from upsert_pipeline.partitions import feed_partitions
from upsert_pipeline.sensors import build_landing_sensor

__all__ = ["COMPONENT_TYPE", "FeedComponent"]


class FeedComponent(dg.Component, FeedSpec, dg.Resolvable):
    """A landing feed upserted into its own Delta table, with its checks, schedule and sensor.

    Each feed is one ``defs/<feed>/defs.yaml``; forking a feed is copying that folder and editing
    the YAML. Its attributes are ``FeedSpec``'s (``upsert_pipeline.feed_spec``), so
    ``python -m upsert_pipeline.check_defs`` validates them exactly as this component does.
    """

    @classmethod
    def from_yaml_file(cls, path: Path) -> "FeedComponent":
        """The component a ``defs.yaml`` declares, validated as ``dg`` and the loader do."""
        return cls.model_validate(feed_attributes(path))

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
        """The feed's asset and standalone checks and, if it declares a schedule or a landing
        sensor, its job ``ingest_<feed>`` and those."""
        feed = self.feed
        asset = build_upsert_asset(
            feed, freshness_policy=self.freshness_policy(), volume_band=self.volume_band
        )
        checks = build_standalone_checks(feed, self.volume_band)
        if self.schedule is None and self.sensor is None:
            return dg.Definitions(assets=[asset], asset_checks=checks)
        job = dg.define_asset_job(
            f"ingest_{feed.name}",
            selection=dg.AssetSelection.assets(asset) | dg.AssetSelection.checks(*checks),
            partitions_def=feed_partitions(feed.partitions),
            description=f"Upserts one partition's landing files of {feed.name}, then its checks.",
        )
        schedules = []
        if self.schedule is not None:
            hourly = feed.partitions.cadence == "hourly"
            schedules.append(
                dg.build_schedule_from_partitioned_job(
                    job,
                    minute_of_hour=self.schedule.minute_of_hour,
                    hour_of_day=None if hourly else self.schedule.hour_of_day,
                    default_status=dg.DefaultScheduleStatus[self.schedule.default_status],
                )
            )
        sensors = []
        if self.sensor is not None:
            sensors.append(
                build_landing_sensor(
                    feed,
                    job,
                    minimum_interval_seconds=self.sensor.minimum_interval_seconds,
                    default_status=dg.DefaultSensorStatus[self.sensor.default_status],
                )
            )
        return dg.Definitions(
            assets=[asset], asset_checks=checks, jobs=[job], schedules=schedules, sensors=sensors
        )
