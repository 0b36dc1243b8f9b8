"""Maintenance: the upsert and the count on a fragmented table, before and after ``maintain``.

``python -m bench.maintenance [--quick] --out bench/results --markdown BENCHMARKS.md``

A table of 10 daily partitions receives 30 re-deliveries into each (every re-delivery is the
day's file sent again with late orders appended: the rows already in are unchanged and rewrite
nothing, the late ones are inserted, so each leaves one more small file and a commit). It is then
copied: the copy is maintained (``upsert_pipeline.delta.maintenance.maintain``: compaction of
every partition, vacuum with the default retention, a checkpoint) and the original is not. The
same re-deliveries then go to both, side by side (the two tables alternate, each round starting
with the other), and after each upsert the partition is counted three ways: the project's count
from the log (``read_row_counts``), and polars' ``scan_delta`` count of the partition, both on
each table. Ratios of medians (before / after maintenance) are the result.

The report section is written between markers in ``--markdown`` (``bench.report`` keeps it when
it rewrites the file).
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from bench.timing import Samples, ratio, rotated, timed
from upsert_pipeline.delta import read_row_counts, upsert
from upsert_pipeline.delta.maintenance import MaintenancePolicy, maintain
from upsert_pipeline.feeds import ORDERS

START = "<!-- bench.maintenance:start -->"
END = "<!-- bench.maintenance:end -->"
FIRST_DAY = dt.date(2026, 11, 1)
UPDATED_AT = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


@dataclass(frozen=True)
class MaintenancePlan:
    """Sizes of the benchmark.

    Attributes:
        name: ``full`` or ``quick``.
        partitions: Daily partitions.
        base_rows: Rows of each partition's first delivery.
        redeliveries: Re-deliveries into each partition before maintenance.
        new_rows: Late rows each re-delivery adds to the day's rows sent before.
        rounds: Side-by-side rounds (each: one upsert and the counts on each table).
        max_small_files: Compact a partition holding more small files than this.
    """

    name: str
    partitions: int
    base_rows: int
    redeliveries: int
    new_rows: int
    rounds: int
    max_small_files: int


FULL = MaintenancePlan("full", 10, 5_000, 30, 100, 20, MaintenancePolicy().max_small_files)
QUICK = MaintenancePlan("quick", 3, 200, 4, 10, 2, 2)


def _day(index: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=index)


def _batch(first_id: int, count: int, day: dt.date) -> pa.Table:
    return pa.table(
        {
            "order_id": list(range(first_id, first_id + count)),
            "order_date": [day] * count,
            "customer_id": [7] * count,
            "status": ["placed"] * count,
            "amount": [Decimal("9.99")] * count,
            "updated_at": [UPDATED_AT] * count,
        },
        schema=ORDERS.schema,
    )


class Deliveries:
    """Each partition's deliveries: the first, then the same rows again with late ones added."""

    def __init__(self, plan: MaintenancePlan) -> None:
        self.plan = plan
        self.rows = [plan.base_rows] * plan.partitions

    def first(self, index: int) -> pa.Table:
        return _batch(index * 10_000_000, self.plan.base_rows, _day(index))

    def redelivery(self, index: int) -> pa.Table:
        self.rows[index] += self.plan.new_rows
        return _batch(index * 10_000_000, self.rows[index], _day(index))


def _upsert(uri: str, batch: pa.Table, index: int) -> int:
    result = upsert(uri, batch, keys=["order_id"], partition={"order_date": _day(index)})
    return result.inserted


def _log_count(uri: str, index: int) -> int | None:
    return read_row_counts(uri, partition={"order_date": _day(index)}).partition_rows


def _scan_count(uri: str, index: int) -> int:
    frame = pl.scan_delta(uri).filter(pl.col("order_date") == _day(index))
    return int(frame.select(pl.len()).collect().item())


def _files(uri: str) -> int:
    return len(DeltaTable(uri).file_uris())


