"""read_row_counts(): partition and table counts from the log alone, equal to a scan."""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake

from upsert_pipeline.delta import read_row_counts, snapshot_counts, upsert
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows


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
