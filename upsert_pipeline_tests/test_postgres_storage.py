"""The instance of the project's dagster.yaml on a fresh PostgreSQL database: materializations,
check results and their metadata land there, and the run queue's limits hold."""

import dagster as dg
import pytest
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from deploy.instance import open_instance
from upsert_pipeline.checks import COUNTS_RECONCILE
from upsert_pipeline_tests.conftest import feed_asset, scan_rows
from upsert_pipeline_tests.postgres import (
    fresh_database,
    postgres_env,
    project_dagster_home,
    query,
)

PARTITIONS = ("2026-11-01", "2026-11-02")

orders = feed_asset("orders")
customers = feed_asset("customers")


@pytest.fixture
def database(monkeypatch):
    with fresh_database() as name:
        for variable, value in postgres_env(name).items():
            monkeypatch.setenv(variable, value)
        yield name


@pytest.fixture
def home(tmp_path, database):
    return project_dagster_home(tmp_path / "dagster_home")


def _metadata(instance, asset, partition):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert records, f"no materialization of {asset} {partition}"
    return {key: value.value for key, value in records[0].asset_materialization.metadata.items()}


def test_materializations_checks_and_metadata_are_in_postgres_for_a_second_instance(
    home, database, resources, tmp_path
):
    with open_instance(home) as instance:
        for partition in PARTITIONS:
            result = dg.materialize(
                [orders, customers], partition_key=partition, resources=resources, instance=instance
            )
            assert result.success
        written = {partition: _metadata(instance, "orders", partition) for partition in PARTITIONS}

    # Another process's view: a new instance on the same database, nothing shared in memory.
    with open_instance(home) as second:
        runs = second.get_runs()
        assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(PARTITIONS)
        assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
        table = str(tmp_path / "lake" / "orders")
        for partition in PARTITIONS:
            metadata = _metadata(second, "orders", partition)
            assert metadata == written[partition]
            assert metadata["upsert/rows_inserted"] == metadata["upsert/source_rows"] > 0
            assert isinstance(metadata["dagster/partition_row_count"], int)
            assert isinstance(metadata["delta/version"], int)
        assert _metadata(second, "orders", PARTITIONS[-1])["dagster/row_count"] == scan_rows(table)
        executions = second.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("orders"), COUNTS_RECONCILE), limit=10
        )
        assert len(executions) == len(PARTITIONS)
        assert {execution.status.value for execution in executions} == {"SUCCEEDED"}
        assert {execution.run_id for execution in executions} == {run.run_id for run in runs}

    # And they are rows of this PostgreSQL database, not of some SQLite file next to it.
    assert query(database, "SELECT count(*) FROM runs WHERE status = 'SUCCESS'") == [(2,)]
    materialized = query(
        database,
        "SELECT asset_key, partition FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key, partition",
    )
    assert materialized == [
        ('["customers"]', PARTITIONS[0]),
        ('["customers"]', PARTITIONS[1]),
        ('["orders"]', PARTITIONS[0]),
        ('["orders"]', PARTITIONS[1]),
    ]
    assert query(
        database,
        "SELECT count(*) FROM asset_check_executions WHERE asset_key = %s AND check_name = %s",
        ('["orders"]', COUNTS_RECONCILE),
    ) == [(2,)]


# Where a queued run says it comes from (the webserver records this for every submitted run).
ORIGIN = RemoteJobOrigin(
    repository_origin=RemoteRepositoryOrigin(
        code_location_origin=GrpcServerCodeLocationOrigin(
            host="code-location", port=4000, location_name="upsert_pipeline"
        ),
        repository_name="__repository__",
    ),
    job_name="ingest_daily",
)


def _add_run(instance, partition, status):
    run = DagsterRun(
        job_name="ingest_daily",
        status=status,
        tags={"dagster/partition": partition},
        remote_job_origin=ORIGIN,
    )
    return instance.add_run(run)


def _dequeued(instance):
    """The runs the daemon would launch now, by its own selection under dagster.yaml's limits."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    runs = daemon._get_runs_to_dequeue(  # the daemon's selection, without launching
        instance, instance.get_concurrency_config(), fixed_iteration_time=None
    )
    return [run.tags["dagster/partition"] for run in runs]


def test_run_queue_never_runs_one_partition_twice_and_caps_concurrent_runs(home):
    with open_instance(home) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        # What frees a partition's slot when its run never finishes (see dagster.yaml).
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_max_runtime_seconds == 6 * 3600

        queued = dg.DagsterRunStatus.QUEUED
        for partition in ("2026-11-02", "2026-11-02", "2026-11-03", "2026-11-04"):
            _add_run(instance, partition, queued)
        # Two slots: the second run of 11-02 waits for the first, 11-03 takes the other slot.
        assert _dequeued(instance) == ["2026-11-02", "2026-11-03"]

        _add_run(instance, "2026-11-02", dg.DagsterRunStatus.STARTED)
        # One slot left, and 11-02 is already being merged: the next partition goes instead.
        assert _dequeued(instance) == ["2026-11-03"]

        _add_run(instance, "2026-11-05", dg.DagsterRunStatus.STARTED)
        assert _dequeued(instance) == []
