"""The compose topology as local processes, with moto's S3 server standing in for MinIO: the
compose file's sample-data command fills the landing bucket, a run submitted through the
webserver's GraphQL API is queued, dequeued by the daemon, executed by the code server against
the S3 lake, and its materialization with every count is read back from PostgreSQL."""

import datetime as dt
import os
import subprocess
import sys
from urllib.parse import urlsplit

import dagster as dg
import polars as pl
import pytest

from deploy.instance import open_instance
from upsert_pipeline.checks import (
    COUNTS_RECONCILE,
    NO_OUT_OF_BAND_WRITES,
    NOT_EMPTY,
    VOLUME_WITHIN_HISTORY,
)
from upsert_pipeline.checks.names import expectation_check
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.resources import LAKE_URI_ENV, LANDING_URI_ENV, LandingResource
from upsert_pipeline_tests.conftest import (
    partition_materializations,
    run_check_evaluations,
    verdicts_by_partition,
)
from upsert_pipeline_tests.deployment import (
    CODE_LOCATION,
    SAMPLE_DATA,
    compose_services,
    launch_backfill,
    launch_partition_run,
    running_topology,
    wait_for_backfill_runs,
    wait_for_run,
)
from upsert_pipeline_tests.object_store import keys_under, moto_server, s3_client, s3_env
from upsert_pipeline_tests.postgres import (
    fresh_database,
    postgres_env,
    project_dagster_home,
    query,
)
from upsert_pipeline_tests.processes import live_group_members

PARTITION = "2026-11-02"
COUNT_KEYS = (
    "upsert/source_rows",
    "upsert/rows_inserted",
    "upsert/rows_updated",
    "upsert/rows_deleted",
    "upsert/rows_unchanged",
    "upsert/rows_copied",
    "delta/version",
    "delta/read_version",
    "delta/files_added",
    "delta/files_removed",
    "delta/files_without_stats",
    "dagster/partition_row_count",
    "dagster/row_count",
)


