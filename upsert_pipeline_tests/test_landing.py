"""Reading a partition's landing files: its path, its schema, the errors that name what is wrong."""

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from upsert_pipeline.delta import ColumnTypeError, MissingColumnError
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.landing import (
    InvalidPartitionKeyError,
    LandingFileError,
    LandingFileNotFoundError,
)
from upsert_pipeline.resources import LandingResource
from upsert_pipeline_tests.conftest import order_batch


def read_landing_batch(landing, feed, key):
    return LandingResource(uri=landing).read_batch(feed, key)


def landing_path(landing, feed, key):
    return LandingResource(uri=landing).path(feed, key)


def _land(tmp_path, table: pa.Table, day: str = "2026-11-02") -> str:
    folder = tmp_path / "orders"
    folder.mkdir(exist_ok=True)
    pq.write_table(table, folder / f"{day}.parquet")
    return str(tmp_path)


def test_reads_the_days_file_in_the_feeds_schema(tmp_path):
    batch = order_batch([1, 2]).cast(
        pa.schema(
            [f.with_type(pa.large_string()) if f.name == "status" else f for f in ORDERS.schema]
        )
    )
    landing = _land(tmp_path, batch)
    read = read_landing_batch(landing, ORDERS, "2026-11-02")
    assert read.schema == ORDERS.schema
    assert read.num_rows == 2


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(
        LandingFileNotFoundError, match=re.escape(str(tmp_path / "orders" / "2026-11-09.parquet"))
    ):
        read_landing_batch(str(tmp_path), ORDERS, "2026-11-09")


@pytest.mark.parametrize(
    "key", ["../2026-11-02", "2026-11-02/../../etc", "2026-13-01", "2026-1-02", ""]
)
def test_a_key_that_is_not_a_plain_day_is_refused(tmp_path, key):
    with pytest.raises(InvalidPartitionKeyError):
        landing_path(str(tmp_path), ORDERS, key)


def test_a_file_that_is_not_parquet_is_refused_by_name(tmp_path):
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "2026-11-02.parquet").write_text("order_id,status\n1,paid\n")
    with pytest.raises(LandingFileError, match=re.escape("2026-11-02.parquet")):
        read_landing_batch(str(tmp_path), ORDERS, "2026-11-02")


def test_wrong_type_and_missing_column_are_refused(tmp_path):
    landing = _land(tmp_path, order_batch([1]).set_column(4, "amount", pa.array([1.5])))
    with pytest.raises(ColumnTypeError, match="amount"):
        read_landing_batch(landing, ORDERS, "2026-11-02")
    landing = _land(tmp_path, order_batch([1]).drop_columns(["customer_id"]))
    with pytest.raises(MissingColumnError, match="customer_id"):
        read_landing_batch(landing, ORDERS, "2026-11-02")


def test_keeps_the_op_column_and_new_columns_after_the_feeds(tmp_path):
    batch = order_batch([1, 2]).append_column("channel", pa.array(["web", None]))
    batch = batch.append_column("_op", pa.array([None, "D"]))
    read = read_landing_batch(_land(tmp_path, batch), ORDERS, "2026-11-02")
    assert read.column_names == [*ORDERS.schema.names, "channel", "_op"]


def test_a_feed_that_does_not_evolve_refuses_new_columns(tmp_path):
    import dataclasses

    from upsert_pipeline.delta import UnexpectedColumnError

    frozen = dataclasses.replace(ORDERS, evolve_schema=False)
    batch = order_batch([1]).append_column("channel", pa.array(["web"]))
    with pytest.raises(UnexpectedColumnError, match="channel"):
        read_landing_batch(_land(tmp_path, batch), frozen, "2026-11-02")


def test_a_file_uri_landing_reads_like_a_path(tmp_path):
    landing = _land(tmp_path, order_batch([1, 2, 3]))
    read = read_landing_batch(f"file://{landing}", ORDERS, "2026-11-02")
    assert read.num_rows == 3


@pytest.mark.parametrize("landing", ["s3a://bucket/feeds", "az://container/feeds"])
def test_a_landing_scheme_the_reader_cannot_open_is_refused_by_name(landing):
    from upsert_pipeline.delta import DisallowedUriError

    with pytest.raises(DisallowedUriError, match="uses scheme"):
        read_landing_batch(landing, ORDERS, "2026-11-02")
