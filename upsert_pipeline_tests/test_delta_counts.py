"""read_row_counts(): partition and table counts from the log alone, equal to a scan."""

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from upsert_pipeline.delta import (
    read_partition_row_counts,
    read_row_counts,
    snapshot_counts,
    upsert,
)
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows
from upsert_pipeline_tests.fixture_tables import copy_fixture


@pytest.fixture
def two_day_table(table_uri):
    upsert(table_uri, order_batch(range(10)), keys=["order_id"], partition={"order_date": DAY})
    upsert(
        table_uri,
        order_batch(range(10, 13), day=OTHER_DAY),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
    )
    # an append of another file into DAY, as another writer would leave it
    write_deltalake(table_uri, order_batch(range(20, 25)), mode="append")
    return table_uri


def test_counts_equal_a_scan(two_day_table):
    counts = read_row_counts(two_day_table, partition={"order_date": DAY})
    assert counts.partition_rows == scan_rows(two_day_table, DAY) == 15
    assert counts.table_rows == scan_rows(two_day_table) == 18
    assert (counts.partition_files, counts.table_files) == (2, 3)


def test_counts_read_no_data_file(two_day_table):
    for data_file in Path(two_day_table).rglob("*.parquet"):
        data_file.unlink()
    counts = read_row_counts(two_day_table, partition={"order_date": "2026-11-03"})
    assert (counts.partition_rows, counts.table_rows) == (3, 18)


def test_counts_of_an_older_version(two_day_table):
    counts = read_row_counts(two_day_table, version=2, partition={"order_date": DAY})
    assert (counts.version, counts.partition_rows, counts.table_rows) == (2, 10, 13)


def test_a_partition_with_no_file_counts_zero(two_day_table):
    counts = read_row_counts(two_day_table, partition={"order_date": dt.date(2030, 1, 1)})
    assert (counts.partition_rows, counts.partition_files) == (0, 0)


def test_snapshot_counts_use_the_snapshot_held_in_memory(two_day_table):
    table = DeltaTable(two_day_table)
    shutil.rmtree(Path(two_day_table) / "_delta_log")
    assert snapshot_counts(table).table_rows == 18


# tables written by Spark and Databricks ------------------------------------------------------

TRUTHS = {"table-with-dv-small": 8, "cdf-table-with-cdc-and-dvs": 5, "delta-stats-optional": None}


@pytest.fixture
def fixture_copy(tmp_path):
    """Copies one of the shared fixture tables to ``tmp_path``; a missing fixture fails."""
    return lambda name: copy_fixture(name, tmp_path)


@pytest.mark.parametrize(("name", "truth"), TRUTHS.items())
def test_counts_of_tables_other_engines_wrote_are_true_or_unknown(fixture_copy, name, truth):
    uri = fixture_copy(name)
    counts = read_row_counts(uri)
    assert counts.table_rows == truth
    if truth is not None:
        assert truth == pl.read_delta(uri).height  # the reference: polars applies the vectors
    # what the log alone says, and what this project must not report
    assert DeltaTable(uri).count() != truth


def test_counts_of_a_deletion_vector_table_read_no_data_file(fixture_copy):
    uri = fixture_copy("cdf-table-with-cdc-and-dvs")
    for data_file in Path(uri).glob("*.parquet"):
        data_file.unlink()
    assert read_row_counts(uri).table_rows == 5


def test_an_unreadable_deletion_vector_makes_the_count_unknown_not_high(fixture_copy):
    uri = fixture_copy("table-with-dv-small")
    for vector in Path(uri).glob("deletion_vector_*.bin"):
        vector.unlink()
    assert read_row_counts(uri).table_rows is None


def test_deletion_vectors_arriving_through_a_checkpoint_are_subtracted(fixture_copy):
    uri = fixture_copy("table-with-dv-small")
    DeltaTable(uri).create_checkpoint()
    log = Path(uri) / "_delta_log"
    # The commit that added the deletion vector is gone: only the checkpoint holds it.
    for commit in log.glob("*.json"):
        commit.unlink()
    assert [path.name for path in log.glob("*.checkpoint.parquet")]
    counts = read_row_counts(uri)
    assert (counts.version, counts.table_rows) == (1, 8)


