"""Every field of an ``UpsertResult``, and the lineage each commit records in the Delta log."""

from deltalake import DeltaTable

from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.merge import APP_ID_KEY, ATTEMPT_KEY
from upsert_pipeline.delta.transactions import app_id_for
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.metadata import upsert_metadata
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch

PARTITION = {"order_date": DAY}


def test_every_field_of_a_merge_that_rewrites_one_file(two_days):
    batch = order_batch([1, 2, 9], status="paid")
    version = DeltaTable(two_days).version()

    result = upsert(two_days, batch, keys=["order_id"], partition=PARTITION)

    assert result.table_uri == two_days
    assert result.partition == PARTITION
    assert (result.source_rows, result.inserted, result.updated, result.deleted) == (3, 1, 2, 0)
    # The day's one file is rewritten: its 3 rows not in the batch are copied.
    assert (result.copied, result.unchanged) == (3, 0)
    assert (result.read_version, result.version) == (version, version + 1)
    assert (result.files_added, result.files_removed) == (1, 1)
    assert (result.files_scanned, result.files_skipped) == (1, 1)
    assert result.commit_attempts == 1
    assert result.app_id == app_id_for("orders", PARTITION)
    assert (result.columns_added, result.columns_filled, result.tombstones) == ((), (), 0)
    assert not result.snapshot
    assert result.schema == ORDERS.schema
    for timing in (result.execution_time_ms, result.scan_time_ms, result.rewrite_time_ms):
        assert isinstance(timing, int) and timing >= 0

    metadata = upsert_metadata(result, table_name="orders", schema=ORDERS.schema)
    assert metadata["upsert/rows_copied"].value == 3
    assert metadata["delta/commit_attempts"].value == 1
    assert metadata["delta/merge_ms"].value == result.execution_time_ms
    assert metadata["dagster/uri"].value == two_days


def test_each_commit_records_its_scope_and_attempt(two_days):
    result = upsert(
        two_days,
        order_batch([1], status="paid"),
        keys=["order_id"],
        partition=PARTITION,
        commit_metadata={"dagster.run_id": "r1"},
    )

    table = DeltaTable(two_days)
    commit = table.history(1)[0]
    assert commit[APP_ID_KEY] == result.app_id == app_id_for("orders", PARTITION)
    assert commit[ATTEMPT_KEY] == 1
    assert commit["dagster.run_id"] == "r1"
    # The scope's transaction is the version its commit was planned for: this one.
    assert table.transaction_version(result.app_id) == result.version
    assert table.transaction_version(app_id_for("orders", {"order_date": OTHER_DAY})) == 2


def test_a_merge_that_changes_nothing_records_nothing(two_days):
    before = DeltaTable(two_days).transaction_version(app_id_for("orders", PARTITION))

    result = upsert(two_days, order_batch(range(1, 6)), keys=["order_id"], partition=PARTITION)

    assert not result.committed
    assert DeltaTable(two_days).transaction_version(result.app_id) == before == 1


def test_without_idempotency_no_scope_is_recorded(two_days):
    result = upsert(
        two_days,
        order_batch([7]),
        keys=["order_id"],
        partition=PARTITION,
        idempotent=False,
    )

    assert result.committed and result.app_id is None
    table = DeltaTable(two_days)
    assert APP_ID_KEY not in table.history(1)[0]
    assert table.transaction_version(app_id_for("orders", PARTITION)) == 1


def test_an_unpartitioned_result_has_no_partition(tmp_path):
    uri = str(tmp_path / "customers")
    result = upsert(uri, order_batch([1, 2]), keys=["order_id"])
    assert (result.partition, result.partition_rows, result.table_rows) == (None, None, 2)
    assert result.app_id == app_id_for("customers", None)
