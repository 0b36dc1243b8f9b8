"""Re-runs converge: a batch is merged every time it is sent, and its counts say what it took."""

import datetime as dt

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction

from upsert_pipeline.delta import app_id_for, upsert
from upsert_pipeline.delta.transactions import scope_key
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows

PARTITION = {"order_date": DAY}
APP_ID = "upsert_pipeline:orders:order_date=2026-11-02"


def _upsert(uri, batch, partition=PARTITION, **options):
    return upsert(uri, batch, keys=["order_id"], partition=partition, **options)


def test_a_rerun_after_an_out_of_band_delete_inserts_the_deleted_rows_again(table_uri):
    batch = order_batch(range(500))
    _upsert(table_uri, batch)
    DeltaTable(table_uri).delete("order_id >= 450")  # 50 rows deleted outside the pipeline
    assert scan_rows(table_uri, DAY) == 450

    rerun = _upsert(table_uri, batch)

    assert (rerun.inserted, rerun.updated, rerun.deleted, rerun.unchanged) == (50, 0, 0, 450)
    assert rerun.committed
    assert (rerun.before.partition_rows, rerun.partition_rows) == (450, 500)
    assert scan_rows(table_uri, DAY) == 500


def test_a_rerun_of_an_older_batch_converges_the_rows_to_it(table_uri):
    older = order_batch([1, 2, 3], status="placed")
    newer = order_batch([1, 2], status="cancelled")
    _upsert(table_uri, older)
    _upsert(table_uri, newer)

    again = _upsert(table_uri, older)

    assert (again.inserted, again.updated, again.unchanged) == (0, 2, 1)
    assert set(pl.read_delta(table_uri)["status"]) == {"placed"}


def test_a_rerun_of_the_batch_that_is_in_changes_and_commits_nothing(table_uri):
    batch = order_batch(range(1, 8), status="paid")
    first = _upsert(table_uri, batch)
    # The run died after committing, before Dagster recorded it; the retry sends the batch again.
    retry = _upsert(table_uri, batch)

    assert (first.inserted, first.committed) == (7, True)
    assert (retry.inserted, retry.updated, retry.deleted, retry.unchanged) == (0, 0, 0, 7)
    assert not retry.committed
    assert retry.version == retry.read_version == first.version == DeltaTable(table_uri).version()
    assert retry.before.partition_rows == retry.partition_rows == scan_rows(table_uri, DAY) == 7


def test_a_record_of_the_batch_in_the_log_never_stops_a_merge(table_uri):
    batch = order_batch([1, 2])
    _upsert(table_uri, batch)
    # Application transactions far ahead, as an older release (or another tool) may leave
    # them, and the batch id an older release wrote into commitInfo.
    table = DeltaTable(table_uri)
    table.delete(
        "order_id = 2",
        commit_properties=CommitProperties(
            app_transactions=[
                Transaction(APP_ID, 10_000),
                Transaction(f"{APP_ID}:batch=x", 10_000),
            ],
            custom_metadata={"upsert_pipeline.batch_id": "x"},
        ),
    )

    rerun = _upsert(table_uri, batch)

    assert (rerun.inserted, rerun.unchanged) == (1, 1)
    assert scan_rows(table_uri, DAY) == 2


def test_each_commit_records_its_scope_for_lineage_without_a_lookup(table_uri, monkeypatch):
    def refuse(self, app_id):
        raise AssertionError("an upsert must not look up application transactions")

    monkeypatch.setattr(DeltaTable, "transaction_version", refuse)
    results = [_upsert(table_uri, order_batch([1], status=f"s{n}")) for n in range(3)]
    monkeypatch.undo()

    table = DeltaTable(table_uri)
    # The version the latest commit of the scope was planned for: monotonic, as Delta requires.
    assert table.transaction_version(APP_ID) == results[-1].read_version + 1
    assert [result.app_id for result in results] == [APP_ID] * 3
    assert table.history(1)[0]["upsert_pipeline.app_id"] == APP_ID
    other = _upsert(table_uri, order_batch([1], day=OTHER_DAY), {"order_date": OTHER_DAY})
    assert other.app_id == "upsert_pipeline:orders:order_date=2026-11-03"
    assert DeltaTable(table_uri).transaction_version(other.app_id) == other.read_version + 1


def test_an_unpartitioned_table_is_one_scope(tmp_path):
    uri = str(tmp_path / "customers")
    day_1 = pa.table({"customer_id": [1, 2], "segment": ["retail", "retail"]})
    day_2 = pa.table({"customer_id": [2], "segment": ["wholesale"]})
    upsert(uri, day_1, keys=["customer_id"])
    upsert(uri, day_2, keys=["customer_id"])

    again = upsert(uri, day_1, keys=["customer_id"])

    assert (again.updated, again.unchanged) == (1, 1)
    assert again.app_id == "upsert_pipeline:customers:*"


def test_without_idempotency_no_transaction_is_written(table_uri):
    batch = order_batch([1, 2])
    first = _upsert(table_uri, batch, idempotent=False)
    again = _upsert(table_uri, batch, idempotent=False)

    assert first.app_id is None
    assert again.unchanged == 2
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