@pytest.fixture
def deployment_env(tmp_path):
    """The compose environment of the Dagster services, moto's endpoint in MinIO's place; the
    buckets created as the one-shot ``create-buckets`` service does, the landing filled by the
    ``sample-data`` service's own command."""
    services = compose_services()
    compose_env = services[CODE_LOCATION]["environment"]
    with moto_server() as endpoint, fresh_database() as database:
        env = {
            **postgres_env(database),
            **s3_env(endpoint),
            LAKE_URI_ENV: compose_env[LAKE_URI_ENV],
            LANDING_URI_ENV: compose_env[LANDING_URI_ENV],
        }
        for uri in (env[LAKE_URI_ENV], env[LANDING_URI_ENV]):
            s3_client(endpoint).create_bucket(Bucket=urlsplit(uri).netloc)
        command = services[SAMPLE_DATA]["command"]
        assert command[0] == "python"
        result = subprocess.run(
            [sys.executable, *command[1:]],
            env={**os.environ, **env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        yield env


def test_a_run_submitted_to_the_webserver_is_dequeued_executed_and_stored_in_postgres(
    tmp_path, deployment_env, monkeypatch
):
    home = project_dagster_home(tmp_path / "dagster_home")
    with running_topology(
        dagster_home=home, env=deployment_env, log_dir=tmp_path / "logs"
    ) as topology:
        run_id, status_at_launch = launch_partition_run(topology.base_url, "orders", PARTITION)
        assert status_at_launch == "QUEUED"  # the QueuedRunCoordinator of dagster.yaml
        status = wait_for_run(topology, run_id)
        assert status == "SUCCESS", topology.log_tail()
        groups = topology.process_groups
    assert len(groups) == 3
    for pgid in groups:
        assert live_group_members(pgid) == [], f"process group {pgid} outlived the topology"

    for name, value in deployment_env.items():
        monkeypatch.setenv(name, value)
    with open_instance(home) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == PARTITION
        events = [
            record.event_log_entry.dagster_event_type
            for record in instance.get_records_for_run(run_id).records
        ]
        # Queued by the webserver's submit, launched (RUN_STARTING) by the daemon's dequeue.
        lifecycle = [
            dg.DagsterEventType.RUN_ENQUEUED,
            dg.DagsterEventType.RUN_STARTING,
            dg.DagsterEventType.RUN_START,
            dg.DagsterEventType.RUN_SUCCESS,
        ]
        assert [event for event in events if event in lifecycle] == lifecycle
        heartbeats = instance.get_daemon_heartbeats()
        assert "QUEUED_RUN_COORDINATOR" in heartbeats  # the daemon ran against this database

        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("orders"), asset_partitions=[PARTITION]),
            limit=1,
        ).records
        assert records and records[0].run_id == run_id
        metadata = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
        check = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("orders"), COUNTS_RECONCILE), limit=1
        )

        # Read with the same environment alone, as the runs did.
        landed = LandingResource(uri=deployment_env[LANDING_URI_ENV]).read_batch(ORDERS, PARTITION)
        table = pl.scan_delta(f"{deployment_env[LAKE_URI_ENV]}/orders")
        in_partition = table.filter(pl.col("order_date") == dt.date.fromisoformat(PARTITION))
        scanned = [frame.select(pl.len()).collect().item() for frame in (table, in_partition)]
        lake_bucket = urlsplit(deployment_env[LAKE_URI_ENV]).netloc
        lake_keys = keys_under(deployment_env["AWS_ENDPOINT_URL"], lake_bucket)

    for key in COUNT_KEYS:
        assert isinstance(metadata[key], int), key
    assert metadata["upsert/source_rows"] == metadata["upsert/rows_inserted"] == landed.num_rows
    assert metadata["upsert/rows_updated"] == metadata["upsert/rows_deleted"] == 0
    assert metadata["dagster/partition_row_count"] == scanned[1]
    assert metadata["dagster/row_count"] == scanned[0] == landed.num_rows
    assert any(key.startswith("orders/_delta_log/") for key in lake_keys)  # the lake is on S3
    assert (metadata["delta/read_version"], metadata["delta/version"]) == (0, 1)
    assert check and check[0].run_id == run_id
    assert check[0].status.value == "SUCCEEDED"

    # The same facts, straight from PostgreSQL's tables rather than through Dagster.
    database = deployment_env["DAGSTER_POSTGRES_DB"]
    assert query(database, "SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [("SUCCESS",)]
    assert query(
        database,
        "SELECT partition FROM event_logs WHERE run_id = %s "
        "AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        (run_id,),
    ) == [(PARTITION,)]


BACKFILL_DAYS = ("2026-11-03", "2026-11-04", "2026-11-05")


def test_a_backfill_launched_as_the_ui_does_is_one_run_recording_every_day_and_check(
    tmp_path, deployment_env, monkeypatch
):
    home = project_dagster_home(tmp_path / "dagster_home")
    with running_topology(
        dagster_home=home, env=deployment_env, log_dir=tmp_path / "logs"
    ) as topology:
        backfill_id = launch_backfill(topology.base_url, "orders", BACKFILL_DAYS)
        statuses = wait_for_backfill_runs(topology, backfill_id)
    # The backfill daemon submitted one run for the range (BackfillPolicy.single_run).
    assert list(statuses.values()) == ["SUCCESS"], statuses
    [run_id] = statuses

    for name, value in deployment_env.items():
        monkeypatch.setenv(name, value)
    with open_instance(home) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        assert run.tags["dagster/asset_partition_range_start"] == BACKFILL_DAYS[0]
        assert run.tags["dagster/asset_partition_range_end"] == BACKFILL_DAYS[-1]
        recorded = partition_materializations(instance, "orders", BACKFILL_DAYS)
        verdicts = verdicts_by_partition(run_check_evaluations(instance, run_id), "orders")
        landed = {
            day: LandingResource(uri=deployment_env[LANDING_URI_ENV])
            .read_batch(ORDERS, day)
            .num_rows
            for day in BACKFILL_DAYS
        }

    checks = {COUNTS_RECONCILE, NO_OUT_OF_BAND_WRITES, NOT_EMPTY, VOLUME_WITHIN_HISTORY} | {
        expectation_check(rule.name) for rule in ORDERS.expectations
    }
    for day in BACKFILL_DAYS:
        [record] = recorded[day]
        assert record.run_id == run_id
        metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        # Each day its own counts: its own batch inserted into its own partition.
        assert metadata["upsert/rows_inserted"] == landed[day]
        assert metadata["dagster/partition_row_count"] == landed[day]
        assert verdicts[day] == dict.fromkeys(checks, True), (day, verdicts[day])
    assert set(verdicts) == set(BACKFILL_DAYS)
