"""The partitions every asset of the code location shares: one per day of landed data."""

import dagster as dg

START_DATE = "2026-11-01"
"""The first day with a landing batch."""

daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE)
