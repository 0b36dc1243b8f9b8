"""The lake and the landing zone on S3 (moto's server on loopback), configured only by the standard
``AWS_*`` variables: sample data written by the command line, concurrent CLI materializations
whose counts equal scans of the S3 tables, and a store that ignores ``If-None-Match`` refused by
name before anything is committed."""

import datetime as dt
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from deploy.instance import open_instance
from upsert_pipeline.delta import UnsafeObjectStoreError
from upsert_pipeline.delta.stores import (
    PROBE_PREFIX,
    SINGLE_WRITER_ENV,
    ensure_safe_commits,
    forget_probed_stores,
)
from upsert_pipeline.feeds import CUSTOMERS, ORDERS
from upsert_pipeline.resources import (
    LAKE_URI_ENV,
    LANDING_URI_ENV,
    DeltaMergeResource,
    LandingResource,
)
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.conftest import order_batch
from upsert_pipeline_tests.deployment import migrate_instance
from upsert_pipeline_tests.object_store import (
    header_proxy,
    keys_under,
    moto_server,
    new_bucket,
    s3_env,
)
from upsert_pipeline_tests.postgres import fresh_database, postgres_env, project_dagster_home

ORDER_DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")
CUSTOMER_DAYS = ("2026-11-01", "2026-11-02")


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(endpoint, monkeypatch):
    """Only the standard variables of the store, as a user would set them."""
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(SINGLE_WRITER_ENV, raising=False)
    forget_probed_stores()
    yield endpoint
    forget_probed_stores()


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_the_sample_data_command_writes_the_landing_to_s3(s3, tmp_path):
    bucket = new_bucket(s3, "landing")
    landing = f"s3://{bucket}/feeds"
    result = subprocess.run(
        [sys.executable, "-m", "upsert_pipeline.sample_data", "--landing", landing, "--days", "2"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 4 landing batches" in result.stdout
    assert sorted(keys_under(s3, bucket)) == [
        "feeds/customers/2026-11-01.parquet",
        "feeds/customers/2026-11-02.parquet",
        "feeds/orders/2026-11-01.parquet",
        "feeds/orders/2026-11-02.parquet",
    ]
    # The same bytes as a local generation: the landing reader gets the batch the generator made.
    [local, *_] = generate(tmp_path, days=1)
    read = LandingResource(uri=landing).read_batch(ORDERS, "2026-11-01")
    assert read.equals(pq.read_table(local))


def _materialize(env: dict[str, str], home: Path, asset: str, day: str):
    return subprocess.run(
        [
            *(_bin("dagster"), "asset", "materialize", "-m", "upsert_pipeline.definitions"),
            *("--select", asset, "--partition", day),
        ],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_concurrent_cli_materializations_on_s3_count_what_a_scan_of_the_tables_finds(
    s3, tmp_path, monkeypatch
):
    landing_bucket, lake_bucket = new_bucket(s3, "landing"), new_bucket(s3, "lake")
    landing, lake = f"s3://{landing_bucket}/feeds", f"s3://{lake_bucket}/lake"
    generate(landing, days=len(ORDER_DAYS))
    home = project_dagster_home(tmp_path / "dagster_home")
    with fresh_database() as database:
        env = {
            **os.environ,
            **postgres_env(database),
            "DAGSTER_HOME": str(home),
            LAKE_URI_ENV: lake,
            LANDING_URI_ENV: landing,
        }
        # As a deployment does before its processes start (compose's migrate-instance): many
        # processes starting at once on an empty database race to create the same tables.
        migrate_instance(dagster_home=home, env=env)
        launches = [("orders", day) for day in ORDER_DAYS] + [
            ("customers", day) for day in CUSTOMER_DAYS
        ]
        with ThreadPoolExecutor(max_workers=len(launches)) as pool:
            results = list(pool.map(lambda launch: _materialize(env, home, *launch), launches))
        for launch, result in zip(launches, results, strict=True):
            assert result.returncode == 0, (launch, result.stderr[-3000:])

        for name, value in postgres_env(database).items():
            monkeypatch.setenv(name, value)
        with open_instance(home) as instance:
            records = {
                (feed.name, day): instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(feed.name), asset_partitions=[day]),
                    limit=5,
                ).records
                for feed, days in ((ORDERS, ORDER_DAYS), (CUSTOMERS, CUSTOMER_DAYS))
                for day in days
            }
            checks = [
                event.event_log_entry.dagster_event.event_specific_data
                for recs in records.values()
                for event in instance.get_records_for_run(
                    recs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                ).records
            ]

    source = LandingResource(uri=landing)
    landed = {day: source.read_batch(ORDERS, day).num_rows for day in ORDER_DAYS}
    customer_ids = {
        key for day in CUSTOMER_DAYS for key in source.read_batch(CUSTOMERS, day)["customer_id"]
    }
    storage = s3_env(s3)
    versions = set()
    for (table, day), recs in records.items():
        assert len(recs) == 1, (table, day)
        metadata = {k: v.value for k, v in recs[0].asset_materialization.metadata.items()}
        version = metadata["delta/version"]
        versions.add((table, version))
        at_commit = pl.scan_delta(f"{lake}/{table}", version=version, storage_options=storage)
        assert metadata["dagster/row_count"] == at_commit.select(pl.len()).collect().item()
        if table == "orders":
            partition = at_commit.filter(pl.col("order_date") == dt.date.fromisoformat(day))
            assert metadata["dagster/partition_row_count"] == (
                partition.select(pl.len()).collect().item()
            )
            assert metadata["upsert/rows_inserted"] == landed[day]
    # Every concurrent commit got its own version, and the final tables hold every batch.
    assert len(versions) == len(records)

    def rows(table):
        return pl.scan_delta(f"{lake}/{table}", storage_options=storage).select(pl.len()).collect()

    assert rows("orders").item() == sum(landed.values())  # no commit lost
    assert rows("customers").item() == len(customer_ids)
    judged = [(c.asset_check_key.name, c.passed) for c in checks]
    assert {name for name, _ in judged} >= {"counts_reconcile", "not_empty"}
    assert [name for name, passed in judged if not passed] == []
    assert not any(PROBE_PREFIX in key for key in keys_under(s3, lake_bucket))


def test_a_store_that_ignores_if_none_match_is_refused_by_name_and_nothing_is_written(
    s3, monkeypatch
):
    bucket = new_bucket(s3)
    with header_proxy(s3, strip=True) as (proxy, stripped):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        lake = DeltaMergeResource(lake_uri=f"s3://{bucket}/lake")
        with pytest.raises(UnsafeObjectStoreError, match="If-None-Match") as refused:
            lake.upsert("orders", order_batch([1, 2]), keys=ORDERS.keys)
    assert SINGLE_WRITER_ENV in str(refused.value)  # it says what to do
    assert len(stripped) == 2  # the probe's two creates reached the store without the header
    assert keys_under(s3, bucket) == []  # no _delta_log, and the probe object deleted


def test_the_single_writer_opt_out_writes_through_such_a_store(s3, monkeypatch):
    bucket = new_bucket(s3)
    with header_proxy(s3, strip=True) as (proxy, _):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        lake = DeltaMergeResource(lake_uri=f"s3://{bucket}/lake", single_writer=True)
        result = lake.upsert("orders", order_batch([1, 2]), keys=ORDERS.keys)
    assert result.inserted == 2
    assert any(key.startswith("lake/orders/_delta_log/") for key in keys_under(s3, bucket))


def test_a_safe_store_is_probed_once_per_endpoint_and_bucket_and_the_probe_leaves_nothing(
    s3, monkeypatch
):
    bucket, other = new_bucket(s3), new_bucket(s3)
    with header_proxy(s3, strip=False) as (proxy, conditional):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        ensure_safe_commits(f"s3://{bucket}/lake/orders", None)
        assert len(conditional) == 2  # two creates of one probe key
        assert conditional[0] == conditional[1]
        assert f"/{bucket}/lake/orders/{PROBE_PREFIX}/" in conditional[0]
        ensure_safe_commits(f"s3://{bucket}/lake/customers", None)
        assert len(conditional) == 2  # the bucket's verdict is cached for the process
        ensure_safe_commits(f"s3://{other}/lake/orders", None)
        assert len(conditional) == 4  # another bucket is probed
    assert keys_under(s3, bucket) == keys_under(s3, other) == []
    # The same bucket behind another endpoint is another store, probed again: here refused.
    with header_proxy(s3, strip=True) as (proxy, _):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        with pytest.raises(UnsafeObjectStoreError):
            ensure_safe_commits(f"s3://{bucket}/lake/orders", None)
