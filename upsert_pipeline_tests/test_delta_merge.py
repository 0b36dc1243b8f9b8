"""upsert(): counts from the merge commit, no-op re-runs, pruning, refusals that change nothing."""

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import (
    ColumnTypeError,
    DuplicateKeyError,
    InvalidIdentifierError,
    MissingColumnError,
    NullKeyError,
    NullValueError,
    PartitionMismatchError,
    PartitionSpecError,
    UnexpectedColumnError,
    read_row_counts,
    upsert,
)
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows

PARTITION = {"order_date": DAY}


def test_first_write_creates_a_partitioned_table_and_counts_every_row_as_inserted(table_uri):
    result = upsert(table_uri, order_batch(range(1, 6)), keys=["order_id"], partition=PARTITION)

    assert (result.source_rows, result.inserted, result.updated, result.unchanged) == (5, 5, 0, 0)
    assert (result.partition_rows, result.table_rows) == (5, 5)
    assert DeltaTable(table_uri).metadata().partition_columns == ["order_date"]
    assert result.before.partition_rows == 0
    assert result.committed


def test_same_batch_twice_reports_all_unchanged_and_writes_no_version(table_uri):
    batch = order_batch(range(1, 11), status=None, amount=None)
    first = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)
    again = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    assert (again.inserted, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 10)
    assert again.version == again.read_version == first.version
    assert not again.committed
    assert DeltaTable(table_uri).version() == first.version
    assert again.partition_rows == 10


def test_only_rows_that_really_changed_count_as_updated(table_uri):
    upsert(table_uri, order_batch(range(1, 5), status=None), keys=["order_id"], partition=PARTITION)
    batch = pl.from_arrow(order_batch(range(1, 7), status=None)).with_columns(
        status=pl.when(pl.col("order_id") <= 2).then(pl.lit("paid")).otherwise(None)
    )

    result = upsert(table_uri, batch, keys=["order_id"], partition=PARTITION)

    # 1, 2: NULL -> 'paid' (updated); 3, 4: NULL -> NULL (unchanged); 5, 6: new.
    assert (result.inserted, result.updated, result.unchanged) == (2, 2, 2)
    assert result.partition_rows == scan_rows(table_uri, DAY) == 6


def test_value_to_null_is_a_change(table_uri):
    upsert(table_uri, order_batch([1, 2]), keys=["order_id"], partition=PARTITION)
    result = upsert(
        table_uri, order_batch([1, 2], amount=None), keys=["order_id"], partition=PARTITION
    )
    assert result.updated == 2
    amounts = pl.read_delta(table_uri).get_column("amount").to_list()
    assert amounts == [None, None]


def test_merge_into_one_partition_reads_no_other_partition(table_uri):
    upsert(
        table_uri,
        order_batch(range(100, 110), day=OTHER_DAY),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
    )
    upsert(table_uri, order_batch(range(1, 4)), keys=["order_id"], partition=PARTITION)
    shutil.rmtree(Path(table_uri) / f"order_date={OTHER_DAY.isoformat()}")

    result = upsert(
        table_uri, order_batch(range(1, 8), status="paid"), keys=["order_id"], partition=PARTITION
    )

    assert (result.inserted, result.updated) == (4, 3)
    assert result.table_rows == read_row_counts(table_uri).table_rows == 17
    assert result.partition_rows == 7
    assert result.files_skipped >= 1


def test_rows_are_not_matched_across_partitions(table_uri):
    upsert(table_uri, order_batch([1]), keys=["order_id"], partition=PARTITION)
    # The same order_id on another day is another row: the merge is scoped to its partition.
    result = upsert(
        table_uri,
        order_batch([1], day=OTHER_DAY),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
    )
    assert (result.inserted, result.updated, result.table_rows) == (1, 0, 2)


def test_polars_batch_with_large_strings_is_accepted(table_uri):
    batch = pl.from_arrow(order_batch([1, 2]))
    assert batch.to_arrow().schema.field("status").type != pa.string()
    result = upsert(table_uri, batch, keys=["order_id"], partition={"order_date": "2026-11-02"})
    assert result.inserted == 2


