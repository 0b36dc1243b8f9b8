"""``python -m bench``: run every section, write ``results.json``, ``BENCHMARKS.md`` and the plot.

Usage::

    python -m bench --out bench/results --markdown BENCHMARKS.md --plots docs   # make bench
    python -m bench --quick --out /tmp/bench                                    # the test

Sections run one after another (one core-heavy process at a time, except the parallel
backfill, which is the point of it). ``results.json`` is rewritten after every section, so an
interrupted run keeps what it measured; a section that fails is recorded with its error and the
others still run. Generated tables are deleted once measured.
"""

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import backfill, count_cost, integration, overhead, remote, report
from bench.plans import FULL, MEMORY_IN_QUICK, QUICK, Plan

SECTIONS = ("count_cost", "overhead", "integration", "backfill", "remote")


def _git(*args: str) -> str:
    completed = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return completed.stdout.strip()


def _machine() -> dict[str, Any]:
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory_kib / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("deltalake", "polars", "narwhals", "dagster", "dagster-delta", "pyarrow", "moto")
    return {name: version(name) for name in names}


def _sections(plan: Plan, work: Path) -> dict[str, Callable[[], Any]]:
    def counts() -> dict[str, Any]:
        tables = []
        for index, spec in enumerate(plan.count_tables):
            measured = plan.count
            if plan.name == "quick" and index >= MEMORY_IN_QUICK:
                measured = dataclasses.replace(measured, memory=False)
            root = work / "count_cost"
            tables.append(count_cost.run_local(str(root), spec, measured))
            shutil.rmtree(root / spec.name, ignore_errors=True)
            print(f"  count cost {spec.name}: done", flush=True)
        return {"tables": tables}

    def overheads() -> dict[str, Any]:
        return {
            batch.spec.feed: overhead.run(
                work / "overhead" / batch.spec.feed, batch, repeats=plan.overhead_repeats
            )
            for batch in plan.overhead
        }

    return {
        "count_cost": counts,
        "overhead": overheads,
        "integration": lambda: integration.run(
            work / "integration", plan.integration, repeats=plan.integration_repeats
        ),
        "backfill": lambda: backfill.run(work / "backfill", plan.backfill),
        "remote": lambda: [
            remote.run(str(work / f"remote_{index}"), remote_plan)
            for index, remote_plan in enumerate(plan.remote)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns the process exit status (1 if any section failed)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, well under a minute")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json")
    parser.add_argument("--markdown", type=Path, help="report path (default <out>/BENCHMARKS.md)")
    parser.add_argument("--plots", type=Path, help="folder for the PNG plot (default <out>)")
    parser.add_argument("--work", type=Path, help="scratch folder (default <out>/tmp)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    out: Path = args.out
    work: Path = args.work or out / "tmp"
    markdown: Path = args.markdown or out / "BENCHMARKS.md"
    plots: Path = args.plots or out
    for folder in (out, work, plots, markdown.parent):
        folder.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results: dict[str, Any] = {
        "meta": {
            "mode": plan.name,
            "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "load_average_at_start": os.getloadavg(),
            "git_commit": _git("rev-parse", "HEAD"),
            "package_tree_clean": _git("status", "--porcelain", "--", "upsert_pipeline") == "",
            "machine": _machine(),
            "versions": _versions(),
            "plan": dataclasses.asdict(plan),
        }
    }
    results_path = out / "results.json"
    failed = False
    for name, section in _sections(plan, work).items():
        if args.only and name not in args.only:
            continue
        print(f"{name} ...", flush=True)
        begin = time.perf_counter()
        try:
            results[name] = section()
        except Exception:
            failed = True
            results[name] = {"error": traceback.format_exc()}
            print(results[name]["error"], file=sys.stderr, flush=True)
        results["meta"].setdefault("section_seconds", {})[name] = time.perf_counter() - begin
        results["meta"].setdefault("load_average_after", {})[name] = os.getloadavg()
        results["meta"]["total_seconds"] = time.perf_counter() - started
        results_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"{name}: {time.perf_counter() - begin:.1f}s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    report.write(results, markdown=markdown, plots=plots)
    print(f"wrote {results_path}, {markdown} and {plots}/bench_*.png", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
