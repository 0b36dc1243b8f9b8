"""A base table built once, and fresh copies of it for every run that changes it.

Comparing two writes needs them to start from the same table. Copying the folder (untimed)
before each run gives every method the same files, the same log and a warm page cache alike.
"""

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from bench.assets import write_landing
from bench.data import FEEDS, TableSpec, build_table, day, upsert_batch
from upsert_pipeline.feeds import Feed


@dataclass(frozen=True)
class BatchPlan:
    """The re-delivery upserted into one partition of the base table.

    Attributes:
        spec: The base table.
        updates: Rows of the partition that the batch changes (its newest ones).
        inserts: New rows in the batch.
        day_index: The partition.
    """

    spec: TableSpec
    updates: int
    inserts: int
    day_index: int = 0


@dataclass
class BaseTable:
    """A built base table, the batch for it, and where that batch has landed."""

    plan: BatchPlan
    root: Path
    batch: pa.Table
    _copies: itertools.count  # type: ignore[type-arg]

    @property
    def feed(self) -> Feed:
        """The shape of the table."""
        return FEEDS[self.plan.spec.feed]

    @property
    def source(self) -> Path:
        """The base table's folder (never written to after it is built)."""
        return self.root / "base" / self.feed.name

    @property
    def landing(self) -> Path:
        """The landing root holding the batch."""
        return self.root / "landing"

    @property
    def partition_key(self) -> str:
        """The Dagster partition key of the batch's day."""
        return day(self.plan.day_index).isoformat()

    def fresh_lake(self, *, subfolder: str = "") -> Path:
        """A new lake root holding a copy of the base table at ``<root>/<subfolder>/<feed>``."""
        lake = self.root / f"lake_{next(self._copies)}"
        shutil.copytree(self.source, lake / subfolder / self.feed.name)
        return lake

    @staticmethod
    def discard(lake: Path) -> None:
        """Removes a copy once measured."""
        shutil.rmtree(lake, ignore_errors=True)


def prepare(root: Path, plan: BatchPlan, *, reuse: bool = False) -> BaseTable:
    """Builds the base table under ``root`` and lands the batch for ``plan.day_index``.

    With ``reuse``, a base table already built there (by an earlier call with the same plan) is
    kept instead of being built again; the batch is derived from the plan alone, so it is the
    same.
    """
    spec = plan.spec
    base = BaseTable(plan=plan, root=root, batch=pa.table({}), _copies=itertools.count())
    if not (reuse and (base.source / "_delta_log").is_dir()):
        build_table(str(base.source), spec)
    base.batch = upsert_batch(
        spec,
        plan.day_index,
        updates=plan.updates,
        inserts=plan.inserts,
        first_new_id=spec.rows,
        seed=7,
    )
    write_landing(base.landing, base.feed, base.partition_key, base.batch)
    return base
