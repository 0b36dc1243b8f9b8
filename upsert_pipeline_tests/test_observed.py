"""Observed tables in Dagster: every commit of a table other engines write recorded as an
observation with its counts, read back from the event log."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.components.observed_table import ObservedDeltaTable
from upsert_pipeline.delta.log_files import commit_file_name
from upsert_pipeline.observed import build_observed_table
from upsert_pipeline.sample_partner import write_partner_table
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch
from upsert_pipeline_tests.fixture_tables import copy_fixture

FIXTURE_ROWS = 5  # the fixture README's truth at its latest version


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _observe(asset, instance):
    job = dg.Definitions(
        assets=[asset], jobs=[dg.define_asset_job("observe", selection=[asset])]
    ).resolve_job_def("observe")
    result = job.execute_in_process(instance=instance)
    assert result.success
    return result


def _recorded(instance, name) -> list[dict[str, object]]:
    """Every observation of the asset in the event log, oldest first, as plain values."""
    records = instance.fetch_observations(dg.AssetKey(name), limit=1000).records
    return [
        {key: value.value for key, value in r.asset_observation.metadata.items()}
        for r in reversed(records)
    ]


def test_the_fixture_commits_are_observed_with_their_counts(tmp_path, instance):
    uri = copy_fixture("cdf-table-with-cdc-and-dvs", tmp_path)
    asset = build_observed_table("partner_events", uri)

    _observe(asset, instance)

    observed = _recorded(instance, "partner_events")
    by_version = {o[keys.VERSION]: o for o in observed}
    assert sorted(by_version) == list(range(26)) and len(observed) == 26
    merge_18, merge_22 = by_version[18], by_version[22]
    assert merge_18[keys.OPERATION] == merge_22[keys.OPERATION] == "MERGE"
    # What Databricks recorded the merge cost, and what its add actions wrote.
    assert (
        merge_18[keys.COST_MERGE_EXECUTION_MS],
        merge_18[keys.COST_MERGE_SCAN_MS],
        merge_18[keys.COST_MERGE_REWRITE_MS],
    ) == (2281, 935, 1290)
    # One file written (numTargetBytesAdded: 1072); the other add re-adds a file with its new
    # deletion vector, which wrote no data file.
    assert merge_18[keys.COST_COMMIT_FILES_ADDED] == 1
    assert merge_18[keys.COST_BYTES_WRITTEN] == 1072
    assert merge_18[keys.COST_COMMIT_FILES_REMOVED] == 0
    assert merge_18[keys.COST_DELETION_VECTORS_UPDATED] == 1
    assert (
        merge_18[keys.COMMIT_ROWS_INSERTED],
        merge_18[keys.COMMIT_ROWS_UPDATED],
        merge_18[keys.COMMIT_ROWS_DELETED],
        merge_18[keys.COMMIT_ROWS_COPIED],
    ) == (2, 1, 0, 0)
    assert (
        merge_22[keys.COMMIT_ROWS_INSERTED],
        merge_22[keys.COMMIT_ROWS_UPDATED],
        merge_22[keys.COMMIT_ROWS_DELETED],
    ) == (1, 0, 1)
    assert merge_18[keys.COMMIT_COUNTS_UNKNOWN] is False
    assert "Databricks" in str(merge_18[keys.ENGINE])
    # the table's rows at each version, from the log with deletion vectors subtracted
    assert (merge_18[keys.ROW_COUNT], merge_22[keys.ROW_COUNT]) == (8, 8)
    assert observed[-1][keys.VERSION] == 25 and observed[-1][keys.ROW_COUNT] == FIXTURE_ROWS
    assert observed[-1][keys.NEW_COMMITS] == 26
    # counts are integers the UI can plot
    records = instance.fetch_observations(dg.AssetKey("partner_events"), limit=1).records
    metadata = records[0].asset_observation.metadata
    assert isinstance(metadata[keys.ROW_COUNT], dg.IntMetadataValue)


def test_only_new_commits_are_recorded_on_the_next_observation(tmp_path, instance):
    uri = str(tmp_path / "partner")
    write_deltalake(uri, order_batch(range(5)), partition_by=["order_date"])
    asset = build_observed_table("partner", uri)
    _observe(asset, instance)

    _observe(asset, instance)  # nothing new
    write_deltalake(uri, order_batch(range(5, 8), day=OTHER_DAY), mode="append")
    DeltaTable(uri).delete("order_id < 2")
    _observe(asset, instance)

    observed = _recorded(instance, "partner")
    assert [o[keys.VERSION] for o in observed] == [0, 0, 1, 2]
    assert observed[1][keys.NEW_COMMITS] == 0 and keys.ROW_COUNT not in observed[1]
    append, delete = observed[2], observed[3]
    assert append[keys.COMMIT_ROWS_INSERTED] == 3 and append[keys.ROW_COUNT] == 8
    assert delete[keys.OPERATION] == "DELETE" and delete[keys.COMMIT_ROWS_DELETED] == 2
    assert delete[keys.ROW_COUNT] == 6
    partitions = {
        record.data["partition"]: record.data["rows"]
        for record in delete[keys.PARTITION_ROW_COUNTS].records
    }
    assert partitions == {f"order_date={DAY}": 3, f"order_date={OTHER_DAY}": 3}


def test_a_commit_without_metrics_is_recorded_as_unknown(tmp_path, instance):
    uri = str(tmp_path / "partner")
    write_deltalake(uri, order_batch(range(5)), partition_by=["order_date"])
    write_deltalake(uri, order_batch(range(5, 8)), mode="append")
    path = Path(uri) / "_delta_log" / commit_file_name(1)
    actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(a) + "\n" for a in actions if "commitInfo" not in a))

    _observe(build_observed_table("partner", uri), instance)

    _, bare = _recorded(instance, "partner")
    assert bare[keys.COMMIT_COUNTS_UNKNOWN] is True
    assert bare[keys.OPERATION] == "unknown"
    for key in (keys.COMMIT_ROWS_INSERTED, keys.COMMIT_ROWS_UPDATED, keys.COMMIT_ROWS_DELETED):
        assert key not in bare
    assert bare[keys.ROW_COUNT] == 8  # the log still knows the rows at that version


def test_a_table_not_written_yet_is_observed_without_failing(tmp_path, instance):
    _observe(build_observed_table("later", str(tmp_path / "missing")), instance)
    [observation] = _recorded(instance, "later")
    assert observation[keys.NEW_COMMITS] == 0 and keys.VERSION not in observation


def test_the_component_declares_an_observed_table_by_its_uri(tmp_path, instance):
    uri = str(tmp_path / "events")
    write_partner_table(uri)
    component = ObservedDeltaTable(name="partner_events", uri=uri)

    defs = dg.build_defs_for_component(component)
    [asset] = list(defs.assets or [])
    _observe(asset, instance)

    observed = _recorded(instance, "partner_events")
    assert [o[keys.OPERATION] for o in observed] == ["WRITE", "WRITE", "MERGE", "DELETE"]
    merge, delete = observed[2], observed[3]
    assert (merge[keys.COMMIT_ROWS_INSERTED], merge[keys.COMMIT_ROWS_UPDATED]) == (20, 10)
    assert delete[keys.COMMIT_ROWS_DELETED] == 10 and delete[keys.ROW_COUNT] == 170
    assert component.table_uri(Path("/project")) == uri
    relative = ObservedDeltaTable(name="e", uri="data/partner/events")
    assert relative.table_uri(Path("/project")) == "/project/data/partner/events"
    assert ObservedDeltaTable(name="e", uri="s3://b/t").table_uri(Path("/p")) == "s3://b/t"


def test_the_code_location_observes_the_tables_its_defs_folder_declares():
    from upsert_pipeline.definitions import defs

    job = defs.resolve_job_def("observe_tables")
    assert dg.AssetKey("partner_events") in job.asset_layer.selected_asset_keys
    [schedule] = [s for s in defs.schedules or () if s.name == "observe_tables_schedule"]
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    # an observed table is never part of the daily ingestion
    ingest = defs.resolve_job_def("ingest_daily")
    assert dg.AssetKey("partner_events") not in ingest.asset_layer.selected_asset_keys


@pytest.mark.parametrize("new_versions", [1, 5])
def test_a_table_dropped_and_created_again_at_the_uri_is_observed_from_its_first_commit(
    tmp_path, instance, new_versions
):
    uri = str(tmp_path / "partner")
    for day in (DAY, OTHER_DAY, DAY):
        write_deltalake(uri, order_batch(range(3), day=day), mode="append")  # v0..v2
    asset = build_observed_table("partner", uri)
    _observe(asset, instance)
    old_id = _recorded(instance, "partner")[-1][keys.TABLE_ID]

    shutil.rmtree(uri)  # dropped; then written again: fewer, or more, versions than before
    for version in range(new_versions):
        write_deltalake(uri, order_batch(range(10 + version, 12 + version)), mode="append")
    _observe(asset, instance)

    observed = _recorded(instance, "partner")[3:]
    assert [o[keys.VERSION] for o in observed] == list(range(new_versions))
    assert {o[keys.TABLE_ID] for o in observed} == {DeltaTable(uri).metadata().id} != {old_id}
    assert observed[-1][keys.RECREATED] is True
    assert observed[-1][keys.ROW_COUNT] == 2 * new_versions


def test_a_foreign_commit_that_changes_the_schema_is_observed_with_before_and_after(
    tmp_path, instance
):
    uri = str(tmp_path / "foreign")
    write_deltalake(uri, pa.table({"id": pa.array([1, 2], pa.int32()), "v": ["a", None]}))
    asset = build_observed_table("foreign", uri)
    _observe(asset, instance)
    # Another engine widens id and adds a column, overwriting the table.
    wider = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "v": ["a", "b", "c"], "w": [1.0] * 3})
    write_deltalake(uri, wider, mode="overwrite", schema_mode="overwrite")

    _observe(asset, instance)

    first, latest = _recorded(instance, "foreign")
    assert first[keys.SCHEMA_CHANGED] is False and keys.SCHEMA_CHANGES not in first
    assert latest[keys.SCHEMA_CHANGED] is True
    assert latest[keys.SCHEMA_CHANGES] == ["added w: double", "type of id: int32 -> int64"]
    assert [c.type for c in latest[keys.SCHEMA_BEFORE].columns] == ["int32", "string"]
    assert [c.name for c in latest[keys.COLUMN_SCHEMA].columns] == ["id", "v", "w"]
    # Its cost, from its own commit file: it wrote one file and removed the first commit's.
    assert latest[keys.COST_BYTES_REMOVED] == first[keys.COST_BYTES_WRITTEN] > 0
    assert latest[keys.COST_COMMIT_FILES_REMOVED] == 1
    # The profile of the version it wrote: v has no nulls any more.
    assert first["profile/v/null_fraction"] == 0.5
    assert latest["profile/v/null_fraction"] == 0.0


def test_observing_a_table_with_deletion_vectors_profiles_bounds_not_numbers(tmp_path, instance):
    uri = copy_fixture("table-with-dv-small", tmp_path)

    _observe(build_observed_table("dv", uri), instance)

    latest = _recorded(instance, "dv")[-1]
    [row] = latest["profile/columns"].records
    assert (row.data["nulls"], row.data["min_max"]) == ("bound", "bound")
    assert "profile/value/null_fraction" not in latest
    assert latest["profile/files_with_deletion_vectors"] == 1


def test_a_foreign_commit_is_profiled_for_the_partitions_it_touched(tmp_path, instance):
    uri = str(tmp_path / "events")
    first = pa.table({"day": ["2026-11-01"] * 3, "v": [1, None, 3]})
    write_deltalake(uri, first, partition_by=["day"])
    second = pa.table({"day": ["2026-11-02"] * 4, "v": [None, None, 7, 8]})
    write_deltalake(uri, second, partition_by=["day"], mode="append")

    _observe(build_observed_table("events", uri), instance)

    _, appended = _recorded(instance, "events")
    rows = [record.data for record in appended["profile/partition_columns"].records]
    assert {row["partition"] for row in rows} == {"day=2026-11-02"}
    [v] = [row for row in rows if row["column"] == "v"]
    assert (v["null_count"], v["min"], v["max"], v["nulls"]) == (2, "7", "8", "exact")
    assert v["null_fraction"] == 0.5
    # The table's profile covers both partitions.
    [table_v] = [r.data for r in appended["profile/columns"].records if r.data["column"] == "v"]
    assert (table_v["null_count"], table_v["min"], table_v["max"]) == (3, "1", "8")
