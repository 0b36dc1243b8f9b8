"""Hostile input: each is refused with a named error before anything is written.

Every case goes the way the asset goes (``LandingResource.read_batch`` then
``DeltaMergeResource.upsert``) against a table that already holds a day, and checks that the
table's version and every file under it are exactly as they were.
"""

import datetime as dt
import io
import os
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import (
    ColumnTypeError,
    DisallowedUriError,
    DuplicateKeyError,
    InvalidIdentifierError,
    InvalidPartitionValueError,
    MissingColumnError,
    NullKeyError,
    NullValueError,
    PartitionMismatchError,
    UnexpectedColumnError,
    UpsertError,
    UriPolicy,
    upsert,
)
from upsert_pipeline.delta.predicates import merge_predicate
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.landing import (
    CorruptParquetError,
    EmptyLandingFileError,
    InvalidPartitionKeyError,
    LandingFileError,
    NotParquetError,
    TruncatedParquetError,
)
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, feed_asset, order_batch

orders = feed_asset("orders")
"""The orders asset as the Definitions build it."""

KEY = DAY.isoformat()


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _with(batch: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return batch.set_column(batch.column_names.index(name), name, values)


GOOD = order_batch(range(1, 6))

HOSTILE_FILES = {
    "duplicate keys": (DuplicateKeyError, _parquet(order_batch([1, 2, 2]))),
    "null key": (NullKeyError, _parquet(_with(GOOD, "order_id", pa.array([1, 2, None, 4, 5])))),
    "null partition value": (
        NullValueError,
        _parquet(_with(GOOD, "order_date", pa.array([DAY, None, DAY, DAY, DAY], pa.date32()))),
    ),
    "row of another day": (
        PartitionMismatchError,
        _parquet(pa.concat_tables([GOOD, order_batch([9], day=OTHER_DAY)])),
    ),
    "wrong type": (ColumnTypeError, _parquet(_with(GOOD, "amount", pa.array([1.5] * 5)))),
    "missing column": (MissingColumnError, _parquet(GOOD.drop_columns(["status"]))),
    "unexpected column": (
        UnexpectedColumnError,
        _parquet(GOOD.append_column("discount", pa.array([0] * 5))),
    ),
    "column name injecting SQL": (
        InvalidIdentifierError,
        _parquet(GOOD.rename_columns([*GOOD.column_names[:-1], "updated_at` = 1 OR t.`order_id"])),
    ),
    "empty file": (EmptyLandingFileError, b""),
    "csv file": (NotParquetError, b"order_id,order_date\n1,2026-11-02\n"),
    "html error page": (NotParquetError, b"<html><body>403 Forbidden</body></html>"),
    "truncated parquet": (TruncatedParquetError, _parquet(GOOD)[: len(_parquet(GOOD)) // 2]),
    "last byte cut": (TruncatedParquetError, _parquet(GOOD)[:-1]),
    "just the magic": (TruncatedParquetError, b"PAR1"),
    "corrupt footer": (CorruptParquetError, b"PAR1" + os.urandom(64) + b"\x20\x00\x00\x00PAR1"),
}


@pytest.fixture
def lake(tmp_path):
    """A landing folder and a lake whose orders table already holds KEY's good batch."""
    landing = LandingResource(uri=str(tmp_path / "landing"))
    lake = DeltaMergeResource(lake_uri=str(tmp_path / "lake"))
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    _land(tmp_path, _parquet(GOOD))
    _ingest(landing, lake, KEY)
    return landing, lake


def _land(tmp_path: Path, content: bytes, key: str = KEY) -> None:
    (tmp_path / "landing" / "orders" / f"{key}.parquet").write_bytes(content)


def _ingest(landing: LandingResource, lake: DeltaMergeResource, key: str):
    """What the orders asset does for one partition."""
    batch = landing.read_batch(ORDERS, key)
    partition = {"order_date": dt.date.fromisoformat(key)}
    return lake.upsert("orders", batch, keys=ORDERS.keys, partition=partition)


def _state(table_uri: str) -> tuple[int, set[str]]:
    """The table's version and every file under it: anything written would show here."""
    files = {str(path.relative_to(table_uri)) for path in Path(table_uri).rglob("*")}
    return DeltaTable(table_uri).version(), files


@pytest.mark.parametrize("case", HOSTILE_FILES)
def test_a_hostile_landing_file_is_refused_by_name_and_nothing_is_written(tmp_path, lake, case):
    landing, lake = lake
    error, content = HOSTILE_FILES[case]
    state = _state(lake.table_uri("orders"))
    _land(tmp_path, content)

    with pytest.raises(error):
        _ingest(landing, lake, KEY)

    assert _state(lake.table_uri("orders")) == state
    assert pl.read_delta(lake.table_uri("orders")).height == GOOD.num_rows


def test_every_landing_file_error_is_an_upsert_error():
    for error in (EmptyLandingFileError, NotParquetError, TruncatedParquetError):
        assert issubclass(error, LandingFileError) and issubclass(error, UpsertError)


@pytest.mark.parametrize(
    "key",
    [
        "../2026-11-02",
        "../../etc/passwd",
        "2026-11-02/../../2026-11-03",
        "..%2F2026-11-02",
        "2026-11-02\x00",
        " 2026-11-02",
        "2026-11-02 ",
        "20261102",
        "/2026-11-02",
        "2026-11-02.parquet",
    ],
)
def test_a_partition_key_that_is_not_a_plain_day_is_refused(tmp_path, lake, key):
    landing, lake = lake
    state = _state(lake.table_uri("orders"))
    with pytest.raises(InvalidPartitionKeyError):
        landing.path(ORDERS, key)
    with pytest.raises(InvalidPartitionKeyError):
        _ingest(landing, lake, key)
    assert _state(lake.table_uri("orders")) == state


def test_a_landing_file_that_links_outside_the_landing_folder_is_refused(tmp_path, lake):
    landing, lake = lake
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes(_parquet(order_batch([77], day=OTHER_DAY)))
    (tmp_path / "landing" / "orders" / f"{OTHER_DAY}.parquet").symlink_to(outside)
    state = _state(lake.table_uri("orders"))

    with pytest.raises(DisallowedUriError, match="outside the landing root"):
        _ingest(landing, lake, OTHER_DAY.isoformat())
    assert _state(lake.table_uri("orders")) == state


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/landing",
        "ftp://example.com/landing",
        "s3://user:secret@bucket/landing",
        "s3://bucket/landing?versionId=1",
        "s3:///landing",
        "{tmp}/landing/../../etc",
        "file://{tmp}/landing/%2e%2e/secrets",
        "C:evil",
        "",
    ],
)
def test_a_landing_uri_that_is_not_allowed_is_refused(tmp_path, lake, uri):
    _, lake = lake
    landing = LandingResource(uri=uri.format(tmp=tmp_path))
    state = _state(lake.table_uri("orders"))
    with pytest.raises(DisallowedUriError):
        _ingest(landing, lake, KEY)
    assert _state(lake.table_uri("orders")) == state


def test_a_landing_uri_outside_the_allowed_roots_is_refused(tmp_path, lake):
    landing, lake = lake
    fenced = LandingResource(uri=landing.uri, allowed_roots=[str(tmp_path / "approved")])
    with pytest.raises(DisallowedUriError, match="outside the allowed roots"):
        fenced.read_batch(ORDERS, KEY)
    allowed = LandingResource(uri=landing.uri, allowed_roots=[str(tmp_path)])
    assert allowed.read_batch(ORDERS, KEY).num_rows == GOOD.num_rows
    local_only = LandingResource(uri="s3://bucket/landing", allowed_schemes=["file"])
    with pytest.raises(DisallowedUriError, match="scheme 's3'"):
        local_only.path(ORDERS, KEY)


@pytest.mark.parametrize(
    ("lake_uri", "table"),
    [
        ("http://example.com/lake", "orders"),
        ("{tmp}/lake/../escaped", "orders"),
        ("gs://token@bucket/lake", "orders"),
        ("{tmp}/lake", "../orders"),
        ("{tmp}/lake", "orders/../../x"),
        ("{tmp}/lake", ""),
    ],
)
def test_a_table_uri_that_is_not_allowed_is_refused(tmp_path, lake, lake_uri, table):
    landing, good_lake = lake
    state = _state(good_lake.table_uri("orders"))
    hostile = DeltaMergeResource(lake_uri=lake_uri.format(tmp=tmp_path))
    batch = landing.read_batch(ORDERS, KEY)

    with pytest.raises(DisallowedUriError):
        hostile.upsert(table, batch, keys=ORDERS.keys, partition={"order_date": DAY})

    assert _state(good_lake.table_uri("orders")) == state
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lake", "landing"]


def test_a_table_outside_the_allowed_roots_is_refused_and_not_created(tmp_path):
    fenced = DeltaMergeResource(
        lake_uri=str(tmp_path / "lake"), allowed_roots=[str(tmp_path / "approved")]
    )
    with pytest.raises(DisallowedUriError, match="outside the allowed roots"):
        fenced.upsert("orders", GOOD, keys=ORDERS.keys, partition={"order_date": DAY})
    with pytest.raises(DisallowedUriError):
        upsert(
            str(tmp_path / "lake" / "orders"),
            GOOD,
            keys=["order_id"],
            uri_policy=UriPolicy(roots=(str(tmp_path / "lake-other"),)),
        )
    assert not (tmp_path / "lake").exists()


INJECTIONS = [
    "eu' OR '1'='1",
    "eu'; DELETE FROM t; --",
    "eu\\' OR 1=1 --",
    "eu' AND t.`region` = 'us",
    "'||'",
    "eu\nOR 1=1",
    "eu\x00",
    "eu\u2019 OR \u20191\u2019=\u20191",  # typographic quotes
    "$$eu$$",
    "eu/../us",
]


def test_a_predicate_literal_that_injects_sql_stays_a_literal(tmp_path):
    uri = str(tmp_path / "by_region")
    upsert(
        uri,
        pa.table({"id": [1], "region": ["us"], "v": [0]}),
        keys=["id"],
        partition={"region": "us"},
    )
    for n, region in enumerate(INJECTIONS, start=1):
        batch = pa.table({"id": [1, 2], "region": [region] * 2, "v": [n, n]})
        first = upsert(uri, batch, keys=["id"], partition={"region": region})
        assert (first.inserted, first.updated, first.partition_rows) == (2, 0, 2)
        changed = upsert(
            uri,
            batch.set_column(2, "v", pa.array([-n, n])),
            keys=["id"],
            partition={"region": region},
        )
        assert (changed.inserted, changed.updated, changed.partition_rows) == (0, 1, 2)

    rows = pl.read_delta(uri)
    # Every hostile value got its own partition; "us" was never matched, rewritten or deleted.
    assert rows.height == 1 + 2 * len(INJECTIONS)
    assert rows.filter(pl.col("region") == "us").to_dicts() == [{"id": 1, "region": "us", "v": 0}]
    for n, region in enumerate(INJECTIONS, start=1):
        mine = rows.filter(pl.col("region") == region).sort("id")
        assert mine["v"].to_list() == [-n, n]


def test_a_quote_is_doubled_in_the_predicate_text():
    predicate = merge_predicate(["id"], {"region": "eu' OR '1'='1"})
    assert predicate == "t.`region` = 'eu'' OR ''1''=''1' AND t.`id` = s.`id`"


@pytest.mark.parametrize(
    ("partition", "error"),
    [
        ({"region": ""}, InvalidPartitionValueError),
        ({"region": True}, InvalidPartitionValueError),
        ({"region": Decimal("1.5")}, InvalidPartitionValueError),
        ({"region": 1.5}, InvalidPartitionValueError),
        ({"region` = 'x' OR 1=1 --": "eu"}, InvalidIdentifierError),
    ],
)
def test_a_partition_that_cannot_be_a_literal_is_refused_before_the_table_exists(
    tmp_path, partition, error
):
    uri = tmp_path / "by_region"
    batch = pa.table({"id": [1], "region": [next(iter(partition.values()))], "v": [1]})
    with pytest.raises(error):
        upsert(str(uri), batch, keys=["id"], partition=partition)
    assert not uri.exists()


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"", EmptyLandingFileError), (_parquet(GOOD)[:-100], TruncatedParquetError)],
)
def test_the_asset_fails_with_the_named_error_and_the_table_is_untouched(
    tmp_path, lake, content, error
):
    landing, lake = lake
    state = _state(lake.table_uri("orders"))
    _land(tmp_path, content)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [orders],
            partition_key=KEY,
            resources={"landing": landing, "lake": lake},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    failure = result.failure_data_for_node("orders")
    assert failure is not None and error.__name__ in failure.error.cause.cls_name
    assert _state(lake.table_uri("orders")) == state
