"""The benchmark's quick mode (``python -m bench --quick``), run once for the whole module.

Nothing here looks at a timing: the tests check that every section ran, that the report, plot
and JSON are written, and that every way of counting gave the same numbers, which are the
numbers the generated data must have. Budget: about 35 s (one quick run).
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SECTIONS = ("count_cost", "overhead", "integration", "backfill", "remote")
COUNTERS = ("project_held", "project_log", "narwhals_len", "polars_scan_len", "full_read_filter")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-6000:]
    return out, json.loads((out / "results.json").read_text())


def _count_tables(results: dict[str, Any]) -> list[dict[str, Any]]:
    remote = [table for run in results["remote"] for table in run["tables"]]
    return results["count_cost"]["tables"] + remote


def test_every_section_ran_and_the_scratch_folder_is_gone(quick_run):
    out, results = quick_run
    for section in SECTIONS:
        assert section in results
        assert not (isinstance(results[section], dict) and "error" in results[section]), section
    assert results["meta"]["mode"] == "quick"
    assert not (out / "tmp").exists()


def test_report_and_plot_are_written(quick_run):
    out, _ = quick_run
    report = (out / "BENCHMARKS.md").read_text()
    for title in (
        "## Headline",
        "## 1. Count cost",
        "## 2. Pipeline overhead",
        "## 3. Against",
        "## 4. Backfill",
        "## 5. Remote storage",
        "## What limits these numbers",
    ):
        assert title in report
    assert "failed in this run" not in report
    assert "](bench_count_cost.png)" in report
    assert (out / "bench_count_cost.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_every_counter_returns_the_rows_the_table_holds(quick_run):
    _, results = quick_run
    tables = _count_tables(results)
    assert tables
    for table in tables:
        spec, plan = table["spec"], table["plan"]
        assert table["agree"]
        for index, counted in enumerate(table["rounds"]):
            # Each round inserts plan["inserts"] new rows into its own partition; updates add none.
            table_rows = spec["rows"] + plan["inserts"] * (index + 1)
            partition_rows = spec["rows"] // spec["days"] + plan["inserts"]
            assert counted["expected"] == [table_rows, partition_rows]
            assert counted["inserted"] == plan["inserts"]
            assert counted["updated"] == counted["batch_rows"] - plan["inserts"]
            assert set(counted["counts"]) == set(COUNTERS)
            for values in counted["counts"].values():
                assert values == [[table_rows, partition_rows]]


def test_methods_ran_side_by_side_the_same_number_of_times(quick_run):
    _, results = quick_run
    for table in _count_tables(results):
        plan = table["plan"]
        runs = plan["rounds"] * plan["repeats"]
        project = statistics.median(table["counters"]["project_held"]["samples_s"])
        for name in COUNTERS:
            samples = table["counters"][name]["samples_s"]
            assert len(samples) == runs
            assert table["ratio_vs_project"][name] == pytest.approx(
                statistics.median(samples) / project
            )
        assert len(table["upsert"]["samples_s"]) == plan["rounds"]


def test_peak_memory_is_measured_per_path_with_the_same_counts(quick_run):
    _, results = quick_run
    table = results["count_cost"]["tables"][0]
    memory = table["memory"]
    assert set(memory) == {*COUNTERS, "upsert"}
    last = table["rounds"][-1]["expected"]
    for path in COUNTERS:
        assert memory[path]["value"] == last
    for report in memory.values():
        assert 0 < report["baseline_rss_mib"] <= report["peak_rss_mib"]
    full, held = memory["full_read_filter"], memory["project_held"]
    assert memory["upsert"]["value"][0] == last[0] + table["plan"]["inserts"]
    assert full["peak_rss_mib"] - full["baseline_rss_mib"] == full["added_rss_mib"]
    assert held["added_rss_mib"] >= 0


def test_overhead_paths_did_the_same_merge(quick_run):
    _, results = quick_run
    for report in results["overhead"].values():
        counts = report["counts"]
        assert counts["bare_merge_inserted"] == counts["inserted"]
        assert counts["bare_merge_updated"] == counts["updated"]
        assert counts["materialize_row_count"] == counts["table_rows"]
        assert counts["materialize_partition_row_count"] == counts["partition_rows"]
        assert len(report["inside_materialize"]["upsert"]["samples_s"]) == len(
            report["paths"]["materialize"]["samples_s"]
        )


def test_integrations_report_what_their_merges_did(quick_run):
    _, results = quick_run
    section = results["integration"]
    plan = section["plan"]
    project = section["reported"]["project"]
    rows = plan["spec"]["rows"] + plan["inserts"]
    assert project["first"]["dagster/row_count"] == rows
    assert project["first"]["upsert/rows_updated"] == plan["updates"]
    assert project["again"]["upsert/rows_updated"] == 0
    assert project["again"]["upsert/rows_unchanged"] == plan["batch_rows"]
    assert project["again"]["delta/version"] == project["first"]["delta/version"]
    delta = section["reported"]["dagster_delta"]
    assert delta["merge_stats_first"]["num_target_rows_inserted"] == plan["inserts"]
    assert delta["merge_stats_again"]["num_target_rows_updated"] == plan["batch_rows"]
    assert delta["again"]["table_version"] == delta["first"]["table_version"] + 1


def test_backfill_wrote_every_partition_both_ways(quick_run):
    _, results = quick_run
    section = results["backfill"]
    plan = section["plan"]
    assert section["all_rows_present"]
    modes = [run["mode"] for run in section["runs"]]
    assert sorted(modes) == sorted(["parallel", "serial"] * plan["repeats"])
    for run in section["runs"]:
        assert run["table_rows"] == plan["partitions"] * plan["rows_per_partition"]
        assert sum(worker["partitions"] for worker in run["workers"]) == plan["partitions"]
        assert len(run["workers"]) == (1 if run["mode"] == "serial" else plan["workers"])


def test_the_ui_backfill_bench_credits_a_ranged_run_with_each_day_of_its_range():
    from bench.backfill_ui import _covered

    days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    ranged = {
        "dagster/asset_partition_range_start": "2026-11-02",
        "dagster/asset_partition_range_end": "2026-11-03",
    }
    assert _covered(days, ranged) == ["2026-11-02", "2026-11-03"]
    assert _covered(days, {"dagster/partition": "2026-11-04"}) == ["2026-11-04"]
    assert _covered(days, {"dagster/partition": "2026-10-31"}) == []
    assert _covered(days, {"dagster/backfill": "abc"}) == []
