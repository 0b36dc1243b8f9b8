"""The compose topology as local processes: a run submitted through the webserver's GraphQL API
is queued, dequeued by the daemon, executed by the code server, and its materialization with every
count is read back from PostgreSQL."""

import datetime as dt

import dagster as dg
import pyarrow.parquet as pq
import pytest

from deploy.instance import open_instance
from upsert_pipeline.checks import COUNTS_RECONCILE
from upsert_pipeline.resources import LAKE_URI_ENV, LANDING_URI_ENV
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.conftest import scan_rows
from upsert_pipeline_tests.deployment import (
    launch_partition_run,
    live_group_members,
    running_topology,
    wait_for_run,
)
from upsert_pipeline_tests.postgres import (
    fresh_database,
    postgres_env,
    project_dagster_home,
    query,
)

PARTITION = "2026-11-02"
# The asset and its check steps in the run worker's own process: what is under test is the
# topology (queue, daemon, code server, PostgreSQL), and a process per step would add ~10 s.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
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
    landing = tmp_path / "landing"
    generate(landing, days=3)
    with fresh_database() as database:
        yield {
            **postgres_env(database),
            LAKE_URI_ENV: str(tmp_path / "lake"),
            LANDING_URI_ENV: str(landing),
        }


def test_a_run_submitted_to_the_webserver_is_dequeued_executed_and_stored_in_postgres(
    tmp_path, deployment_env, monkeypatch
):
    home = project_dagster_home(tmp_path / "dagster_home")
    with running_topology(
        dagster_home=home, env=deployment_env, log_dir=tmp_path / "logs"
    ) as topology:
        run_id, status_at_launch = launch_partition_run(
            topology.base_url, "orders", PARTITION, run_config=IN_PROCESS
        )
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

    for key in COUNT_KEYS:
        assert isinstance(metadata[key], int), key
    landed = pq.read_metadata(
        f"{deployment_env[LANDING_URI_ENV]}/orders/{PARTITION}.parquet"
    ).num_rows
    table = f"{deployment_env[LAKE_URI_ENV]}/orders"
    assert metadata["upsert/source_rows"] == metadata["upsert/rows_inserted"] == landed
    assert metadata["upsert/rows_updated"] == metadata["upsert/rows_deleted"] == 0
    assert metadata["dagster/partition_row_count"] == scan_rows(
        table, dt.date.fromisoformat(PARTITION)
    )
    assert metadata["dagster/row_count"] == scan_rows(table) == landed
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
