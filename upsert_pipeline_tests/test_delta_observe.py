"""observe_commits(): every commit since a version with its metrics' counts and the row counts of
the table and its partitions at that version, from the log (deletion vectors subtracted)."""

import json
from pathlib import Path

import polars as pl
from deltalake import DeltaTable, write_deltalake

from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.history import RowChanges
from upsert_pipeline.delta.log_files import commit_file_name
from upsert_pipeline.delta.observe import observe_commits
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch
from upsert_pipeline_tests.fixture_tables import copy_fixture

FIXTURE = "cdf-table-with-cdc-and-dvs"
FIXTURE_ROWS = 5  # the fixture README's truth at its latest version


def test_the_fixture_commits_are_recorded_with_their_counts(tmp_path):
    uri = copy_fixture(FIXTURE, tmp_path)

    seen = observe_commits(uri)

    by_version = {c.version: c for c in seen.commits}
    assert seen.latest_version == 25 and sorted(by_version) == list(range(26))
    assert seen.skipped_versions == ()
    # the two Databricks MERGEs, with their camelCase string metrics
    assert by_version[18].commit.operation == by_version[22].commit.operation == "MERGE"
    assert by_version[18].changes == RowChanges(inserted=2, updated=1, deleted=0, copied=0)
    assert by_version[22].changes == RowChanges(inserted=1, updated=0, deleted=1, copied=0)
    # rows at each version from the log with deletion vectors subtracted, equal to polars
    assert by_version[25].table_rows == FIXTURE_ROWS
    for version in (17, 18, 22, 24, 25):
        truth = pl.read_delta(uri, version=version).height
        assert by_version[version].table_rows == truth, version
    # physical numRecords say 11 at the end; deletion vectors remove 6
    actions = DeltaTable(uri).get_add_actions(flatten=True)
    assert sum(actions.column("num_records").to_pylist()) == 11
    assert by_version[25].table_files == 2 and by_version[25].partition_rows == {}


def test_only_commits_after_the_last_observed_version(tmp_path):
    uri = copy_fixture(FIXTURE, tmp_path)
    seen = observe_commits(uri, after_version=21)
    assert [c.version for c in seen.commits] == [22, 23, 24, 25]
    assert observe_commits(uri, after_version=25).commits == ()


def test_at_most_max_commits_newest_first_skipped_listed(tmp_path):
    uri = copy_fixture(FIXTURE, tmp_path)
    seen = observe_commits(uri, after_version=15, max_commits=3)
    assert [c.version for c in seen.commits] == [23, 24, 25]
    assert seen.skipped_versions == tuple(range(16, 23))


def test_a_commit_without_metrics_has_unknown_counts(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, order_batch(range(5)), partition_by=["order_date"])
    write_deltalake(uri, order_batch(range(5, 8), day=OTHER_DAY), mode="append")
    # strip v1's commitInfo, as some writers leave it
    path = Path(uri) / "_delta_log" / commit_file_name(1)
    actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(a) + "\n" for a in actions if "commitInfo" not in a))

    seen = observe_commits(uri)

    first, second = seen.commits
    assert first.changes.known and first.changes.inserted == 5
    assert second.commit.operation is None and not second.changes.known
    assert second.changes == RowChanges(inserted=None, updated=None, deleted=None, copied=None)
    # the row counts still come from the log at that version
    assert second.table_rows == 8
    assert second.partition_rows == {f"order_date={DAY}": 5, f"order_date={OTHER_DAY}": 3}


def test_partitions_are_counted_at_each_version(table_uri):
    upsert(table_uri, order_batch(range(10)), keys=["order_id"], partition={"order_date": DAY})
    upsert(
        table_uri,
        order_batch(range(10, 14), day=OTHER_DAY),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
    )
    DeltaTable(table_uri).delete(f"order_date = '{DAY}' AND order_id < 3")

    seen = observe_commits(table_uri, after_version=0)

    assert [c.commit.operation for c in seen.commits] == ["MERGE", "MERGE", "DELETE"]
    assert [c.partition_rows for c in seen.commits] == [
        {f"order_date={DAY}": 10},
        {f"order_date={DAY}": 10, f"order_date={OTHER_DAY}": 4},
        {f"order_date={DAY}": 7, f"order_date={OTHER_DAY}": 4},
    ]
    assert [c.changes.deleted for c in seen.commits] == [0, 0, 3]
    assert [c.table_rows for c in seen.commits] == [10, 14, 11]
