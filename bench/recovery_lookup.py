"""The crash-recovery look-up every run of an upsert asset does before it merges, measured.

``python -m bench.recovery_lookup [--commits 300] [--days 30]``

1. A table of ``--commits`` pipeline commits: the log's pipeline commits read in full (a run's
   first look, or one on an instance that recorded nothing) against only those after the
   watermark (``recovery/log_checked_through``, every later run), side by side, as a ratio.
2. ``--days`` daily runs of the orders asset on one instance, then the look-up a next run does
   first (``recovery.find_unrecorded``) against a run's median time, as a share.

Prints one line each; nothing is written.
"""

import argparse
import datetime as dt
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import dagster as dg

from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.history import PARTITION_MARKER, PIPELINE_MARKER, RUN_MARKER
from upsert_pipeline.delta.recovery import pipeline_commits
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.recovery import find_unrecorded
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.conftest import feed_asset, order_batch

warnings.filterwarnings("ignore")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _median_s(call: Callable[[], object], repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def log_scan(folder: str, commits: int) -> str:
    uri = f"{folder}/orders"
    for i in range(commits):
        upsert(
            uri,
            order_batch(range(i * 5, i * 5 + 5)),
            keys=["order_id"],
            partition={"order_date": dt.date(2026, 11, 2)},
            commit_metadata={
                PIPELINE_MARKER: "orders",
                PARTITION_MARKER: "2026-11-02",
                RUN_MARKER: f"run-{i}",
            },
        )
    full = _median_s(lambda: pipeline_commits(uri, "orders"))
    tail = _median_s(lambda: pipeline_commits(uri, "orders", after_version=commits - 1))
    return (
        f"{commits} commits: whole log {full * 1000:.1f} ms, after the watermark "
        f"{tail * 1000:.1f} ms: {full / tail:.1f}x"
    )


def steady_state(folder: str, days: int) -> str:
    generate(f"{folder}/landing", days=days)
    lake = DeltaMergeResource(lake_uri=f"{folder}/lake")
    resources = {"landing": LandingResource(uri=f"{folder}/landing"), "lake": lake}
    start_day = dt.date(2026, 11, 1)
    keys = [(start_day + dt.timedelta(days=i)).isoformat() for i in range(days)]
    runs = []
    with dg.instance_for_test() as instance:
        for key in keys:
            start = time.perf_counter()
            dg.materialize(
                [feed_asset("orders")],
                resources=resources,
                instance=instance,
                partition_key=key,
                run_config=QUIET,
            )
            runs.append(time.perf_counter() - start)
        lookup = _median_s(lambda: find_unrecorded(instance, ORDERS, lake, current_run_id=None))
    run = statistics.median(runs)
    return (
        f"{days} daily runs: median run {run * 1000:.0f} ms, recovery look-up "
        f"{lookup * 1000:.1f} ms: {lookup / run * 100:.1f}% of a run"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(log_scan(f"{folder}/scan", args.commits))
        print(steady_state(f"{folder}/steady", args.days))


if __name__ == "__main__":
    main()
