"""Section 1 (and 5): what a count after an upsert costs, the project's way and the scans' ways.

Each round upserts a re-delivery into one partition with the project's ``upsert``, then counts
the table and that partition with every counter, alternately, ``repeats`` times. Every counter
must return the same two numbers as the ``UpsertResult``; a disagreement is recorded, not
hidden. Peak memory is then measured per path, each in a fresh process.
"""

import datetime as dt
import functools
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from deltalake import DeltaTable

from bench import counters, probe
from bench.data import FEEDS, TableSpec, build_table, day, upsert_batch
from bench.timing import Samples, interleave, ratio, timed
from upsert_pipeline.delta import upsert


@dataclass(frozen=True)
class CountPlan:
    """How much to measure per table.

    Attributes:
        rounds: Upserts (each into its own partition), each followed by the counts.
        repeats: Runs of every counter after each upsert.
        updates: Rows of the partition the re-delivery changes (capped at half the partition).
        inserts: New rows in each re-delivery.
        memory: Whether to measure each path's peak memory in a fresh process.
    """

    rounds: int
    repeats: int
    updates: int
    inserts: int
    memory: bool = True


def _batch_keywords(spec: TableSpec, plan: CountPlan, round_index: int) -> dict[str, int]:
    return {
        "day_index": round_index % spec.days,
        "updates": min(plan.updates, spec.rows // spec.days // 2),
        "inserts": plan.inserts,
        "first_new_id": spec.rows + round_index * plan.inserts,
    }


def measure(
    uri: str,
    spec: TableSpec,
    plan: CountPlan,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Upserts and counts, side by side, on the existing table at ``uri`` built from ``spec``.

    Returns:
        Medians and samples of the upsert and of every counter, their ratios, each round's
        counts and merge metrics, whether every counter agreed, and each path's peak memory.
    """
    feed = FEEDS[spec.feed]
    column = feed.partition_column or ""
    options = dict(storage_options) if storage_options else None
    upserts = Samples()
    samples = {name: Samples() for name in counters.COUNTERS}
    rounds = []
    agree = True
    for round_index in range(plan.rounds):
        keywords = _batch_keywords(spec, plan, round_index)
        batch = upsert_batch(spec, seed=1000 + round_index, **keywords)
        partition_day = day(keywords["day_index"])
        seconds, result = timed(
            functools.partial(
                upsert,
                uri,
                batch,
                keys=feed.keys,
                partition={column: partition_day},
                storage_options=options,
            )
        )
        upserts.seconds.append(seconds)
        # The snapshot after the commit, as the merge holds it (``upsert`` counts from its own).
        table = DeltaTable(uri, storage_options=options)
        methods = {
            "project_held": functools.partial(counters.project_held, table, column, partition_day)
        }
        for name, counter in counters.SCANS.items():
            methods[name] = functools.partial(counter, uri, column, partition_day, options)
        before = {name: len(s.values) for name, s in samples.items()}
        interleave(methods, rounds=plan.repeats, samples=samples, round_offset=round_index)
        expected = [result.table_rows, result.partition_rows]
        seen = {
            name: sorted({tuple(v) for v in s.values[before[name] :]})
            for name, s in samples.items()
        }
        round_agrees = all(values == [tuple(expected)] for values in seen.values())
        agree = agree and round_agrees
        rounds.append(
            {
                "partition": partition_day.isoformat(),
                "batch_rows": batch.num_rows,
                "expected": expected,
                "counts": {name: [list(v) for v in values] for name, values in seen.items()},
                "agree": round_agrees,
                "upsert_s": seconds,
                "inserted": result.inserted,
                "updated": result.updated,
                "merge_ms": result.execution_time_ms,
                "files_scanned": result.files_scanned,
                "files_added": result.files_added,
                "files_removed": result.files_removed,
                "table_files": result.after.table_files,
                "partition_files": result.after.partition_files,
            }
        )
    project = samples["project_held"]
    report: dict[str, Any] = {
        "spec": asdict(spec),
        "plan": asdict(plan),
        "table_files": rounds[-1]["table_files"],
        "upsert": upserts.as_json(),
        "counters": {name: s.as_json() for name, s in samples.items()},
        "ratio_vs_project": {name: ratio(s, project) for name, s in samples.items()},
        "ratio_vs_upsert": {name: ratio(s, upserts) for name, s in samples.items()},
        "rounds": rounds,
        "agree": agree,
    }
    if plan.memory:
        report["memory"] = _memory(uri, spec, plan, column, options)
    return report


def _memory(
    uri: str, spec: TableSpec, plan: CountPlan, column: str, options: dict[str, str] | None
) -> dict[str, Any]:
    """Each path's peak RSS, one fresh process each; the upsert (into a new partition) last."""
    counted = day(_batch_keywords(spec, plan, plan.rounds - 1)["day_index"])
    base = {"uri": uri, "column": column, "storage_options": options}
    memory = {
        path: probe.measure({**base, "path": path, "day": counted.isoformat()})
        for path in counters.COUNTERS
    }
    keywords = _batch_keywords(spec, plan, plan.rounds)
    memory["upsert"] = probe.measure(
        {
            **base,
            "path": "upsert",
            "day": day(keywords["day_index"]).isoformat(),
            "spec": asdict(spec),
            "batch": keywords,
        }
    )
    return memory


def run_local(root: str, spec: TableSpec, plan: CountPlan) -> dict[str, Any]:
    """Builds ``spec``'s table under ``root``, measures it, and reports the build time too."""
    uri = f"{root}/{spec.name}"
    start = time.perf_counter()
    build_table(uri, spec)
    build_s = time.perf_counter() - start
    report = measure(uri, spec, plan)
    report["build_s"] = build_s
    report["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return report
