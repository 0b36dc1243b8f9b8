"""Asset checks: each passes on a healthy materialization and fails on the fault it exists for."""

import dataclasses
import datetime as dt
import subprocess
import sys

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

import upsert_pipeline.delta.merge as merge_module
from upsert_pipeline.checks import (
    COUNTS_RECONCILE,
    NO_OUT_OF_BAND_WRITES,
    NOT_EMPTY,
    VOLUME_WITHIN_HISTORY,
    Severity,
)
from upsert_pipeline.checks.judges import judge_reconcile
from upsert_pipeline.checks.names import ROW_COUNTS_UNCHANGED, expectation_check
from upsert_pipeline.definitions import CHECK_JOB, build_definitions, defs, feed_definitions
from upsert_pipeline.delta import RowCounts, UpsertResult
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.conftest import feed_asset, feed_checks, order_batch

orders, customers = feed_asset("orders"), feed_asset("customers")
lake_checks = feed_checks("orders", "customers")
ASSETS = [orders, customers, *lake_checks]


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _materialize(resources, instance, partition, assets=ASSETS, **kwargs):
    return dg.materialize(
        assets, partition_key=partition, resources=resources, instance=instance, **kwargs
    )


def _evaluation(result, check_name, asset="orders"):
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == check_name and e.asset_key == dg.AssetKey(asset)
    ]
    return evaluation


def _values(evaluation) -> dict[str, object]:
    return {key: value.value for key, value in evaluation.metadata.items()}


def _run_check_job(resources, instance, job_name, tags=None):
    """Runs a job of the code location on the test's resources and instance."""
    resolved = build_definitions(feed_definitions(), resources=resources).resolve_job_def(job_name)
    return resolved.execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def _run_standalone_checks(resources, instance, partition):
    """Evaluates the standalone checks alone, as the check_lake job (or the UI) does."""
    return _run_check_job(resources, instance, CHECK_JOB, tags={"dagster/partition": partition})


# counts_reconcile ---------------------------------------------------------------------------


def test_reconcile_passes_with_the_numbers_it_compared(resources, instance):
    _materialize(resources, instance, "2026-11-01")
    result = _materialize(resources, instance, "2026-11-02")

    evaluation = _evaluation(result, COUNTS_RECONCILE)
    assert evaluation.passed and evaluation.partition == "2026-11-02"
    values = _values(evaluation)
    assert values["landing_rows"] == values["source_rows"] == values["inserted"]
    assert values["partition_rows_before"] == 0
    assert values["partition_rows_expected"] == values["partition_rows_after"] == values["inserted"]
    assert values["table_rows_after"] == values["table_rows_before"] + values["inserted"]
    assert _evaluation(result, COUNTS_RECONCILE, asset="customers").passed


def test_reconcile_fails_and_blocks_when_the_counts_after_the_merge_are_off(
    resources, instance, monkeypatch
):
    real = merge_module.snapshot_counts
    calls = []

    def off_by_one_after_the_commit(table, partition=None):
        counts = real(table, partition)
        calls.append(counts)
        if len(calls) % 2:  # the snapshot the merge starts from is counted first
            return counts
        return dataclasses.replace(counts, partition_rows=counts.partition_rows + 1)

    monkeypatch.setattr(merge_module, "snapshot_counts", off_by_one_after_the_commit)
    result = _materialize(resources, instance, "2026-11-02", assets=[orders], raise_on_error=False)

    assert not result.success  # blocking: the step fails, nothing downstream would run
    evaluation = _evaluation(result, COUNTS_RECONCILE)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    values = _values(evaluation)
    assert values["partition_rows_after"] == values["partition_rows_expected"] + 1
    assert "partition" in evaluation.description


def _result(**changes) -> UpsertResult:
    counts = RowCounts(
        version=3,
        table_rows=100,
        partition_rows=10,
        table_files=5,
        partition_files=1,
        files_without_stats=0,
    )
    fields = dict(
        table_uri="t",
        partition={"order_date": dt.date(2026, 11, 2)},
        source_rows=4,
        inserted=4,
        updated=0,
        deleted=0,
        copied=0,
        unchanged=0,
        read_version=3,
        version=4,
        before=counts,
        after=dataclasses.replace(counts, version=4, table_rows=104, partition_rows=14),
        files_added=1,
        files_removed=0,
        files_scanned=1,
        files_skipped=0,
        execution_time_ms=1,
        scan_time_ms=1,
        rewrite_time_ms=0,
    )
    return UpsertResult(**{**fields, **changes})


def test_reconcile_judges_the_table_against_the_version_before_its_commit_under_concurrency():
    # Two other partitions committed 50 rows between the merge's snapshot (v3) and its commit (v6).
    after = dataclasses.replace(_result().after, version=6, table_rows=154, table_files=7)
    result = _result(version=6, after=after)
    verdict = judge_reconcile(result, landing_rows=4, table_rows_before_commit=150)
    assert verdict.passed, verdict.description
    assert verdict.metadata["concurrent_commits"] == 2
    assert not judge_reconcile(result, landing_rows=4, table_rows_before_commit=149).passed


