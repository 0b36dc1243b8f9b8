"""Section 4: a backfill of N partitions, materialized serially and by two processes in parallel.

Each worker is a fresh Python process with its own ephemeral Dagster instance that materializes
its share of the partitions one after another (the project's asset, in-process executor). The
serial run is one worker with every partition; the parallel run is two workers, one taking the
even days and one the odd days, both writing to the same Delta table. Workers import and set up
first, report ready, and start together on a signal, so the clock measures the backfill and
not Python start-up. Serial and parallel runs alternate, each on a new, empty table.

Daily partitions exist from ``START_DATE`` up to yesterday. When fewer than N days have passed
since ``START_DATE``, the workers set Dagster's clock (``dagster._core.test_utils.freeze_time``)
to the day after the last partition so that the N keys are valid; the report says so.
"""

import contextlib
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from deltalake import DeltaTable

from bench import assets
from bench.data import FEEDS, day, rows
from bench.timing import Samples, ratio
from upsert_pipeline.delta import read_row_counts
from upsert_pipeline.delta.validation import storage_schema
from upsert_pipeline.partitions import daily_partitions


@dataclass(frozen=True)
class BackfillPlan:
    """The backfill measured.

    Attributes:
        feed: ``"orders"`` or ``"wide"``.
        partitions: Days backfilled.
        rows_per_partition: Rows in each day's landing batch.
        workers: Processes of the parallel run.
        repeats: Serial and parallel runs each, alternately.
    """

    feed: str
    partitions: int
    rows_per_partition: int
    workers: int
    repeats: int


def _land(landing: Path, plan: BackfillPlan) -> list[str]:
    feed = FEEDS[plan.feed]
    keys = []
    for index in range(plan.partitions):
        first = index * plan.rows_per_partition
        ids = np.arange(first, first + plan.rows_per_partition, dtype=np.int64)
        key = day(index).isoformat()
        assets.write_landing(landing, feed, key, rows(feed, ids, index, seed=index))
        keys.append(key)
    return keys


def _tails(logs: list[Path]) -> str:
    return "\n".join(log.read_text()[-3000:] for log in logs)


def _frozen_clock(keys: list[str]) -> str | None:
    """The time to set Dagster's clock to so that every key is a partition, or ``None``."""
    if keys[-1] in daily_partitions.get_partition_keys():
        return None
    last = dt.date.fromisoformat(keys[-1])
    return dt.datetime.combine(last + dt.timedelta(days=1), dt.time(1), tzinfo=dt.UTC).isoformat()


def _run(
    lake: Path, landing: Path, plan: BackfillPlan, shares: list[list[str]], clock: str | None
) -> dict[str, Any]:
    feed = FEEDS[plan.feed]
    DeltaTable.create(
        str(lake / feed.name),
        storage_schema(feed.schema),
        partition_by=[feed.partition_column or ""],
    )
    logs = [lake / f"worker_{index}.log" for index in range(len(shares))]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.backfill",
                json.dumps([str(lake), str(landing), plan.feed, share, clock]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        for share, log in zip(shares, logs, strict=True)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a backfill worker failed to start: {_tails(logs)}")
        start = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if not line:
                raise RuntimeError(f"a backfill worker failed: {_tails(logs)}")
            reports.append(json.loads(line))
        wall = time.perf_counter() - start
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait(timeout=60)
    counts = read_row_counts(str(lake / feed.name))
    return {
        "wall_s": wall,
        "workers": reports,
        "table_rows": counts.table_rows,
        "version": counts.version,
    }


def run(root: Path, plan: BackfillPlan) -> dict[str, Any]:
    """Alternates serial and parallel backfills ``plan.repeats`` times each."""
    landing = root / "landing"
    keys = _land(landing, plan)
    clock = _frozen_clock(keys)
    modes = {
        "serial": [keys],
        "parallel": [keys[worker :: plan.workers] for worker in range(plan.workers)],
    }
    samples = {mode: Samples() for mode in modes}
    runs: list[dict[str, Any]] = []
    for repeat in range(plan.repeats):
        order = list(modes) if repeat % 2 == 0 else list(reversed(modes))
        for mode in order:
            lake = root / f"lake_{mode}_{repeat}"
            report = _run(lake, landing, plan, modes[mode], clock)
            samples[mode].seconds.append(report["wall_s"])
            runs.append({"mode": mode, **report})
    expected = plan.partitions * plan.rows_per_partition
    cores_busy = {
        mode: statistics.median(
            sum(worker["cpu_s"] for worker in run["workers"]) / run["wall_s"]
            for run in runs
            if run["mode"] == mode
        )
        for mode in modes
    }
    return {
        "plan": asdict(plan),
        "serial": samples["serial"].as_json(),
        "parallel": samples["parallel"].as_json(),
        "speedup": ratio(samples["serial"], samples["parallel"]),
        "per_partition_serial_s": samples["serial"].median / plan.partitions,
        "cores_busy": cores_busy,
        "expected_rows": expected,
        "all_rows_present": all(run["table_rows"] == expected for run in runs),
        "dagster_clock_set_to": clock,
        "runs": runs,
    }


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads (delta-rs' included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(lake: str, landing: str, feed_name: str, keys: list[str], clock: str | None) -> None:
    import dagster as dg
    from dagster._core.test_utils import freeze_time

    feed = FEEDS[feed_name]
    asset = assets.project_asset(feed)
    resources = assets.project_resources(lake, landing)
    frozen = freeze_time(dt.datetime.fromisoformat(clock)) if clock else contextlib.nullcontext()
    with frozen, dg.DagsterInstance.ephemeral() as instance:
        print("ready", flush=True)
        sys.stdin.readline()
        start = time.perf_counter()
        cpu_start = _cpu_seconds()
        per_partition = []
        for key in keys:
            begin = time.perf_counter()
            assets.materialize(asset, resources, key, instance)
            per_partition.append(time.perf_counter() - begin)
        print(
            json.dumps(
                {
                    "partitions": len(keys),
                    "busy_s": time.perf_counter() - start,
                    "cpu_s": _cpu_seconds() - cpu_start,
                    "median_partition_s": float(np.median(per_partition)),
                    "inner_upsert_s": sum(assets.INNER_SECONDS["upsert"]),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    _worker(*json.loads(sys.argv[1]))
