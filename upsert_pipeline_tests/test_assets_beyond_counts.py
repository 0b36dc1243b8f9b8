"""Beyond counts, through the asset: profile, expectations (each on_fail), schema change, cost."""

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pydantic import ValidationError

from upsert_pipeline.assets import build_upsert_asset
from upsert_pipeline.checks.names import expectation_check
from upsert_pipeline.components.feed import FeedComponent
from upsert_pipeline.feeds import ORDERS, feed_yaml
from upsert_pipeline.quality import Expectation, OnFail
from upsert_pipeline_tests.conftest import feed_asset

PARTITION = "2026-11-02"
DAY = dt.date(2026, 11, 2)
NEGATIVE = 3


def _metadata(instance: dg.DagsterInstance, partition: str = PARTITION) -> dict[str, object]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("orders"), asset_partitions=[partition]),
        limit=1,
    ).records
    assert records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _with_negative_amounts(landing_dir: Path) -> tuple[list[int], int]:
    """Makes the day's first NEGATIVE orders negative; their ids and the day's rows."""
    path = landing_dir / "orders" / f"{PARTITION}.parquet"
    batch = pq.read_table(path)
    amounts = batch.column("amount").to_pylist()
    for row in range(NEGATIVE):
        amounts[row] = Decimal("-5.00")
    index = batch.schema.get_field_index("amount")
    batch = batch.set_column(
        index, batch.schema.field(index), pa.array(amounts, pa.decimal128(12, 2))
    )
    pq.write_table(batch, path)
    return batch.column("order_id").to_pylist()[:NEGATIVE], batch.num_rows


def _asset(on_fail: OnFail, tolerance: float = 0.0) -> dg.AssetsDefinition:
    rule = Expectation(
        name="non_negative_amount", rule="amount >= 0", on_fail=on_fail, tolerance=tolerance
    )
    return build_upsert_asset(dataclasses.replace(ORDERS, expectations=(rule,)))


def _verdict(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == expectation_check("non_negative_amount")
    ]
    return evaluation


def test_profile_in_the_metadata_equals_a_scan_of_the_partition(resources, tmp_path):
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [feed_asset("orders")], partition_key=PARTITION, resources=resources, instance=instance
        )
        assert result.success

        metadata = _metadata(instance)
        frame = pl.read_delta(str(tmp_path / "lake" / "orders")).filter(pl.col("order_date") == DAY)
        rows = {
            record.data["column"]: record.data for record in metadata["profile/columns"].records
        }
        assert list(rows) == ORDERS.schema.names
        for name in ORDERS.schema.names:
            values = frame.get_column(name)
            assert rows[name]["null_count"] == values.null_count(), name
            assert (rows[name]["nulls"], rows[name]["min_max"]) == ("exact", "exact")
            assert rows[name]["min"] == str(values.min()) and rows[name]["max"] == str(values.max())
            fraction = metadata[f"profile/{name}/null_fraction"]
            assert isinstance(fraction, float)
            assert fraction == pytest.approx(values.null_count() / frame.height)
        assert metadata["profile/status/null_count"] == frame.get_column("status").null_count() > 0
        table_rows = {r.data["column"]: r.data for r in metadata["profile/table_columns"].records}
        assert table_rows["order_id"]["null_count"] == 0


def test_cost_of_the_load_from_the_commit_file_and_the_phases(resources, tmp_path, landing_dir):
    table_uri = str(tmp_path / "lake" / "orders")
    with dg.instance_for_test() as instance:
        dg.materialize(
            [feed_asset("orders")], partition_key=PARTITION, resources=resources, instance=instance
        )

        metadata = _metadata(instance)
        table = DeltaTable(table_uri)
        sizes = pa.table(table.get_add_actions(flatten=True)).column("size_bytes")
        assert metadata["cost/bytes_written"] == pc.sum(sizes).as_py() > 0
        assert metadata["cost/bytes_removed"] == 0
        assert metadata["cost/commit_files_added"] == metadata["delta/files_added"] == len(sizes)
        landed = landing_dir / "orders" / f"{PARTITION}.parquet"
        assert metadata["cost/landing_bytes"] == landed.stat().st_size
        assert metadata["cost/process_peak_rss_bytes"] > 10_000_000
        for key in ("landing_read_ms", "expectations_ms", "upsert_ms", "recording_ms"):
            assert isinstance(metadata[f"cost/{key}"], int), key
        assert metadata["cost/merge_execution_ms"] == metadata["delta/merge_ms"]
        assert metadata["cost/upsert_ms"] >= metadata["cost/merge_execution_ms"]

        # A redelivery rewrites the partition's file: the commit removes what the first wrote.
        dg.materialize(
            [feed_asset("orders")], partition_key=PARTITION, resources=resources, instance=instance
        )
        batch = pq.read_table(landed)
        pq.write_table(batch.set_column(3, "status", pa.array(["paid"] * batch.num_rows)), landed)
        dg.materialize(
            [feed_asset("orders")], partition_key=PARTITION, resources=resources, instance=instance
        )
        rewritten = _metadata(instance)
        assert rewritten["cost/bytes_removed"] == metadata["cost/bytes_written"]
        assert rewritten["cost/commit_files_removed"] == metadata["cost/commit_files_added"]