def run(work: Path, plan: MaintenancePlan) -> dict[str, Any]:
    """Builds the fragmented table, maintains a copy, and times both side by side."""
    before, after = str(work / "before" / "orders"), str(work / "after" / "orders")
    shutil.rmtree(work, ignore_errors=True)
    deliveries = Deliveries(plan)
    start = time.perf_counter()
    for index in range(plan.partitions):
        _upsert(before, deliveries.first(index), index)
    for _ in range(plan.redeliveries):
        for index in range(plan.partitions):
            _upsert(before, deliveries.redelivery(index), index)
    build_s = time.perf_counter() - start
    shutil.copytree(work / "before", work / "after")
    policy = MaintenancePolicy(max_small_files=plan.max_small_files)
    maintain_s, maintained = timed(lambda: maintain(after, policy=policy))

    sides = {"before": before, "after": after}
    samples: dict[str, Samples] = {
        f"{op}_{side}": Samples() for op in ("upsert", "log_count", "scan_count") for side in sides
    }
    for round_index in range(plan.rounds):
        index = round_index % plan.partitions
        batch = deliveries.redelivery(index)
        for side in rotated(list(sides), round_index):
            uri = sides[side]
            for op, function in (
                ("upsert", lambda: _upsert(uri, batch, index)),  # noqa: B023 - run at once
                ("log_count", lambda: _log_count(uri, index)),  # noqa: B023
                ("scan_count", lambda: _scan_count(uri, index)),  # noqa: B023
            ):
                seconds, value = timed(function)
                samples[f"{op}_{side}"].seconds.append(seconds)
                samples[f"{op}_{side}"].values.append(value)
    for op in ("upsert", "log_count", "scan_count"):
        if samples[f"{op}_before"].values != samples[f"{op}_after"].values:
            raise AssertionError(f"{op} differs between the tables: the comparison is void")
    result = {
        "plan": asdict(plan),
        "build_s": build_s,
        "maintain_s": maintain_s,
        "files_before_maintenance": maintained.files_before,
        "files_after_maintenance": maintained.files_after,
        "versions_before_maintenance": maintained.version_before + 1,
        "partitions_compacted": len(maintained.partitions_compacted),
        "row_counts_unchanged": not maintained.changed_counts and not maintained.unknown_counts,
        "table_rows": maintained.table_rows_after,
        "files_at_end": {side: _files(uri) for side, uri in sides.items()},
        "samples": {name: sample.as_json() for name, sample in samples.items()},
        "ratios_before_over_after": {
            op: ratio(samples[f"{op}_before"], samples[f"{op}_after"])
            for op in ("upsert", "log_count", "scan_count")
        },
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def markdown(results: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section, between its markers."""
    plan, ratios, samples = results["plan"], results["ratios_before_over_after"], results["samples"]
    rows = [
        ("`upsert` of a re-delivery", "upsert"),
        ("the project's count (log)", "log_count"),
        ("polars `scan_delta` count of the partition", "scan_count"),
    ]
    lines = [
        START,
        "## 9. Maintenance: the upsert and the count before and after `maintain_lake`",
        "",
        f"Generated by `{command}` on {results['generated_at']} ({plan['name']} mode); raw "
        f"numbers: `bench/results/maintenance.json`. {plan['partitions']} daily partitions of "
        f"{plan['base_rows']:,} rows, then {plan['redeliveries']} re-deliveries into each "
        f"(the day's rows again, unchanged, + {plan['new_rows']} late ones): "
        f"{results['files_before_maintenance']:,} files and "
        f"{results['versions_before_maintenance']:,} versions. A copy was maintained "
        f"(`maintain`: {results['partitions_compacted']} partitions compacted to "
        f"{results['files_after_maintenance']} files, checkpoint, vacuum with 7 days' retention; "
        f"{results['maintain_s']:.1f} s; row counts unchanged: "
        f"{'yes' if results['row_counts_unchanged'] else 'NO'}). Then {plan['rounds']} rounds, "
        "side by side, each sending the same re-delivery to both tables (alternating which goes "
        "first) and counting its partition on each. Load average at start: "
        f"{results['load_average_at_start']:.1f}.",
        "",
        "| operation | before maintenance | after | before ÷ after |",
        "|---|---|---|---|",
    ]
    for label, op in rows:
        lines.append(
            f"| {label} | {_ms(samples[f'{op}_before']['median_s'])} | "
            f"{_ms(samples[f'{op}_after']['median_s'])} | {ratios[op]:.2f}x |"
        )
    lines += ["", END]
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """``text`` with its maintenance section replaced by ``section`` (appended if absent)."""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + section + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + section + "\n"


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, writes ``<out>/maintenance.json`` and the markdown section."""
    parser = argparse.ArgumentParser(prog="python -m bench.maintenance")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--out", type=Path, required=True, help="folder for maintenance.json")
    parser.add_argument("--markdown", type=Path, help="report to write the section into")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    results = run(args.out / "maintenance_tmp", plan)
    results["load_average_at_start"] = load
    results["load_average_at_end"] = os.getloadavg()[0]
    results["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    command = " ".join(
        ["python -m bench.maintenance", *(argv if argv is not None else sys.argv[1:])]
    )
    results["command"] = command
    (args.out / "maintenance.json").write_text(json.dumps(results, indent=2) + "\n")
    section = markdown(results, command)
    if args.markdown:
        old = args.markdown.read_text() if args.markdown.exists() else ""
        args.markdown.write_text(replace_section(old, section))
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
