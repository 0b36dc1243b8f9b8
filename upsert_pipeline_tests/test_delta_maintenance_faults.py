"""maintain() under faults: a merge committing into the partition being compacted, a store that
ignores ``If-None-Match``, rows whose partition value is null, and vacuum after compacting a
table with deletion vectors."""

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

import upsert_pipeline.delta.maintenance as maintenance
from upsert_pipeline.checks.maintenance import judge_counts_unchanged
from upsert_pipeline.delta import UnsafeObjectStoreError, upsert
from upsert_pipeline.delta.maintenance import MaintenancePolicy, maintain, removed_since
from upsert_pipeline.delta.retry import RetryPolicy
from upsert_pipeline.delta.stores import SINGLE_WRITER_ENV, forget_probed_stores
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows
from upsert_pipeline_tests.fixture_tables import copy_fixture
from upsert_pipeline_tests.object_store import (
    header_proxy,
    keys_under,
    moto_server,
    new_bucket,
    s3_env,
)
from upsert_pipeline_tests.test_delta_maintenance import redeliver

COMPACT = MaintenancePolicy(max_small_files=2)


def _merge_during_maintenance(monkeypatch, table_uri: str, times: int) -> list[int]:
    """Makes a merge into DAY commit right before each of the first ``times`` compactions of
    DAY, after maintenance read its snapshot: what a concurrent run of that day does."""
    compact = maintenance._compact_if_needed
    merged: list[int] = []

    def racing(table, label, policy, properties):
        if len(merged) < times and label == f"order_date={DAY}":
            # Changes rows of a file the compaction is about to rewrite.
            batch = order_batch(range(10), status=f"race {len(merged)}")
            upsert(table_uri, batch, keys=["order_id"], partition={"order_date": DAY})
            merged.append(DeltaTable(table_uri).version())
        return compact(table, label, policy, properties)

    monkeypatch.setattr(maintenance, "_compact_if_needed", racing)
    return merged


def test_a_merge_committing_into_the_partition_being_compacted_is_waited_out(
    table_uri, monkeypatch
):
    redeliver(table_uri, DAY, 6)
    redeliver(table_uri, OTHER_DAY, 6)
    merged = _merge_during_maintenance(monkeypatch, table_uri, times=1)

    result = maintain(table_uri, policy=COMPACT)

    # The compaction conflicted, was run again on the reloaded table, and went through.
    assert len(merged) == 1 and result.partitions_compacted == (
        f"order_date={DAY}",
        f"order_date={OTHER_DAY}",
    )
    assert result.partitions_skipped == ()
    assert set(merged) <= set(result.concurrent_commits)
    assert result.partition_rows_after[f"order_date={DAY}"] == scan_rows(table_uri, DAY) == 120
    verdict = judge_counts_unchanged(result)  # a verdict, not an exception
    assert verdict.severity.value == "WARN" and "other writers" in str(verdict.description)


def test_a_compaction_that_keeps_conflicting_is_skipped_and_the_rest_goes_on(
    table_uri, monkeypatch
):
    redeliver(table_uri, DAY, 6)
    redeliver(table_uri, OTHER_DAY, 6)
    _merge_during_maintenance(monkeypatch, table_uri, times=10)

    result = maintain(
        table_uri, policy=COMPACT, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0)
    )

    assert result.partitions_skipped == (f"order_date={DAY}",)
    assert result.partitions_compacted == (f"order_date={OTHER_DAY}",)
    assert scan_rows(table_uri, DAY) == 120


def test_rows_with_a_null_partition_value_are_counted_and_maintenance_proves_it(table_uri):
    # Another engine's table: order_date nullable, and some rows written without one.
    nullable = pa.schema([field.with_nullable(True) for field in order_batch([0]).schema])
    for first in range(0, 40, 10):
        batch = order_batch(range(first, first + 10)).cast(nullable)
        write_deltalake(table_uri, batch, mode="append", partition_by=["order_date"])
    nulls = order_batch(range(900, 905)).cast(nullable)
    column = nulls.schema.get_field_index("order_date")
    nulls = nulls.set_column(column, "order_date", pa.nulls(5, nulls.schema.field(column).type))
    write_deltalake(table_uri, nulls, mode="append", partition_by=["order_date"])

    result = maintain(table_uri, policy=COMPACT)

    assert result.partition_rows_before["order_date=__null__"] == 5
    assert result.partition_rows_after["order_date=__null__"] == 5
    assert result.unknown_counts == []
    assert judge_counts_unchanged(result).passed


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


def test_maintenance_behind_a_store_that_ignores_if_none_match_commits_nothing(
    endpoint, monkeypatch
):
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(SINGLE_WRITER_ENV, raising=False)
    forget_probed_stores()
    uri = f"s3://{new_bucket(endpoint)}/lake/orders"
    for first in range(0, 60, 10):
        upsert(uri, order_batch(range(first, first + 10)), keys=["order_id"], partition={
            "order_date": DAY})  # fmt: skip
    version = DeltaTable(uri).version()
    forget_probed_stores()
    with header_proxy(endpoint, strip=True) as (proxy, _):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        with pytest.raises(UnsafeObjectStoreError, match="If-None-Match"):
            maintain(uri, policy=COMPACT)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    assert DeltaTable(uri).version() == version
    assert not [key for key in keys_under(endpoint, uri.split("/")[2]) if "probe" in key]
    forget_probed_stores()


def test_vacuum_after_compacting_a_deletion_vector_table_keeps_the_window_readable(tmp_path):
    # Databricks' table: files re-added with new deletion vectors carry an old tombstone too.
    uri = copy_fixture("cdf-table-with-cdc-and-dvs", tmp_path)
    version = DeltaTable(uri).version()
    live_files = DeltaTable(uri).file_uris()

    result = maintain(uri, policy=MaintenancePolicy(max_small_files=0))

    assert result.partitions_compacted == ("",)
    # The files compaction removed seconds ago are inside the 7-day window: none is deleted,
    # and the version before the compaction still reads its 5 live rows.
    assert [f for f in live_files if not Path(f.removeprefix("file://")).exists()] == []
    assert pl.read_delta(uri, version=version).height == 5
    assert result.partition_rows_after == {} and result.table_rows_after == 5


def test_vacuum_still_deletes_files_removed_before_the_window(table_uri):
    redeliver(table_uri, DAY, 4)
    maintain(table_uri, policy=MaintenancePolicy(max_small_files=2, checkpoint=False))
    removed = removed_since(table_uri, DeltaTable(table_uri).version(), 0)
    assert len(removed) == 4  # the compacted files

    result = maintain(
        table_uri, policy=MaintenancePolicy(retention_hours=0, enforce_retention_duration=False)
    )

    assert result.files_vacuumed == 4
    assert all(not Path(table_uri, path).exists() for path in removed)