def test_warn_merges_every_row_and_the_rules_check_fails_with_its_counts(resources, landing_dir):
    _, landed = _with_negative_amounts(landing_dir)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_asset(OnFail.WARN)], partition_key=PARTITION, resources=resources, instance=instance
        )

        assert result.success
        metadata = _metadata(instance)
        assert metadata["upsert/rows_inserted"] == landed == metadata["quality/landed_rows"]
        assert metadata["quality/non_negative_amount/failing"] == NEGATIVE
        assert metadata["quality/non_negative_amount/passing"] == landed - NEGATIVE
        assert metadata["quality/non_negative_amount/failing_fraction"] == pytest.approx(
            NEGATIVE / landed
        )
        verdict = _verdict(result)
        assert not verdict.passed and verdict.severity == dg.AssetCheckSeverity.WARN
        assert verdict.metadata["failing"].value == NEGATIVE
        assert verdict.partition == PARTITION


def test_within_tolerance_the_rules_check_passes(resources, landing_dir):
    _with_negative_amounts(landing_dir)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_asset(OnFail.WARN, tolerance=0.5)],
            partition_key=PARTITION,
            resources=resources,
            instance=instance,
        )

        assert _verdict(result).passed


def test_drop_leaves_the_failing_rows_out_of_the_table(resources, landing_dir, tmp_path):
    negative, landed = _with_negative_amounts(landing_dir)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_asset(OnFail.DROP)], partition_key=PARTITION, resources=resources, instance=instance
        )

        assert result.success
        metadata = _metadata(instance)
        ids = pl.read_delta(str(tmp_path / "lake" / "orders")).get_column("order_id").to_list()
        assert not set(negative) & set(ids)
        assert len(ids) == landed - NEGATIVE == metadata["dagster/partition_row_count"]
        assert metadata["quality/rows_dropped"] == NEGATIVE
        assert metadata["upsert/source_rows"] == landed - NEGATIVE
        assert not (tmp_path / "lake" / "orders__quarantine").exists()
        # counts_reconcile compares the merge with the rows left after the expectations.
        reconcile = [
            e for e in result.get_asset_check_evaluations() if e.check_name == "counts_reconcile"
        ]
        assert reconcile and all(e.passed for e in reconcile)


def test_quarantine_writes_the_failing_rows_beside_the_table_once(resources, landing_dir, tmp_path):
    negative, landed = _with_negative_amounts(landing_dir)
    with dg.instance_for_test() as instance:
        runs = [
            dg.materialize(
                [_asset(OnFail.QUARANTINE)],
                partition_key=PARTITION,
                resources=resources,
                instance=instance,
            )
            for _ in range(2)
        ]

        metadata = _metadata(instance)
        quarantine = pl.read_delta(str(tmp_path / "lake" / "orders__quarantine"))
        assert sorted(quarantine.get_column("order_id").to_list()) == sorted(negative)
        assert set(quarantine.get_column("_expectation").to_list()) == {"non_negative_amount"}
        # The re-run's quarantine commit updated the rows' run id; it added none.
        assert set(quarantine.get_column("_run_id").to_list()) == {runs[1].run_id}
        assert metadata["quarantine/rows_inserted"] == 0
        assert metadata["quarantine/rows_updated"] == NEGATIVE
        assert metadata["quality/rows_quarantined"] == NEGATIVE
        first = instance.fetch_materializations(dg.AssetKey("orders"), limit=2).records[-1]
        assert first.asset_materialization.metadata["quarantine/rows_inserted"].value == NEGATIVE
        assert metadata["quarantine/partition_rows"] == NEGATIVE
        ids = pl.read_delta(str(tmp_path / "lake" / "orders")).get_column("order_id").to_list()
        assert len(ids) == landed - NEGATIVE and not set(negative) & set(ids)

        # A corrected re-delivery: the partition's quarantine empties, the rows are merged.
        path = landing_dir / "orders" / f"{PARTITION}.parquet"
        batch = pq.read_table(path)
        index = batch.schema.get_field_index("amount")
        amounts = pc.if_else(
            pc.less(batch.column(index), Decimal("0")),
            pa.scalar(Decimal("5.00"), pa.decimal128(12, 2)),
            batch.column(index),
        )
        pq.write_table(batch.set_column(index, batch.schema.field(index), amounts), path)
        dg.materialize(
            [_asset(OnFail.QUARANTINE)],
            partition_key=PARTITION,
            resources=resources,
            instance=instance,
        )

        corrected = _metadata(instance)
        assert corrected["quarantine/rows_deleted"] == NEGATIVE
        assert corrected["quarantine/partition_rows"] == 0
        assert pl.read_delta(str(tmp_path / "lake" / "orders__quarantine")).height == 0
        assert corrected["upsert/rows_inserted"] == NEGATIVE
        assert corrected["dagster/partition_row_count"] == landed


