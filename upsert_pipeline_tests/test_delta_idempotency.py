"""A batch that is already in is recognised from the Delta log's application transactions."""

import datetime as dt
from decimal import Decimal

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st

from upsert_pipeline.delta import app_id_for, batch_identity, upsert
from upsert_pipeline.delta.transactions import batch_app_id, scope_key
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows

PARTITION = {"order_date": DAY}
APP_ID = "upsert_pipeline:orders:order_date=2026-11-02"
AMOUNT = ORDERS.schema.field("amount").type


def _upsert(uri, batch, partition=PARTITION, **options):
    return upsert(uri, batch, keys=["order_id"], partition=partition, **options)


def test_a_retried_run_after_its_commit_reports_the_batch_already_applied(table_uri):
    _upsert(table_uri, order_batch(range(1, 4)))
    batch = order_batch(range(1, 8), status="paid")
    first = _upsert(table_uri, batch)
    # The run died after committing, before Dagster recorded it; the retry sends the batch again.
    retry = _upsert(table_uri, batch)

    assert (first.inserted, first.updated, first.transaction_version) == (4, 3, 2)
    assert retry.already_applied and not retry.committed
    assert (retry.inserted, retry.updated, retry.deleted, retry.unchanged) == (0, 0, 0, 7)
    assert retry.version == retry.read_version == first.version == DeltaTable(table_uri).version()
    assert retry.before.partition_rows == retry.partition_rows == scan_rows(table_uri, DAY) == 7
    assert (retry.app_id, retry.batch_id, retry.transaction_version) == (
        first.app_id,
        first.batch_id,
        2,
    )


def test_the_commit_records_the_scope_and_the_batch_at_one_monotonic_version(table_uri):
    results = [_upsert(table_uri, order_batch([1], status=f"s{n}")) for n in range(4)]

    table = DeltaTable(table_uri)
    assert [result.transaction_version for result in results] == [1, 2, 3, 4]
    assert table.transaction_version(APP_ID) == 4
    assert table.transaction_version(batch_app_id(APP_ID, results[-1].batch_id)) == 4
    assert table.transaction_version(batch_app_id(APP_ID, results[0].batch_id)) == 1
    commit = table.history(1)[0]
    assert commit["upsert_pipeline.app_id"] == APP_ID
    assert commit["upsert_pipeline.batch_id"] == results[-1].batch_id


def test_a_batch_sent_again_after_another_one_changed_the_partition_is_merged_again(table_uri):
    a = order_batch([1, 2], status="placed")
    b = order_batch([1, 2], status="cancelled")
    _upsert(table_uri, a)
    _upsert(table_uri, b)

    again = _upsert(table_uri, a)

    assert not again.already_applied
    assert (again.updated, again.transaction_version) == (2, 3)
    assert set(pl.read_delta(table_uri)["status"]) == {"placed"}


def test_a_batch_that_changed_nothing_records_nothing_and_the_last_one_still_counts(table_uri):
    a = order_batch([1, 2, 3])
    _upsert(table_uri, a)
    subset = _upsert(table_uri, a.slice(0, 2))  # already in: no commit, no transaction

    assert (subset.committed, subset.already_applied, subset.unchanged) == (False, False, 2)
    assert subset.transaction_version == 1
    assert _upsert(table_uri, a).already_applied


def test_row_order_and_string_layout_do_not_change_a_batchs_identity(table_uri):
    batch = order_batch([3, 1, 2])
    _upsert(table_uri, batch)
    shuffled = pl.from_arrow(batch.take([2, 0, 1]))  # polars hands back string views

    assert _upsert(table_uri, shuffled).already_applied
    chunked = pa.concat_tables([batch.slice(0, 1), batch.slice(1)])
    assert _upsert(table_uri, chunked).already_applied


def test_each_partition_has_its_own_transaction(table_uri):
    _upsert(table_uri, order_batch([1]))
    other = _upsert(table_uri, order_batch([1], day=OTHER_DAY), {"order_date": OTHER_DAY})

    assert not other.already_applied  # same rows, another partition: another scope
    assert other.app_id == "upsert_pipeline:orders:order_date=2026-11-03"
    assert other.transaction_version == 1


def test_an_unpartitioned_table_is_one_scope_so_an_older_batch_is_merged_again(tmp_path):
    uri = str(tmp_path / "customers")
    day_1 = pa.table({"customer_id": [1, 2], "segment": ["retail", "retail"]})
    day_2 = pa.table({"customer_id": [2], "segment": ["wholesale"]})
    upsert(uri, day_1, keys=["customer_id"])
    upsert(uri, day_2, keys=["customer_id"])

    # Re-materializing day 1: day 2 changed one of its rows since, so it is not "already in".
    again = upsert(uri, day_1, keys=["customer_id"])

    assert not again.already_applied
    assert (again.updated, again.unchanged) == (1, 1)
    assert again.app_id == "upsert_pipeline:customers:*"


def test_without_idempotency_no_transaction_is_written(table_uri):
    batch = order_batch([1, 2])
    first = _upsert(table_uri, batch, idempotent=False)
    again = _upsert(table_uri, batch, idempotent=False)

    assert (first.app_id, first.batch_id, first.transaction_version) == (None, None, None)
    assert not again.already_applied and again.unchanged == 2
    assert DeltaTable(table_uri).transaction_version(APP_ID) is None


def test_an_explicit_app_id_is_used(table_uri):
    result = _upsert(table_uri, order_batch([1]), app_id="backfill:orders:2026-11-02")
    assert DeltaTable(table_uri).transaction_version("backfill:orders:2026-11-02") == 1
    assert result.app_id == "backfill:orders:2026-11-02"


def test_app_ids_and_scope_keys():
    assert app_id_for("orders", {"order_date": dt.date(2026, 11, 2)}) == APP_ID
    assert app_id_for("customers", None) == "upsert_pipeline:customers:*"
    assert scope_key({"region": "eu/west:1", "year": 2026}) == "region=eu%2Fwest%3A1/year=2026"
    assert scope_key({"b": 1, "a": 2}) == "a=2/b=1"


values = st.fixed_dictionaries(
    {
        "status": st.one_of(st.none(), st.text(max_size=5)),
        "amount": st.one_of(st.none(), st.decimals(0, 1000, places=2).map(Decimal)),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(values, min_size=1, max_size=6),
    st.integers(0, 5),
    values,
    st.randoms(use_true_random=False),
)
def test_identity_changes_with_any_value_and_never_with_order(rows, at, change, rng):
    def identity(items):
        batch = order_batch([row_id for row_id, _ in items])
        statuses = pa.array([value["status"] for _, value in items], pa.string())
        amounts = pa.array([value["amount"] for _, value in items], AMOUNT)
        batch = batch.set_column(3, "status", statuses).set_column(4, "amount", amounts)
        return batch_identity(batch, ["order_id"])

    items = list(enumerate(rows))
    shuffled = items[:]
    rng.shuffle(shuffled)
    assert identity(shuffled) == identity(items)

    at %= len(items)
    changed = [*items[:at], (items[at][0], change), *items[at + 1 :]]
    assert (identity(changed) == identity(items)) == (change == items[at][1])
