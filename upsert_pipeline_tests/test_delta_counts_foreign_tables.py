"""Counts of tables other engines wrote: deletion vectors subtracted, a missing stat unknown.

The tables are the read-only fixtures in ``shared/fixtures/delta-tables`` (their README gives the
truths); each test copies one to ``tmp_path`` first.
"""

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.table import TableFeatures

from upsert_pipeline.delta import read_row_counts, upsert
from upsert_pipeline.delta.counts import snapshot_counts, uses_deletion_vectors
from upsert_pipeline_tests.fixture_tables import copy_fixture

TRUTHS = [
    # (table, live rows, files, files without numRecords, deletion vectors)
    ("table-with-dv-small", 8, 1, 0, True),
    ("cdf-table-with-cdc-and-dvs", 5, 2, 0, True),
    ("delta-stats-optional", None, 2, 1, False),
]


@pytest.mark.parametrize(("name", "rows", "files", "without_stats", "dvs"), TRUTHS)
def test_counts_of_tables_other_engines_wrote(tmp_path, name, rows, files, without_stats, dvs):
    uri = copy_fixture(name, tmp_path)

    counts = read_row_counts(uri)

    assert counts.table_rows == rows
    assert (counts.table_files, counts.files_without_stats) == (files, without_stats)
    assert (counts.partition_rows, counts.partition_files) == (None, 0)
    assert counts.version == DeltaTable(uri).version()
    assert uses_deletion_vectors(DeltaTable(uri)) == dvs
    if rows is not None:
        assert rows == pl.read_delta(uri).height


def test_an_unreadable_deletion_vector_makes_the_count_unknown(tmp_path):
    uri = copy_fixture("table-with-dv-small", tmp_path)
    for vector in Path(uri).glob("deletion_vector_*.bin"):
        vector.unlink()

    # numRecords says 10; without the deletion vector the live count cannot be known.
    assert read_row_counts(uri).table_rows is None


def test_an_upsert_into_a_table_with_deletion_vectors_counts_live_rows(tmp_path):
    uri = copy_fixture("table-with-dv-small", tmp_path)
    # 0 was removed by the deletion vector: it does not match and is inserted again.
    batch = pa.table({"value": pa.array([0, 5, 42], pa.int32())})

    result = upsert(uri, batch, keys=["value"])

    assert (result.inserted, result.updated, result.unchanged) == (2, 0, 1)
    assert (result.before.table_rows, result.table_rows) == (8, 10)
    assert result.table_rows == pl.read_delta(uri).height


def test_a_merge_into_a_databricks_table_counts_from_before_and_after(tmp_path):
    uri = copy_fixture("cdf-table-with-cdc-and-dvs", tmp_path)
    batch = pa.table({"id": pa.array([0, 100], pa.int32()), "comment": ["changed", "new"]})

    result = upsert(uri, batch, keys=["id"])

    assert (result.inserted, result.updated) == (1, 1)
    assert (result.before.table_rows, result.table_rows) == (5, 6)
    assert result.table_rows == pl.read_delta(uri).height


def test_a_partition_count_leaves_out_the_null_partition(tmp_path):
    uri = str(tmp_path / "by_region")
    regions = pa.array(["eu", "eu", None, "us"], pa.string())
    write_deltalake(uri, pa.table({"id": [1, 2, 3, 4], "region": regions}), partition_by=["region"])

    counts = snapshot_counts(DeltaTable(uri), {"region": "eu"})

    assert (counts.partition_rows, counts.partition_files, counts.table_rows) == (2, 1, 4)
    assert read_row_counts(uri, partition={"region": "us"}).partition_rows == 1


def test_counts_of_a_day_partition(tmp_path):
    uri = str(tmp_path / "days")
    days = [dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 2)]
    write_deltalake(uri, pa.table({"id": [1, 2, 3], "day": days}), partition_by=["day"])
    write_deltalake(uri, pa.table({"id": [4], "day": [days[0]]}), mode="append")

    counts = read_row_counts(uri, partition={"day": days[0]})

    assert (counts.partition_rows, counts.partition_files, counts.table_files) == (2, 2, 3)
    assert counts.files_without_stats == 0


def test_a_table_with_deletion_vectors_enabled_but_none_written_counts_num_records(tmp_path):
    # Databricks enables the feature on new tables; until a delete, no file has a vector.
    uri = str(tmp_path / "enabled")
    write_deltalake(uri, pa.table({"id": [1, 2, 3]}))
    DeltaTable(uri).alter.add_feature(
        TableFeatures.DeletionVectors, allow_protocol_versions_increase=True
    )
    assert uses_deletion_vectors(DeltaTable(uri))

    assert read_row_counts(uri).table_rows == 3
    result = upsert(uri, pa.table({"id": [3, 4]}), keys=["id"])
    assert (result.before.table_rows, result.inserted, result.table_rows) == (3, 1, 4)
