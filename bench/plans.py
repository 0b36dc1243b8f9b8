"""What ``make bench`` measures (``FULL``) and what the test's quick mode measures (``QUICK``)."""

from dataclasses import dataclass

from bench.backfill import BackfillPlan
from bench.base_table import BatchPlan
from bench.count_cost import CountPlan
from bench.data import TableSpec
from bench.remote import RemotePlan

DAYS = 20
"""Partitions of every count-cost table: a partition holds 5% of the rows."""


@dataclass(frozen=True)
class Plan:
    """Every section's plan.

    Attributes:
        name: ``"full"`` or ``"quick"``.
        count_tables: Section 1's tables, each built, measured and deleted in turn.
        count: How section 1 measures each table.
        overhead: Section 2's base tables and batches, by shape.
        overhead_repeats: Runs of each path in section 2.
        integration: Section 3's base table and batch.
        integration_repeats: Runs of each integration in section 3.
        backfill: Section 4.
        remote: Section 5, one plan per added latency.
    """

    name: str
    count_tables: tuple[TableSpec, ...]
    count: CountPlan
    overhead: tuple[BatchPlan, ...]
    overhead_repeats: int
    integration: BatchPlan
    integration_repeats: int
    backfill: BackfillPlan
    remote: tuple[RemotePlan, ...]


def _grid(feed: str, rows: tuple[int, ...], files: tuple[int, ...], days: int) -> list[TableSpec]:
    return [TableSpec(feed, r, f, days) for r in rows for f in files]


_M = 1_000_000
_ORDERS_10M = TableSpec("orders", 10 * _M, 1000, DAYS)
_WIDE_10M = TableSpec("wide", 10 * _M, 1000, DAYS)

FULL = Plan(
    name="full",
    count_tables=tuple(
        _grid("orders", (_M, 10 * _M, 50 * _M), (100, 1000, 10_000), DAYS)
        + _grid("wide", (_M, 10 * _M), (100, 1000, 10_000), DAYS)
    ),
    count=CountPlan(rounds=3, repeats=2, updates=5000, inserts=5000),
    overhead=(
        BatchPlan(_ORDERS_10M, updates=50_000, inserts=50_000),
        BatchPlan(_WIDE_10M, updates=50_000, inserts=50_000),
    ),
    overhead_repeats=5,
    integration=BatchPlan(_ORDERS_10M, updates=50_000, inserts=50_000),
    integration_repeats=5,
    backfill=BackfillPlan(
        "orders", partitions=30, rows_per_partition=200_000, workers=2, repeats=5
    ),
    remote=(
        RemotePlan(
            specs=(TableSpec("orders", _M, 1000, DAYS),),
            count=CountPlan(rounds=2, repeats=1, updates=5000, inserts=5000, memory=False),
            delay_ms=0,
            lifetime_s=1800,
        ),
        RemotePlan(
            specs=(
                TableSpec("orders", _M, 100, DAYS),
                TableSpec("orders", _M, 1000, DAYS),
                TableSpec("orders", 10 * _M, 1000, DAYS),
                TableSpec("orders", _M, 10_000, DAYS),
            ),
            count=CountPlan(rounds=2, repeats=1, updates=5000, inserts=5000),
            delay_ms=20,
            lifetime_s=5400,
        ),
    ),
)

_QUICK_BASE = TableSpec("orders", 20_000, 20, 4)

QUICK = Plan(
    name="quick",
    count_tables=(
        TableSpec("orders", 20_000, 20, 4),
        TableSpec("orders", 20_000, 40, 4),
        TableSpec("wide", 20_000, 20, 4),
    ),
    count=CountPlan(rounds=2, repeats=2, updates=500, inserts=500),
    overhead=(BatchPlan(_QUICK_BASE, updates=500, inserts=500),),
    overhead_repeats=2,
    integration=BatchPlan(_QUICK_BASE, updates=500, inserts=500),
    integration_repeats=1,
    backfill=BackfillPlan("orders", partitions=4, rows_per_partition=2000, workers=2, repeats=1),
    remote=(
        RemotePlan(
            specs=(TableSpec("orders", 20_000, 20, 4),),
            count=CountPlan(rounds=1, repeats=1, updates=500, inserts=500, memory=False),
            delay_ms=5,
            lifetime_s=120,
        ),
    ),
)

MEMORY_IN_QUICK = 1
"""The quick mode measures peak memory for its first count table only (a process per path)."""