def test_unpartitioned_table(tmp_path):
    uri = str(tmp_path / "customers")
    batch = pa.table({"customer_id": [1, 2, 3], "email": ["a", None, "c"]})
    upsert(uri, batch, keys=["customer_id"])
    result = upsert(
        uri, pa.table({"customer_id": [3, 4], "email": ["C", None]}), keys=["customer_id"]
    )
    assert (result.inserted, result.updated, result.table_rows, result.partition_rows) == (
        1,
        1,
        4,
        None,
    )


def _strip_stats(table_uri: str) -> None:
    for commit in sorted((Path(table_uri) / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in commit.read_text().splitlines()]
        for action in actions:
            if "add" in action:
                action["add"].pop("stats", None)
        commit.write_text("\n".join(json.dumps(action) for action in actions) + "\n")


def test_a_file_without_num_records_makes_the_count_unknown_not_guessed(table_uri):
    upsert(table_uri, order_batch([1, 2, 3]), keys=["order_id"], partition=PARTITION)
    upsert(
        table_uri,
        order_batch([9], day=OTHER_DAY),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
    )
    _strip_stats(table_uri)

    result = upsert(table_uri, order_batch([4]), keys=["order_id"], partition=PARTITION)

    assert result.inserted == 1
    assert result.partition_rows is None
    assert result.table_rows is None
    assert result.after.files_without_stats == 1
    other = read_row_counts(table_uri, partition={"order_date": OTHER_DAY})
    assert (other.partition_rows, other.files_without_stats) == (None, 1)


BAD_BATCHES = [
    (DuplicateKeyError, lambda: order_batch([1, 2, 2])),
    (
        NullKeyError,
        lambda: order_batch([1, 2]).set_column(0, "order_id", pa.array([1, None], pa.int64())),
    ),
    (
        PartitionMismatchError,
        lambda: pa.concat_tables([order_batch([1]), order_batch([2], day=OTHER_DAY)]),
    ),
    (
        PartitionMismatchError,
        lambda: order_batch([1]).set_column(1, "order_date", pa.array([None], pa.date32())),
    ),
    (ColumnTypeError, lambda: order_batch([1]).set_column(2, "customer_id", pa.array(["7"]))),
    (MissingColumnError, lambda: order_batch([1]).drop_columns(["status"])),
    (UnexpectedColumnError, lambda: order_batch([1]).append_column("extra", pa.array([1]))),
    (
        InvalidIdentifierError,
        lambda: order_batch([1]).rename_columns(
            [*order_batch([1]).column_names[:-1], "updated_at` = 1 OR t.`order_id"]
        ),
    ),
]


@pytest.mark.parametrize(
    ("error", "make_batch"), BAD_BATCHES, ids=lambda v: getattr(v, "__name__", "")
)
def test_bad_batch_is_refused_by_name_and_leaves_the_version(table_uri, error, make_batch):
    upsert(table_uri, order_batch([1, 2, 3]), keys=["order_id"], partition=PARTITION)
    version = DeltaTable(table_uri).version()

    with pytest.raises(error):
        upsert(table_uri, make_batch(), keys=["order_id"], partition=PARTITION)

    assert DeltaTable(table_uri).version() == version
    assert scan_rows(table_uri) == 3


FIRST_BATCHES_REFUSED = [
    (DuplicateKeyError, lambda: order_batch([1, 1]), {}),
    # Delta has no unsigned type: delta-rs would create an int32 column the batch then misfits.
    (
        ColumnTypeError,
        lambda: order_batch([1]).set_column(2, "customer_id", pa.array([7], pa.uint32())),
        {},
    ),
    (
        ColumnTypeError,
        lambda: order_batch([1]).append_column("ratio", pa.array([0.5], pa.float16())),
        {},
    ),
    (
        NullValueError,
        lambda: (
            order_batch([1, 2])
            .set_column(0, pa.field("order_id", pa.int64(), nullable=False), pa.array([1, 2]))
            .set_column(
                1, pa.field("order_date", pa.date32(), nullable=False), pa.array([DAY, None])
            )
        ),
        {},
    ),
    (
        MissingColumnError,
        lambda: order_batch([1]).drop_columns(["status"]),
        {"required_columns": ["order_id", "status"]},
    ),
]


@pytest.mark.parametrize(
    ("error", "make_batch", "options"),
    FIRST_BATCHES_REFUSED,
    ids=["duplicate-key", "uint32", "float16", "null-in-not-null", "declared-missing"],
)
def test_a_refused_first_batch_creates_no_table(tmp_path, error, make_batch, options):
    uri = str(tmp_path / "lake" / "orders")
    partition = None if error is NullValueError else PARTITION  # the null is in order_date
    with pytest.raises(error):
        upsert(uri, make_batch(), keys=["order_id"], partition=partition, **options)
    assert not Path(uri).exists()


def test_a_quote_in_a_partition_value_stays_a_literal(tmp_path):
    uri = str(tmp_path / "by_region")
    region = "eu' OR '1'='1"
    batch = pa.table({"id": [1], "region": [region], "v": [1]})
    upsert(uri, batch, keys=["id"], partition={"region": region})
    upsert(
        uri,
        pa.table({"id": [1], "region": ["us"], "v": [2]}),
        keys=["id"],
        partition={"region": "us"},
    )

    result = upsert(
        uri,
        pa.table({"id": [1], "region": [region], "v": [3]}),
        keys=["id"],
        partition={"region": region},
    )

    assert (result.updated, result.partition_rows, result.table_rows) == (1, 1, 2)
    rows = pl.read_delta(uri).sort("region").to_dicts()
    assert rows == [{"id": 1, "region": region, "v": 3}, {"id": 1, "region": "us", "v": 2}]


def test_a_partition_on_a_column_the_table_is_not_partitioned_by_is_refused(table_uri):
    upsert(table_uri, order_batch([1]), keys=["order_id"], partition=PARTITION)
    with pytest.raises(PartitionSpecError):
        upsert(
            table_uri,
            order_batch([2]),
            keys=["order_id"],
            partition={"order_date": DAY, "status": "placed"},
        )


def test_amount_precision_survives(table_uri):
    upsert(
        table_uri,
        order_batch([1], amount=Decimal("1234567890.12")),
        keys=["order_id"],
        partition=PARTITION,
    )
    assert pl.read_delta(table_uri).get_column("amount").to_list() == [Decimal("1234567890.12")]


def test_commit_metadata_is_written_with_the_commit(table_uri):
    upsert(
        table_uri,
        order_batch([1]),
        keys=["order_id"],
        partition=PARTITION,
        commit_metadata={"dagster.run_id": "abc"},
    )
    assert DeltaTable(table_uri).history(1)[0]["dagster.run_id"] == "abc"


def test_partition_value_types():
    from upsert_pipeline.delta.predicates import literal

    assert literal(dt.date(2026, 1, 2)) == "'2026-01-02'"
    assert literal(5) == "5"
    assert literal("o'k") == "'o''k'"
    with pytest.raises(TypeError):
        literal(True)
    assert literal(dt.datetime(2026, 1, 2, 13)) == "'2026-01-02T13:00:00'"
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert literal(dt.datetime(2026, 1, 2, 14, tzinfo=berlin)) == "'2026-01-02T13:00:00+00:00'"


@pytest.mark.parametrize(
    ("keys", "ids", "customers", "repeated"),
    [
        (["order_id"], [3, 1, 2, 1], [7, 7, 7, 7], 1),
        (["order_id"], [3, 1, 2, 4], [7, 7, 7, 7], 0),
        (["order_id", "customer_id"], [1, 1, 2, 2], [7, 8, 7, 7], 1),
        (["order_id", "customer_id"], [1, 1, 2, 2], [7, 8, 7, 8], 0),
    ],
)
def test_the_duplicate_key_check_is_exact(keys, ids, customers, repeated):
    from upsert_pipeline.delta.validation import check_keys

    batch = order_batch(ids).set_column(2, "customer_id", pa.array(customers, pa.int64()))
    if repeated:
        with pytest.raises(DuplicateKeyError, match=f"{repeated} key"):
            check_keys(batch, keys)
    else:
        check_keys(batch, keys)


def test_nested_columns_are_stored_as_sent_and_merged_again(tmp_path):
    uri = str(tmp_path / "nested")
    batch = pa.table(
        {
            "id": [1, 2],
            "tags": pa.array([["a"], []], pa.list_(pa.string())),
            "where": pa.array([{"x": 1}, {"x": 2}], pa.struct([("x", pa.int32())])),
        }
    )
    upsert(uri, batch, keys=["id"])

    again = upsert(uri, batch, keys=["id"])

    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