def test_fail_refuses_the_batch_and_changes_nothing(resources, landing_dir, tmp_path):
    table_uri = str(tmp_path / "lake" / "orders")
    with dg.instance_for_test() as instance:
        dg.materialize(
            [_asset(OnFail.FAIL)], partition_key=PARTITION, resources=resources, instance=instance
        )
        version = DeltaTable(table_uri).version()
        _with_negative_amounts(landing_dir)

        result = dg.materialize(
            [_asset(OnFail.FAIL)],
            partition_key=PARTITION,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )

        assert not result.success
        failure = result.failure_data_for_node("orders")
        assert failure is not None and failure.error is not None
        cause = failure.error.cause
        assert cause is not None and cause.cls_name == "ExpectationFailedError"
        for named in ("'orders'", PARTITION, "non_negative_amount", f"{NEGATIVE} of"):
            assert named in cause.message, named
        assert DeltaTable(table_uri).version() == version
        # The rule's check records why the partition has no new materialization.
        [refused] = [
            e
            for e in result.get_asset_check_evaluations()
            if e.check_name == "expect_non_negative_amount" and not e.passed
        ]
        assert refused.partition == PARTITION
        assert refused.severity == dg.AssetCheckSeverity.ERROR
        assert refused.metadata["failing"].value == NEGATIVE
        assert refused.target_materialization_data is None


def test_a_rule_that_does_not_parse_is_refused_when_the_definitions_load():
    document = FeedComponent.from_yaml_file(feed_yaml("orders")).model_dump()
    document["expectations"] = [{"name": "broken_rule", "rule": "amount >=", "on_fail": "warn"}]

    with pytest.raises(ValidationError, match=r"broken_rule.*does not parse"):
        FeedComponent.model_validate(document)

    document["expectations"] = [{"name": "unknown", "rule": "price > 0"}]
    with pytest.raises(ValidationError, match="price"):
        FeedComponent.model_validate(document)


def test_schema_change_records_the_schema_before_and_the_changes(resources, landing_dir):
    orders = feed_asset("orders")
    with dg.instance_for_test() as instance:
        dg.materialize([orders], partition_key=PARTITION, resources=resources, instance=instance)
        assert "schema/changes" not in _metadata(instance)
        assert _metadata(instance)["schema/changed"] is False
        path = landing_dir / "orders" / "2026-11-03.parquet"
        batch = pq.read_table(path)
        pq.write_table(batch.append_column("channel", pa.array(["web"] * batch.num_rows)), path)

        dg.materialize([orders], partition_key="2026-11-03", resources=resources, instance=instance)
        dg.materialize([orders], partition_key="2026-11-04", resources=resources, instance=instance)

        evolved = _metadata(instance, "2026-11-03")
        assert evolved["schema/changed"] is True
        assert evolved["schema/changes"] == ["added channel: string"]
        before = [column.name for column in evolved["schema/before"].columns]
        after = [column.name for column in evolved["dagster/column_schema"].columns]
        assert sorted(before) == sorted(ORDERS.schema.names)
        assert sorted(after) == sorted([*before, "channel"])
        lacked = _metadata(instance, "2026-11-04")
        assert lacked["schema/changed"] is False
        assert lacked["schema/changes"] == ["filled channel with nulls (the batch lacked it)"]
        assert "schema/before" not in lacked
