"""Column profiles from the log, checked against a scan of the table (the truth they avoid)."""

import datetime as dt
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.profile import Exactness, read_profiles
from upsert_pipeline_tests.conftest import order_batch
from upsert_pipeline_tests.fixture_tables import copy_fixture

DAY = dt.date(2026, 11, 2)
NEXT = dt.date(2026, 11, 3)


def _scan_profile(frame: pl.DataFrame, column: str) -> tuple[int, object, object]:
    values = frame.get_column(column)
    return values.null_count(), values.min(), values.max()


def test_profile_of_a_table_this_project_wrote_equals_a_scan(table_uri):
    upsert(
        table_uri,
        order_batch(range(1, 41), day=DAY),
        keys=["order_id"],
        partition={"order_date": DAY},
    )
    nulls = order_batch(range(100, 110), day=NEXT, status=None, amount=Decimal("0.50"))
    upsert(table_uri, nulls, keys=["order_id"], partition={"order_date": NEXT})
    # Updates rewrite files: the profile must follow the commit, not add old files in.
    upsert(
        table_uri,
        order_batch(range(1, 11), day=DAY, amount=Decimal("120.00")),
        keys=["order_id"],
        partition={"order_date": DAY},
    )

    day, next_day, whole = read_profiles(
        table_uri, [{"order_date": DAY}, {"order_date": NEXT}, None]
    )

    scan = pl.read_delta(table_uri)
    for profile, frame in [
        (day, scan.filter(pl.col("order_date") == DAY)),
        (next_day, scan.filter(pl.col("order_date") == NEXT)),
        (whole, scan),
    ]:
        assert profile.rows == frame.height
        assert [c.column for c in profile.columns] == scan.columns
        for column in profile.columns:
            assert (column.nulls, column.min_max) == (Exactness.EXACT, Exactness.EXACT)
            assert (column.null_count, column.min, column.max) == _scan_profile(
                frame, column.column
            ), column.column
    assert next_day.column("status").null_fraction == 1.0
    assert whole.column("status").null_fraction == pytest.approx(10 / 50)
    assert day.column("amount").max == Decimal("120.00")
    assert whole.scope == "" and day.scope == "order_date=2026-11-02"


def test_columns_past_the_stats_limit_are_unknown_and_named(tmp_path):
    uri = str(tmp_path / "limited")
    batch = pa.table({"a": [1, None], "b": ["x", "y"], "c": [1.0, 2.0]})
    write_deltalake(uri, batch, configuration={"delta.dataSkippingNumIndexedCols": "2"})

    [profile] = read_profiles(uri, [None])

    assert profile.column("a").null_count == 1
    assert (profile.column("b").min, profile.column("b").max) == ("x", "y")
    past = profile.column("c")
    assert (past.nulls, past.min_max, past.null_count, past.null_fraction) == (
        Exactness.UNKNOWN,
        Exactness.UNKNOWN,
        None,
        None,
    )
    assert "delta.dataSkippingNumIndexedCols=2" in (past.reason or "")


def test_long_strings_are_bounds(tmp_path):
    uri = str(tmp_path / "strings")
    write_deltalake(uri, pa.table({"s": ["a" * 40, "b"]}))

    [profile] = read_profiles(uri, [None])

    assert profile.column("s").min_max is Exactness.BOUND
    assert profile.column("s").nulls is Exactness.EXACT


@pytest.mark.parametrize("name", ["table-with-dv-small", "cdf-table-with-cdc-and-dvs"])
def test_profiles_of_tables_with_deletion_vectors_are_bounds_of_a_scan(tmp_path, name):
    uri = copy_fixture(name, tmp_path)

    [profile] = read_profiles(uri, [None])

    scan = pl.read_delta(uri)
    assert profile.rows == scan.height
    assert profile.files_with_deletion_vectors
    for column in profile.columns:
        nulls, low, high = _scan_profile(scan, column.column)
        assert (column.nulls, column.min_max) == (Exactness.BOUND, Exactness.BOUND)
        assert column.null_fraction is None
        assert column.null_count is not None and column.null_count >= nulls
        assert column.min <= low and column.max >= high
    # The truth is narrower: the bounds are not passed off as exact figures.
    if name == "table-with-dv-small":
        assert (profile.column("value").min, profile.column("value").max) == (0, 9)
        assert _scan_profile(scan, "value")[1:] == (1, 8)


def test_a_file_without_stats_makes_the_profile_unknown(tmp_path):
    uri = copy_fixture("delta-stats-optional", tmp_path)

    [profile] = read_profiles(uri, [None])

    assert profile.rows is None
    assert len(profile.files_without_stats) == 1
    for column in profile.columns:
        assert (column.null_count, column.min, column.max) == (None, None, None)
        assert column.nulls is Exactness.UNKNOWN and column.min_max is Exactness.UNKNOWN
        assert "without stats" in (column.reason or "")


def test_upsert_profiles_the_snapshot_it_committed(table_uri):
    upsert(table_uri, order_batch(range(1, 21)), keys=["order_id"], partition={"order_date": DAY})

    result = upsert(
        table_uri,
        order_batch(range(15, 31), status=None),
        keys=["order_id"],
        partition={"order_date": DAY},
        profile=True,
    )

    assert result.profiles == tuple(
        read_profiles(table_uri, [{"order_date": DAY}, None], version=result.version)
    )
    assert result.profiles[0].column("status").null_count == 16
    assert upsert(table_uri, order_batch([1]), keys=["order_id"]).profiles == ()
