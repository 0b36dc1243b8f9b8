"""Section 10: what profiles and expectations add to a 50,000-row merge, and what a scan costs.

Two paths run alternately (ABAB, rotating start), each on its own fresh copy of the same base
table with the same 50,000-row batch:

- ``upsert``: the project's ``upsert`` alone.
- ``upsert_with_facts``: the feed's expectations counted on the batch in memory, the ``upsert``
  of what they keep with ``profile=True`` (the partition's and the table's profile from the
  committed snapshot's add actions, in memory), then the commit's files and bytes from its
  commit file: what ``_merge`` adds around the upsert.

After each ``upsert_with_facts``, on the same copy and version, the two ways to a profile are
timed one after the other (alternating which goes first): ``log_profile`` (``read_profiles``,
no data file) and ``scan_profile`` (a polars scan computing the same null counts, minimums and
maximums for the partition and the table). Their figures are compared, so the scan is the same
profile, not a cheaper one.

``python -m bench.beyond_counts --root /tmp/bench_beyond --plan issue12 --rounds 7`` (see
BENCHMARKS.md).
"""

import argparse
import datetime as dt
import json
import statistics
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

import upsert_pipeline.delta.merge as merge_module
from bench.base_table import BaseTable, BatchPlan, prepare
from bench.data import TableSpec, day
from bench.overhead import MERGE_OVERHEAD
from bench.timing import Samples, ratio, rotated, timed
from upsert_pipeline.delta import UpsertResult, upsert
from upsert_pipeline.delta.commit_files import read_commit_files
from upsert_pipeline.delta.profile import Exactness, Profile, read_profiles
from upsert_pipeline.feeds import load_feed
from upsert_pipeline.quality import Expectation, OnFail, evaluate_expectations

PLANS = {
    "issue12": MERGE_OVERHEAD,
    "small": BatchPlan(TableSpec("orders", 1_000_000, 200, 20), updates=25_000, inserts=25_000),
}
"""The 50,000-row batch (25,000 changed rows, 25,000 new) of section 6 (``issue12``: into one
partition of a 5M-row, 1,000-file table, 20 partitions of 50 files) and the same batch into a
smaller partition (``small``: 1M rows, 200 files, 20 partitions of 10), where the merge is
quicker and what is added around it weighs more."""

EXPECTATIONS = (
    *load_feed("orders").expectations,
    Expectation(name="customer_known", rule="customer_id IS NOT NULL", on_fail=OnFail.WARN),
    Expectation(name="recent", rule="date_part('year', updated_at) >= 2020", on_fail=OnFail.WARN),
)
"""The orders YAML's rules (a ``drop`` and a ``warn``) and two more."""


def _scope(base: BaseTable) -> dict[str, dt.date]:
    return {base.feed.partition_column or "": day(base.plan.day_index)}


def plain_upsert(uri: str, base: BaseTable) -> UpsertResult:
    """The ``upsert`` alone."""
    return upsert(uri, base.batch, keys=base.feed.keys, partition=_scope(base))


STEPS: dict[str, list[float]] = {"expectations": [], "profile": [], "commit_files": []}
"""Seconds of each step ``upsert_with_facts`` adds, per run: the steadier figure on a noisy
machine, since it does not carry the merge's own variation."""


_PROFILER = "snapshot_profiles"
"""What ``upsert`` calls to profile (timed by wrapping it for the run)."""


def upsert_with_facts(uri: str, base: BaseTable) -> tuple[UpsertResult, int]:
    """Expectations, the ``upsert`` of what they keep, the profile and the commit's files."""
    spent, quality = timed(
        lambda: evaluate_expectations(
            base.batch, EXPECTATIONS, feed=base.feed.name, partition=base.partition_key
        )
    )
    STEPS["expectations"].append(spent)
    profile_seconds: list[float] = []
    profiles = getattr(merge_module, _PROFILER)

    def timed_profiles(*args: Any, **kwargs: Any) -> Any:
        seconds, value = timed(lambda: profiles(*args, **kwargs))
        profile_seconds.append(seconds)
        return value

    setattr(merge_module, _PROFILER, timed_profiles)
    try:
        result = upsert(
            uri, quality.kept, keys=base.feed.keys, partition=_scope(base), profile=True
        )
    finally:
        setattr(merge_module, _PROFILER, profiles)
    STEPS["profile"].append(sum(profile_seconds))
    assert len(result.profiles) == 2
    spent, _files = timed(lambda: read_commit_files(uri, result.version))
    STEPS["commit_files"].append(spent)
    return result, quality.kept.num_rows


