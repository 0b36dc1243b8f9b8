"""Section 2: what the project adds around the merge, and what Dagster adds around the upsert.

Three paths run alternately, each on its own fresh copy of the same base table with the same
batch: the bare delta-rs merge (the same predicate and clauses ``upsert`` issues, nothing else),
the project's ``upsert`` (validation, the merge, counts from the log, the result), and a whole
``dg.materialize`` of the project's asset, inside which the ``upsert`` and the landing read are
timed too.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
from deltalake import DeltaTable

from bench import assets
from bench.base_table import BaseTable, BatchPlan, prepare
from bench.data import TableSpec, day
from bench.timing import Samples, ratio, rotated, timed
from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.predicates import (
    SOURCE_ALIAS,
    TARGET_ALIAS,
    changed_predicate,
    merge_predicate,
)

PATHS = ("bare_merge", "upsert", "materialize")


def bare_merge(uri: str, base: BaseTable) -> dict[str, Any]:
    """The merge ``upsert`` runs, issued directly: load, merge, execute."""
    feed = base.feed
    column = feed.partition_column or ""
    table = DeltaTable(uri)
    keys = list(feed.keys)
    unmatched = [name for name in feed.schema.names if name not in keys and name != column]
    merger = table.merge(
        base.batch,
        predicate=merge_predicate(keys, {column: day(base.plan.day_index)}),
        source_alias=SOURCE_ALIAS,
        target_alias=TARGET_ALIAS,
    )
    change = changed_predicate(unmatched)
    if change is not None:
        merger = merger.when_matched_update_all(predicate=change)
    metrics: dict[str, Any] = merger.when_not_matched_insert_all().execute()
    return metrics


def _run_once(path: str, base: BaseTable, instance: dg.DagsterInstance) -> tuple[float, Any]:
    lake = base.fresh_lake()
    uri = str(lake / base.feed.name)
    column = base.feed.partition_column or ""
    try:
        if path == "bare_merge":
            return timed(lambda: bare_merge(uri, base))
        if path == "upsert":
            return timed(
                lambda: upsert(
                    uri,
                    base.batch,
                    keys=base.feed.keys,
                    partition={column: day(base.plan.day_index)},
                )
            )
        asset = assets.project_asset(base.feed)
        resources = assets.project_resources(str(lake), str(base.landing))
        return timed(lambda: assets.materialize(asset, resources, base.partition_key, instance))
    finally:
        base.discard(lake)


def run(root: Path, plan: BatchPlan, *, repeats: int) -> dict[str, Any]:
    """Measures the three paths ``repeats`` times each, alternately, on fresh table copies."""
    base = prepare(root, plan)
    samples = {path: Samples() for path in PATHS}
    for name in assets.INNER_SECONDS:
        assets.INNER_SECONDS[name].clear()
    with dg.instance_for_test() as instance:
        # One untimed materialization first: Dagster's first run in a process pays one-off costs.
        _run_once("materialize", base, instance)
        for name in assets.INNER_SECONDS:
            assets.INNER_SECONDS[name].clear()
        for repeat in range(repeats):
            for path in rotated(list(PATHS), repeat):
                seconds, value = _run_once(path, base, instance)
                samples[path].seconds.append(seconds)
                samples[path].values.append(value)
    inner = {name: Samples(seconds=list(values)) for name, values in assets.INNER_SECONDS.items()}
    results = [value for value in samples["upsert"].values]
    metadata = samples["materialize"].values[-1]
    return {
        "plan": {**asdict(plan), "batch_rows": base.batch.num_rows},
        "columns": len(base.feed.schema),
        "paths": {path: s.as_json() for path, s in samples.items()},
        "inside_materialize": {name: s.as_json() for name, s in inner.items()},
        "upsert_vs_bare_merge": ratio(samples["upsert"], samples["bare_merge"]),
        "upsert_minus_bare_merge_s": samples["upsert"].median - samples["bare_merge"].median,
        "materialize_vs_inner_upsert": ratio(samples["materialize"], inner["upsert"]),
        "materialize_minus_inner_upsert_s": samples["materialize"].median - inner["upsert"].median,
        "counts": {
            "inserted": results[-1].inserted,
            "updated": results[-1].updated,
            "partition_rows": results[-1].partition_rows,
            "table_rows": results[-1].table_rows,
            "materialize_partition_row_count": metadata.get("dagster/partition_row_count"),
            "materialize_row_count": metadata.get("dagster/row_count"),
            "bare_merge_inserted": samples["bare_merge"].values[-1]["num_target_rows_inserted"],
            "bare_merge_updated": samples["bare_merge"].values[-1]["num_target_rows_updated"],
        },
    }


# The merge overhead of issue 12: `upsert` against the bare merge alone, ABAB, and where the
# difference goes. `python -m bench.overhead --root /tmp/bench_overhead` (see BENCHMARKS.md).

MERGE_OVERHEAD = BatchPlan(TableSpec("orders", 5_000_000, 1000, 20), updates=25_000, inserts=25_000)
"""A 50,000-row batch (25,000 changed rows, 25,000 new) into one partition of a 5M-row,
1,000-file table (20 daily partitions of 50 files)."""

# What `upsert` calls, by the name it imports them under (absent names are skipped, so the same
# profile runs against an older `upsert_pipeline` for a before/after).
_STEPS = (
    "with_string_op",
    "check_typed",
    "check_storable",
    "check_keys",
    "check_partition",
    "conform_evolving",
    "open_or_create",
    "snapshot_counts",
    "batch_identity",
    "read_transaction_state",
    "snapshot_tombstones",
)


def _upsert(uri: str, base: BaseTable) -> Any:
    column = base.feed.partition_column or ""
    return upsert(
        uri, base.batch, keys=base.feed.keys, partition={column: day(base.plan.day_index)}
    )


def _on_a_copy(base: BaseTable, run: Callable[[str], Any]) -> tuple[float, Any]:
    lake = base.fresh_lake()
    try:
        return timed(lambda: run(str(lake / base.feed.name)))
    finally:
        base.discard(lake)


def merge_overhead(base: BaseTable, *, rounds: int) -> dict[str, Any]:
    """``upsert`` and the bare merge, alternately (ABAB, rotating), each on a fresh copy."""
    paths: dict[str, Callable[[str], Any]] = {
        "bare_merge": lambda uri: bare_merge(uri, base),
        "upsert": lambda uri: _upsert(uri, base),
    }
    for path in paths.values():  # one untimed warm-up each
        _on_a_copy(base, path)
    samples = {name: Samples() for name in paths}
    for round_index in range(rounds):
        for name in rotated(list(paths), round_index):
            seconds, value = _on_a_copy(base, paths[name])
            samples[name].seconds.append(seconds)
            samples[name].values.append(value)
    result = samples["upsert"].values[-1]
    bare = samples["bare_merge"].values[-1]
    assert (result.inserted, result.updated) == (
        bare["num_target_rows_inserted"],
        bare["num_target_rows_updated"],
    ), "the two paths did not do the same merge"
    return {
        "paths": {name: s.as_json() for name, s in samples.items()},
        "upsert_vs_bare_merge": ratio(samples["upsert"], samples["bare_merge"]),
        "upsert_minus_bare_merge_ms": 1000
        * (samples["upsert"].median - samples["bare_merge"].median),
        "median_ratio_per_round": statistics.median(
            u / b
            for u, b in zip(samples["upsert"].seconds, samples["bare_merge"].seconds, strict=True)
        ),
        "ratio_per_round": [
            u / b
            for u, b in zip(samples["upsert"].seconds, samples["bare_merge"].seconds, strict=True)
        ],
        "counts": {"inserted": result.inserted, "updated": result.updated},
    }


def step_profile(base: BaseTable, *, runs: int) -> dict[str, float]:
    """Median milliseconds of each step inside ``upsert`` (the merge's ``execute`` included)."""
    from deltalake.table import TableMerger

    import upsert_pipeline.delta.merge as merge_module

    spent: dict[str, list[float]] = {}
    current: dict[str, float] = {}

    def timer(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                current[name] = current.get(name, 0.0) + time.perf_counter() - start

        return wrapped

    originals = {
        name: getattr(merge_module, name) for name in _STEPS if hasattr(merge_module, name)
    }
    execute = TableMerger.execute
    try:
        for name, function in originals.items():
            setattr(merge_module, name, timer(name, function))
        TableMerger.execute = timer("merge_execute", execute)  # type: ignore[method-assign]
        for _ in range(runs + 1):
            current.clear()
            seconds, _result = _on_a_copy(base, lambda uri: _upsert(uri, base))
            current["total"] = seconds
            current["other"] = seconds - sum(v for k, v in current.items() if k != "total")
            for name, value in current.items():
                spent.setdefault(name, []).append(value)
    finally:
        for name, function in originals.items():
            setattr(merge_module, name, function)
        TableMerger.execute = execute  # type: ignore[method-assign]
    # The first run is a warm-up.
    return {name: 1000 * statistics.median(values[1:]) for name, values in spent.items()}


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.overhead``: the merge overhead and the step profile, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="work folder; the table is kept")
    parser.add_argument("--rounds", type=int, default=15, help="ABAB rounds")
    parser.add_argument("--profile-runs", type=int, default=7, help="profiled upsert runs")
    parser.add_argument("--only-profile", action="store_true", help="skip the ABAB comparison")
    args = parser.parse_args(argv)
    base = prepare(args.root, MERGE_OVERHEAD, reuse=True)
    report: dict[str, Any] = {"plan": asdict(MERGE_OVERHEAD), "batch_rows": base.batch.num_rows}
    report["steps_ms"] = step_profile(base, runs=args.profile_runs)
    if not args.only_profile:
        report |= merge_overhead(base, rounds=args.rounds)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
