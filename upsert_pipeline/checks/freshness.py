"""Freshness: whether each feed's latest due partition was materialized by its deadline.

Judged by its own job and schedule (``check_freshness``), never in a materialization's run.
"""

import warnings
from collections.abc import Sequence

import dagster as dg

FRESHNESS_DEADLINE_CRON = "0 9 * * *"
"""Yesterday's partition is expected to be materialized by 09:00 UTC."""


def build_freshness_checks(asset_names: Sequence[str]) -> Sequence[dg.AssetChecksDefinition]:
    """Dagster's own time-partition freshness checks of the named assets."""
    with warnings.catch_warnings():
        # Superseded by FreshnessPolicy, which the daemon judges per asset from its latest
        # materialization; this check judges what a daily-partitioned table needs: that the latest
        # due partition was materialized by the deadline.
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_time_partition_freshness_checks(
            assets=list(asset_names), deadline_cron=FRESHNESS_DEADLINE_CRON
        )