def test_reconcile_fails_when_the_merge_saw_other_rows_than_landed():
    verdict = judge_reconcile(_result(), landing_rows=5, table_rows_before_commit=None)
    assert not verdict.passed and verdict.severity == Severity.ERROR
    assert "5" in (verdict.description or "") and verdict.metadata["landing_rows"] == 5


def test_reconcile_warns_when_counts_are_unknown():
    unknown = dataclasses.replace(_result().after, partition_rows=None, files_without_stats=1)
    verdict = judge_reconcile(_result(after=unknown), landing_rows=4, table_rows_before_commit=None)
    assert not verdict.passed
    assert verdict.severity == Severity.WARN
    assert "unknown" in (verdict.description or "")


def test_the_judges_import_no_dagster():
    code = (
        "import sys, upsert_pipeline.checks.judges, upsert_pipeline.checks; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# no_out_of_band_writes ----------------------------------------------------------------------


def test_pipeline_commits_in_between_are_not_out_of_band(resources, instance):
    _materialize(resources, instance, "2026-11-02")
    _materialize(resources, instance, "2026-11-03")
    result = _materialize(resources, instance, "2026-11-02")

    evaluation = _evaluation(result, NO_OUT_OF_BAND_WRITES)
    assert evaluation.passed
    values = _values(evaluation)
    assert (values["foreign_commits"], values["pipeline_commits"]) == (0, 1)
    assert values["rows_before"] == values["expected_rows_before"] == values["recorded_rows"]


def test_a_delete_made_outside_the_pipeline_warns_with_what_changed(resources, instance, tmp_path):
    first = _materialize(resources, instance, "2026-11-02")
    recorded = first.asset_materializations_for_node("orders")[0].metadata
    table = DeltaTable(str(tmp_path / "lake" / "orders"))
    table.delete("order_date = '2026-11-02' AND order_id % 10 = 0")
    deleted_version = table.version()

    result = _materialize(resources, instance, "2026-11-02")

    evaluation = _evaluation(result, NO_OUT_OF_BAND_WRITES)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    values = _values(evaluation)
    assert values["foreign_commits"] == 1
    assert values["foreign_commit_versions"] == f"v{deleted_version} DELETE"
    assert values["recorded_version"] == recorded["delta/version"].value
    assert values["recorded_rows"] == recorded["dagster/partition_row_count"].value
    assert values["rows_before"] < values["expected_rows_before"] == values["recorded_rows"]
    # The merge itself put the deleted rows back, and its own counts still reconcile.
    assert _evaluation(result, COUNTS_RECONCILE).passed


def test_an_append_made_outside_the_pipeline_warns(resources, instance, tmp_path):
    _materialize(resources, instance, "2026-11-02")
    table_uri = str(tmp_path / "lake" / "orders")
    write_deltalake(
        table_uri, order_batch([900001, 900002], day=dt.date(2026, 11, 2)), mode="append"
    )

    evaluation = _evaluation(_materialize(resources, instance, "2026-11-02"), NO_OUT_OF_BAND_WRITES)

    assert not evaluation.passed
    assert "WRITE" in _values(evaluation)["foreign_commit_versions"]


def test_a_write_outside_the_pipeline_warns_on_its_partition_only(resources, instance, tmp_path):
    for day in ("2026-11-02", "2026-11-03"):
        _materialize(resources, instance, day)
    table = DeltaTable(str(tmp_path / "lake" / "orders"))
    table.delete("order_date = '2026-11-03' AND order_id % 10 = 0")

    untouched = _evaluation(_materialize(resources, instance, "2026-11-02"), NO_OUT_OF_BAND_WRITES)
    touched = _evaluation(_materialize(resources, instance, "2026-11-03"), NO_OUT_OF_BAND_WRITES)

    assert untouched.passed
    assert (
        _values(untouched)["foreign_commits"],
        _values(untouched)["foreign_commits_elsewhere"],
    ) == (
        0,
        1,
    )
    assert not touched.passed and _values(touched)["foreign_commits"] == 1


# volume_within_history ----------------------------------------------------------------------


@pytest.fixture
def eight_days(landing_dir):
    generate(landing_dir, days=8)
    return landing_dir


def test_volume_passes_on_usual_days_and_warns_on_a_batch_ten_times_larger(
    resources, instance, eight_days
):
    for day in range(1, 7):
        result = _materialize(
            resources, instance, f"2026-11-0{day}", assets=[orders, *feed_checks("orders")]
        )
    usual = _evaluation(result, VOLUME_WITHIN_HISTORY)
    assert usual.passed and _values(usual)["history"] == 5

    day = dt.date(2026, 11, 7)
    usual_rows = pq.read_metadata(eight_days / "orders" / "2026-11-06.parquet").num_rows
    pq.write_table(
        order_batch(range(10_000, 10_000 + 10 * usual_rows), day=day),
        eight_days / "orders" / f"{day}.parquet",
    )
    result = _materialize(resources, instance, str(day), assets=[orders, *feed_checks("orders")])

    evaluation = _evaluation(result, VOLUME_WITHIN_HISTORY)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    values = _values(evaluation)
    assert values["rows_inserted"] == 10 * usual_rows
    assert values["rows_inserted"] > int(values["rows_inserted_band"].strip("[]").split(", ")[1])
    assert "rows_inserted" in evaluation.description


def test_volume_gives_no_verdict_before_enough_history(resources, instance):
    result = _materialize(resources, instance, "2026-11-01")
    evaluation = _evaluation(result, VOLUME_WITHIN_HISTORY)
    assert evaluation.passed and "no verdict" in evaluation.description


# not_empty ----------------------------------------------------------------------------------


def test_not_empty_passes_then_fails_once_the_partition_is_emptied(resources, instance, tmp_path):
    result = _materialize(resources, instance, "2026-11-02")
    evaluation = _evaluation(result, NOT_EMPTY)
    assert evaluation.passed and _values(evaluation)["rows"] > 0

    DeltaTable(str(tmp_path / "lake" / "orders")).delete("order_date = '2026-11-02'")
    alone = _run_standalone_checks(resources, instance, "2026-11-02")

    evaluation = _evaluation(alone, NOT_EMPTY)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert (_values(evaluation)["rows"], evaluation.description) == (0, "no rows")
    assert _evaluation(alone, NOT_EMPTY, asset="customers").passed


def test_not_empty_fails_for_a_partition_never_loaded(resources, instance):
    _materialize(resources, instance, "2026-11-02")
    evaluation = _evaluation(_run_standalone_checks(resources, instance, "2026-11-04"), NOT_EMPTY)
    assert not evaluation.passed and evaluation.partition == "2026-11-04"


# no check reads a data file -----------------------------------------------------------------


def test_standalone_checks_read_no_data_file(resources, instance, tmp_path):
    for partition in ("2026-11-01", "2026-11-02"):
        _materialize(resources, instance, partition)
    lake = tmp_path / "lake"
    removed = [path for path in lake.rglob("*.parquet") if "_delta_log" not in path.parts]
    assert removed
    for path in removed:
        path.unlink()

    result = _run_standalone_checks(resources, instance, "2026-11-02")

    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {(e.asset_key.path[0], e.check_name) for e in evaluations} == {
        (asset, check)
        for asset in ("orders", "customers")
        for check in (VOLUME_WITHIN_HISTORY, NOT_EMPTY)
    }
    assert all(e.passed for e in evaluations)


# freshness ----------------------------------------------------------------------------------


def test_freshness_is_a_policy_the_daemon_judges_never_a_check_in_a_run(resources, instance):
    for name in ("orders", "customers"):
        policy = defs.resolve_assets_def(name).specs_by_key[dg.AssetKey(name)].freshness_policy
        assert isinstance(policy, dg.FreshnessPolicy)
        assert policy.deadline_cron == "0 9 * * *"  # the YAML's freshness.deadline_cron
    graph = defs.resolve_asset_graph()
    assert {key.name for key in graph.asset_check_keys} == {
        COUNTS_RECONCILE,
        NO_OUT_OF_BAND_WRITES,
        VOLUME_WITHIN_HISTORY,
        NOT_EMPTY,
        ROW_COUNTS_UNCHANGED,  # the maintenance assets' (maintain_lake)
        # one per expectation of the orders YAML
        expectation_check("non_negative_amount"),
        expectation_check("known_status"),
    }
    # What a UI materialization of the asset runs: the asset and every check of it.
    result = _materialize(
        resources, instance, "2026-11-02", assets=[orders, *feed_checks("orders")]
    )
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 6 and all(e.passed for e in evaluations)


def test_volume_history_counts_each_day_once_however_often_it_was_rerun(
    resources, instance, eight_days
):
    for day in range(1, 6):
        _materialize(
            resources, instance, f"2026-11-0{day}", assets=[orders, *feed_checks("orders")]
        )
    # Day 5 re-delivered with changes and loaded twice more: still one day of history.
    batch = pq.read_table(eight_days / "orders" / "2026-11-05.parquet")
    for status in ("paid", "shipped"):
        pq.write_table(
            batch.set_column(3, "status", pa.array([status] * batch.num_rows)),
            eight_days / "orders" / "2026-11-05.parquet",
        )
        rerun = _materialize(
            resources, instance, "2026-11-05", assets=[orders, *feed_checks("orders")]
        )
        # Its own earlier loads are not its history: days 1-4.
        assert _values(_evaluation(rerun, VOLUME_WITHIN_HISTORY))["history"] == 4

    result = _materialize(
        resources, instance, "2026-11-06", assets=[orders, *feed_checks("orders")]
    )

    assert _values(_evaluation(result, VOLUME_WITHIN_HISTORY))["history"] == 5