def scan_profile(uri: str, base: BaseTable) -> dict[str, tuple[int, Any, Any]]:
    """The same profile by a scan: each column's nulls, minimum and maximum in the partition and
    in the table, by label (``partition/<column>``, ``table/<column>``)."""
    column = base.feed.partition_column or ""
    names = base.feed.schema.names
    aggregates = [
        expression
        for name in names
        for expression in (
            pl.col(name).null_count().alias(f"{name}/nulls"),
            pl.col(name).min().alias(f"{name}/min"),
            pl.col(name).max().alias(f"{name}/max"),
        )
    ]
    frame = pl.scan_delta(uri)
    scopes = {
        "partition": frame.filter(pl.col(column) == day(base.plan.day_index)),
        "table": frame,
    }
    profile: dict[str, tuple[int, Any, Any]] = {}
    for scope, scoped in scopes.items():
        row = scoped.select(aggregates).collect().row(0, named=True)
        for name in names:
            profile[f"{scope}/{name}"] = (
                row[f"{name}/nulls"],
                row[f"{name}/min"],
                row[f"{name}/max"],
            )
    return profile


def log_profile(uri: str, base: BaseTable) -> dict[str, tuple[int, Any, Any]]:
    """The profile from the log, in ``scan_profile``'s shape (exact figures only)."""
    partition, table = read_profiles(uri, [_scope(base), None])
    return {**_flat("partition", partition), **_flat("table", table)}


def _flat(scope: str, profile: Profile) -> dict[str, tuple[int, Any, Any]]:
    flat = {}
    for column in profile.columns:
        assert column.nulls is Exactness.EXACT and column.min_max is Exactness.EXACT, column
        assert column.null_count is not None
        flat[f"{scope}/{column.column}"] = (column.null_count, column.min, column.max)
    return flat


def run(base: BaseTable, *, rounds: int) -> dict[str, Any]:
    """The two merge paths ABAB, and the two profiles after each ``upsert_with_facts``."""
    paths = {"upsert": plain_upsert, "upsert_with_facts": upsert_with_facts}
    samples = {name: Samples() for name in (*paths, "log_profile", "scan_profile")}
    for steps in STEPS.values():
        steps.clear()
    for round_index in range(rounds + 1):  # round 0 is an untimed warm-up
        for name in rotated(list(paths), round_index):
            lake = base.fresh_lake()
            uri = str(lake / base.feed.name)
            try:
                seconds, value = timed(partial(paths[name], uri, base))
                if round_index:
                    samples[name].seconds.append(seconds)
                    samples[name].values.append(value)
                if name == "upsert_with_facts":
                    order = rotated(["log_profile", "scan_profile"], round_index)
                    profiles = {}
                    for how in order:
                        function = log_profile if how == "log_profile" else scan_profile
                        spent, profiles[how] = timed(partial(function, uri, base))
                        if round_index:
                            samples[how].seconds.append(spent)
                    assert profiles["log_profile"] == profiles["scan_profile"], "profiles differ"
            finally:
                base.discard(lake)
    plain = samples["upsert"].values[-1]
    facts, kept = samples["upsert_with_facts"].values[-1]
    assert (plain.inserted, plain.updated) == (facts.inserted, facts.updated)
    assert kept == base.batch.num_rows, "the bench batch is meant to pass every rule"
    per_round = [
        f / u
        for f, u in zip(
            samples["upsert_with_facts"].seconds, samples["upsert"].seconds, strict=True
        )
    ]
    steps_ms = {name: 1000 * statistics.median(seconds[1:]) for name, seconds in STEPS.items()}
    added_ms = sum(steps_ms.values())
    return {
        "steps_ms": steps_ms,
        "added_steps_ms": added_ms,
        "added_steps_vs_upsert": (added_ms / 1000) / samples["upsert"].median,
        "plan": asdict(base.plan),
        "batch_rows": base.batch.num_rows,
        "expectations": [e.rule for e in EXPECTATIONS],
        "paths": {name: s.as_json() for name, s in samples.items()},
        "facts_vs_upsert": ratio(samples["upsert_with_facts"], samples["upsert"]),
        "facts_minus_upsert_ms": 1000
        * (samples["upsert_with_facts"].median - samples["upsert"].median),
        "median_ratio_per_round": statistics.median(per_round),
        "scan_profile_vs_log_profile": ratio(samples["scan_profile"], samples["log_profile"]),
        "scan_profile_vs_upsert": ratio(samples["scan_profile"], samples["upsert"]),
        "log_profile_vs_upsert": ratio(samples["log_profile"], samples["upsert"]),
        "counts": {"inserted": plain.inserted, "updated": plain.updated},
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.beyond_counts``: the figures, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="work folder; the table is kept")
    parser.add_argument("--rounds", type=int, default=7, help="ABAB rounds")
    parser.add_argument("--plan", choices=sorted(PLANS), default="issue12")
    args = parser.parse_args(argv)
    base = prepare(args.root / args.plan, PLANS[args.plan], reuse=True)
    print(json.dumps(run(base, rounds=args.rounds), indent=2, default=str))


if __name__ == "__main__":
    main()
