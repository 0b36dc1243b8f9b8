"""Section 3: one partition upserted end to end, through ``dagster-delta`` and through this project.

Both are whole ``dg.materialize`` runs of one partition, alternately, each on a fresh copy of
the same base table with the same landing batch. Each copy then gets the same batch a second
time (a re-delivery of unchanged rows), which is where the two merges differ most: this project
rewrites only rows that changed, ``dagster-delta``'s upsert rewrites every matched row.
What each reports as a row count is recorded beside its time.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg

from bench import assets
from bench.base_table import BaseTable, BatchPlan, prepare
from bench.timing import Samples, ratio, rotated, timed

PATHS = ("dagster_delta", "project")
_REPORTED = (
    "dagster/row_count",
    "dagster/partition_row_count",
    "upsert/rows_inserted",
    "upsert/rows_updated",
    "upsert/rows_unchanged",
    "delta/version",
    "num_output_rows",
    "table_version",
)


def _run_once(path: str, base: BaseTable, instance: dg.DagsterInstance) -> dict[str, Any]:
    """Two materializations of the partition on a fresh copy: first delivery, then the same."""
    if path == "project":
        lake = base.fresh_lake()
        resources = assets.project_resources(str(lake), str(base.landing))
        asset = assets.project_asset(base.feed)
    else:
        lake = base.fresh_lake(subfolder=assets.DAGSTER_DELTA_SCHEMA)
        resources = assets.dagster_delta_resources(str(lake), str(base.landing), base.feed)
        asset = assets.dagster_delta_asset(base.feed)
    try:
        runs = {}
        for delivery in ("first", "again"):
            seconds, metadata = timed(
                lambda: assets.materialize(asset, resources, base.partition_key, instance)
            )
            merge_stats = metadata.get("merge_stats")
            runs[delivery] = {
                "seconds": seconds,
                "reported": {key: metadata[key] for key in _REPORTED if key in metadata},
                "merge_stats": merge_stats if isinstance(merge_stats, dict) else None,
            }
        return runs
    finally:
        base.discard(lake)


def run(root: Path, plan: BatchPlan, *, repeats: int) -> dict[str, Any]:
    """Measures both integrations ``repeats`` times each, alternately, on fresh table copies."""
    base = prepare(root, plan)
    first = {path: Samples() for path in PATHS}
    again = {path: Samples() for path in PATHS}
    with dg.instance_for_test() as instance:
        for path in PATHS:  # untimed warm-up: one-off costs of each integration's first run
            _run_once(path, base, instance)
        for repeat in range(repeats):
            for path in rotated(list(PATHS), repeat):
                runs = _run_once(path, base, instance)
                first[path].seconds.append(runs["first"]["seconds"])
                first[path].values.append(runs["first"])
                again[path].seconds.append(runs["again"]["seconds"])
                again[path].values.append(runs["again"])
    return {
        "plan": {**asdict(plan), "batch_rows": base.batch.num_rows},
        "columns": len(base.feed.schema),
        "first_delivery": {path: s.as_json() for path, s in first.items()},
        "same_batch_again": {path: s.as_json() for path, s in again.items()},
        "dagster_delta_vs_project_first": ratio(first["dagster_delta"], first["project"]),
        "dagster_delta_vs_project_again": ratio(again["dagster_delta"], again["project"]),
        "reported": {
            path: {
                "first": first[path].values[-1]["reported"],
                "again": again[path].values[-1]["reported"],
                "merge_stats_first": first[path].values[-1]["merge_stats"],
                "merge_stats_again": again[path].values[-1]["merge_stats"],
            }
            for path in PATHS
        },
    }
