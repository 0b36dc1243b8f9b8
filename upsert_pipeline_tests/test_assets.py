"""Materializing the assets: count metadata read back from the instance's event log."""

import datetime as dt
import shutil

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import DuplicateKeyError, PartitionMismatchError, read_row_counts
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.landing import LandingFileNotFoundError
from upsert_pipeline.sample_data import redeliver
from upsert_pipeline_tests.conftest import feed_asset, order_batch, scan_rows

COUNT_KEYS = (
    "upsert/source_rows",
    "upsert/rows_inserted",
    "upsert/rows_updated",
    "upsert/rows_deleted",
    "upsert/rows_unchanged",
    "delta/version",
    "delta/files_added",
    "delta/files_removed",
    "delta/merge_ms",
    "dagster/row_count",
)

orders = feed_asset("orders")
customers = feed_asset("customers")


def _latest_metadata(instance, asset: str, partition: str) -> dict[str, object]:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert event is not None and records
    materialization = records[0].asset_materialization
    assert materialization.partition == partition
    return {key: value.value for key, value in materialization.metadata.items()}


def test_materializations_report_counts_from_the_commit(resources, tmp_path):
    with dg.instance_for_test() as instance:
        for partition in ("2026-11-01", "2026-11-02", "2026-11-03"):
            result = dg.materialize(
                [orders, customers], partition_key=partition, resources=resources, instance=instance
            )
            assert result.success

        lake = str(tmp_path / "lake")
        for partition in ("2026-11-01", "2026-11-02", "2026-11-03"):
            metadata = _latest_metadata(instance, "orders", partition)
            for key in COUNT_KEYS:
                assert isinstance(metadata[key], int), key
            day = dt.date.fromisoformat(partition)
            assert metadata["dagster/partition_row_count"] == scan_rows(f"{lake}/orders", day)
            assert metadata["upsert/rows_inserted"] == metadata["upsert/source_rows"]
            assert metadata["dagster/uri"] == f"{lake}/orders"
            assert [column.name for column in metadata["dagster/column_schema"].columns] == (
                ORDERS.schema.names
            )
        assert _latest_metadata(instance, "orders", "2026-11-03")["dagster/row_count"] == (
            scan_rows(f"{lake}/orders")
        )
        customer_metadata = _latest_metadata(instance, "customers", "2026-11-03")
        assert "dagster/partition_row_count" not in customer_metadata
        assert customer_metadata["dagster/row_count"] == 220
        assert customer_metadata["upsert/rows_updated"] > 0


def test_rerun_reports_zero_updated_and_redelivery_reports_updates(resources, landing_dir):
    with dg.instance_for_test() as instance:
        for _ in range(2):
            dg.materialize(
                [orders], partition_key="2026-11-03", resources=resources, instance=instance
            )
        rerun = _latest_metadata(instance, "orders", "2026-11-03")
        assert (rerun["upsert/rows_inserted"], rerun["upsert/rows_updated"]) == (0, 0)
        assert rerun["upsert/rows_unchanged"] == rerun["upsert/source_rows"]
        assert rerun["delta/version"] == rerun["delta/read_version"]

        redeliver(landing_dir, days=(2,), snapshot_days=())
        dg.materialize([orders], partition_key="2026-11-03", resources=resources, instance=instance)
        corrected = _latest_metadata(instance, "orders", "2026-11-03")
        assert corrected["upsert/rows_inserted"] > 0
        assert corrected["upsert/rows_updated"] > 0
        assert corrected["upsert/rows_unchanged"] > 0
        assert 0 < corrected["upsert/rows_deleted"] <= corrected["upsert/tombstones"]
        assert corrected["delta/version"] == rerun["delta/version"] + 1
        assert corrected["dagster/partition_row_count"] == (
            rerun["dagster/partition_row_count"]
            + corrected["upsert/rows_inserted"]
            - corrected["upsert/rows_deleted"]
        )
        assert corrected["dagster/partition_row_count"] == scan_rows(
            str(landing_dir.parent / "lake" / "orders"), dt.date(2026, 11, 3)
        )


def test_a_snapshot_delivery_deletes_what_it_leaves_out_of_its_partition_only(
    resources, landing_dir, tmp_path
):
    with dg.instance_for_test() as instance:
        for partition in ("2026-11-03", "2026-11-04"):
            dg.materialize(
                [orders], partition_key=partition, resources=resources, instance=instance
            )
        other = _latest_metadata(instance, "orders", "2026-11-04")["dagster/partition_row_count"]
        redeliver(landing_dir, days=(), snapshot_days=(2,))
        batch_rows = pq.read_metadata(landing_dir / "orders" / "2026-11-03.parquet").num_rows

        dg.materialize(
            [orders],
            partition_key="2026-11-03",
            resources=resources,
            instance=instance,
            run_config={"ops": {"orders": {"config": {"snapshot": True}}}},
        )

        metadata = _latest_metadata(instance, "orders", "2026-11-03")
        assert metadata["upsert/snapshot"] is True
        assert metadata["upsert/rows_deleted"] > 0
        assert (metadata["upsert/rows_updated"], metadata["upsert/rows_inserted"]) == (1, 0)
        assert metadata["dagster/partition_row_count"] == batch_rows
        assert metadata["upsert/rows_unchanged"] == batch_rows - 1
        lake = str(tmp_path / "lake" / "orders")
        assert scan_rows(lake, dt.date(2026, 11, 3)) == batch_rows
        assert scan_rows(lake, dt.date(2026, 11, 4)) == other


