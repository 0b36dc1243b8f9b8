"""Section 2: what the project adds around the merge, and what Dagster adds around the upsert.

Three paths run alternately, each on its own fresh copy of the same base table with the same
batch: the bare delta-rs merge (the same predicate and clauses ``upsert`` issues, nothing else),
the project's ``upsert`` (validation, the merge, counts from the log, the result), and a whole
``dg.materialize`` of the project's asset, inside which the ``upsert`` and the landing read are
timed too.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
from deltalake import DeltaTable

from bench import assets
from bench.base_table import BaseTable, BatchPlan, prepare
from bench.data import day
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