def test_an_upsert_into_a_deletion_vector_table_counts_live_rows(fixture_copy):
    uri = fixture_copy("table-with-dv-small")
    # 0 was removed by the deletion vector (inserted again); 1 is live; 100 and 101 are new.
    batch = pa.table({"value": pa.array([0, 1, 100, 101], pa.int32())})

    result = upsert(uri, batch, keys=["value"])

    assert result.before.table_rows == 8
    assert (result.inserted, result.updated, result.unchanged) == (3, 0, 1)
    assert result.table_rows == 8 + 3 == pl.read_delta(uri).height
    assert read_row_counts(uri).table_rows == 11


def test_an_ordinary_table_never_reads_deletion_vectors(two_day_table, monkeypatch):
    def refuse(self):
        raise AssertionError("deletion vectors read for a table without the feature")

    monkeypatch.setattr(DeltaTable, "deletion_vectors", refuse)
    counts = read_row_counts(two_day_table, partition={"order_date": DAY})
    assert (counts.partition_rows, counts.table_rows) == (15, 18)


def _partitioned_dv_table(source: str, target: Path) -> str:
    """``table-with-dv-small`` rewritten as partitioned by ``day``: its file (10 rows, 2 removed
    by the deletion vector) in ``day=2026-11-02``, an unvectored copy of it in ``day=2026-11-03``.
    """
    shutil.copytree(source, target)
    (data_file,) = target.glob("*.parquet")
    for day in ("2026-11-02", "2026-11-03"):
        (target / f"day={day}").mkdir()
        shutil.copy(data_file, target / f"day={day}" / data_file.name)
    data_file.unlink()
    schema = {
        "type": "struct",
        "fields": [
            {"name": "value", "type": "integer", "nullable": True, "metadata": {}},
            {"name": "day", "type": "string", "nullable": True, "metadata": {}},
        ],
    }
    for commit in sorted((target / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in commit.read_text().splitlines()]
        for action in list(actions):
            if "metaData" in action:
                action["metaData"]["schemaString"] = json.dumps(schema)
                action["metaData"]["partitionColumns"] = ["day"]
            for kind in ("add", "remove"):
                if kind in action:
                    action[kind]["path"] = f"day=2026-11-02/{action[kind]['path']}"
                    action[kind]["partitionValues"] = {"day": "2026-11-02"}
            if "add" in action and commit.name.startswith("00000000000000000000"):
                copy = json.loads(json.dumps(action))
                copy["add"]["path"] = f"day=2026-11-03/{data_file.name}"
                copy["add"]["partitionValues"] = {"day": "2026-11-03"}
                actions.append(copy)
        commit.write_text("".join(json.dumps(action) + "\n" for action in actions))
    return str(target)


def test_deletion_vectors_are_subtracted_from_their_own_partition(fixture_copy, tmp_path):
    uri = _partitioned_dv_table(fixture_copy("table-with-dv-small"), tmp_path / "by_day")
    frame = pl.read_delta(uri)

    with_vector = read_row_counts(uri, partition={"day": "2026-11-02"})
    without = read_row_counts(uri, partition={"day": "2026-11-03"})

    assert with_vector.partition_rows == frame.filter(pl.col("day") == "2026-11-02").height == 8
    assert without.partition_rows == frame.filter(pl.col("day") == "2026-11-03").height == 10
    assert with_vector.table_rows == without.table_rows == frame.height == 18


def test_counts_of_several_partitions_from_one_load_equal_one_load_each(two_days):
    empty = dt.date(2026, 11, 9)
    partitions = [{"order_date": DAY}, None, {"order_date": OTHER_DAY}, {"order_date": empty}]
    together = read_partition_row_counts(two_days, partitions)
    assert together == [read_row_counts(two_days, partition=p) for p in partitions]
    assert [counts.partition_rows for counts in together] == [5, None, 3, 0]
    assert {counts.table_rows for counts in together} == {8}