def test_missing_landing_file_fails_naming_the_path(resources, landing_dir):
    shutil.rmtree(landing_dir / "orders")
    with dg.instance_for_test() as instance, pytest.raises(LandingFileNotFoundError) as error:
        dg.materialize([orders], partition_key="2026-11-02", resources=resources, instance=instance)
    assert str(landing_dir / "orders" / "2026-11-02.parquet") in str(error.value)


@pytest.mark.parametrize(
    ("error", "batch"),
    [
        (DuplicateKeyError, order_batch([1, 1], day=dt.date(2026, 11, 2))),
        (PartitionMismatchError, order_batch([1, 2], day=dt.date(2026, 11, 3))),
    ],
)
def test_bad_landing_batch_fails_before_anything_is_written(
    resources, landing_dir, tmp_path, error, batch
):
    import pyarrow.parquet as pq

    with dg.instance_for_test() as instance:
        dg.materialize([orders], partition_key="2026-11-02", resources=resources, instance=instance)
        table_uri = str(tmp_path / "lake" / "orders")
        version = DeltaTable(table_uri).version()
        rows = read_row_counts(table_uri).table_rows

        pq.write_table(batch, landing_dir / "orders" / "2026-11-02.parquet")
        result = dg.materialize(
            [orders],
            partition_key="2026-11-02",
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )

        assert not result.success
        failure = result.failure_data_for_node("orders")
        assert failure is not None and error.__name__ in failure.error.cause.cls_name
        assert DeltaTable(table_uri).version() == version
        assert scan_rows(table_uri) == rows


def test_a_batch_with_a_new_column_evolves_the_table_and_says_so(resources, landing_dir):
    with dg.instance_for_test() as instance:
        dg.materialize([orders], partition_key="2026-11-02", resources=resources, instance=instance)
        path = landing_dir / "orders" / "2026-11-02.parquet"
        batch = pq.read_table(path)
        channel = pa.array(["web" if i % 3 else None for i in range(batch.num_rows)], pa.string())
        pq.write_table(batch.append_column("channel", channel), path)

        dg.materialize([orders], partition_key="2026-11-02", resources=resources, instance=instance)

        metadata = _latest_metadata(instance, "orders", "2026-11-02")
        assert metadata["delta/columns_added"] == ["channel"]
        assert "channel" in [c.name for c in metadata["dagster/column_schema"].columns]
        assert metadata["upsert/rows_updated"] == pc.count(channel).as_py()
        assert metadata["upsert/rows_inserted"] == 0


def test_rematerializing_after_an_out_of_band_delete_repairs_the_partition(
    resources, tmp_path, landing_dir
):
    table_uri = str(tmp_path / "lake" / "orders")
    day = dt.date(2026, 11, 2)
    with dg.instance_for_test() as instance:
        dg.materialize([orders], partition_key="2026-11-02", resources=resources, instance=instance)
        landed = pq.read_table(landing_dir / "orders" / "2026-11-02.parquet").num_rows
        doomed = sorted(
            pq.read_table(landing_dir / "orders" / "2026-11-02.parquet")["order_id"].to_pylist()
        )[:50]
        DeltaTable(table_uri).delete(f"order_id IN ({', '.join(map(str, doomed))})")
        assert scan_rows(table_uri, day) == landed - 50

        dg.materialize([orders], partition_key="2026-11-02", resources=resources, instance=instance)

        metadata = _latest_metadata(instance, "orders", "2026-11-02")
        assert metadata["upsert/rows_inserted"] == 50
        assert metadata["upsert/rows_unchanged"] == landed - 50
        assert metadata["upsert/partition_rows_before"] == landed - 50
        assert metadata["dagster/partition_row_count"] == landed == scan_rows(table_uri, day)
        assert "upsert/already_applied" not in metadata


def test_a_backfill_of_a_day_before_a_new_column_loads_with_nulls(resources, landing_dir, tmp_path):
    with dg.instance_for_test() as instance:
        path = landing_dir / "orders" / "2026-11-03.parquet"
        batch = pq.read_table(path)
        pq.write_table(batch.append_column("channel", pa.array(["web"] * batch.num_rows)), path)
        dg.materialize([orders], partition_key="2026-11-03", resources=resources, instance=instance)

        # The day before the feed gained `channel`, materialized afterwards: a backfill.
        result = dg.materialize(
            [orders], partition_key="2026-11-01", resources=resources, instance=instance
        )

        assert result.success
        metadata = _latest_metadata(instance, "orders", "2026-11-01")
        assert metadata["upsert/rows_inserted"] == metadata["upsert/source_rows"] > 0
        assert metadata["delta/columns_filled"] == ["channel"]
        frame = pl.read_delta(str(tmp_path / "lake" / "orders"))
        backfilled = frame.filter(pl.col("order_date") == dt.date(2026, 11, 1))
        assert (
            backfilled["channel"].null_count()
            == backfilled.height
            == metadata["upsert/source_rows"]
        )


def test_a_refused_first_materialization_leaves_no_table(resources, landing_dir, tmp_path):
    path = landing_dir / "orders" / "2026-11-02.parquet"
    batch = pq.read_table(path)
    index = batch.column_names.index("customer_id")
    pq.write_table(
        batch.set_column(index, "customer_id", batch["customer_id"].cast(pa.uint32())), path
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [orders],
            partition_key="2026-11-02",
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )

    assert not result.success
    failure = result.failure_data_for_node("orders")
    assert failure is not None and "ColumnTypeError" in failure.error.cause.cls_name
    assert not (tmp_path / "lake" / "orders" / "_delta_log").exists()
