"""The code location loads, and its resources follow the environment."""

import importlib

import dagster as dg
import pytest

import upsert_pipeline.definitions as definitions
from upsert_pipeline.resources import (
    DEFAULT_LAKE_URI,
    DEFAULT_LANDING_URI,
    LAKE_URI_ENV,
    LANDING_URI_ENV,
)


def test_definitions_load_and_resolve_every_job():
    defs = definitions.defs
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "ingest_daily",
        "check_lake",
        "ingest_orders",
        "ingest_customers",
        "maintain_lake",
        "observe_tables",
    }
    assert {schedule.name for schedule in defs.schedules or ()} == {
        "ingest_orders_schedule",
        "ingest_customers_schedule",
        "maintain_lake_schedule",
        "observe_tables_schedule",
    }
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} >= {"orders", "customers"}
    orders = defs.resolve_assets_def("orders")
    assert orders.partitions_def is not None
    assert orders.partitions_def.get_partition_keys()[0] == "2026-11-01"


@pytest.fixture
def reload_definitions(monkeypatch):
    """Reloads the definitions module under the test's environment, and again after it."""
    yield lambda: importlib.reload(definitions).defs
    monkeypatch.undo()
    importlib.reload(definitions)


def test_resources_default_to_the_project_data_folder(monkeypatch, reload_definitions):
    monkeypatch.delenv(LAKE_URI_ENV, raising=False)
    monkeypatch.delenv(LANDING_URI_ENV, raising=False)
    defs = reload_definitions()
    assert defs.resources["lake"].lake_uri == DEFAULT_LAKE_URI
    assert defs.resources["landing"].uri == DEFAULT_LANDING_URI


def test_resources_read_the_environment_at_run_time(monkeypatch, tmp_path, reload_definitions):
    monkeypatch.setenv(LAKE_URI_ENV, str(tmp_path / "lake"))
    monkeypatch.setenv(LANDING_URI_ENV, str(tmp_path / "landing"))
    lake = reload_definitions().resources["lake"]
    assert isinstance(lake.lake_uri, dg.EnvVar)
    assert lake.process_config_and_initialize().lake_uri == str(tmp_path / "lake")


def test_the_daily_job_runs_the_standalone_checks_after_the_assets():
    nodes = set(definitions.defs.resolve_job_def("ingest_daily").graph.node_names())
    assert {"orders", "customers"} <= nodes
    for asset in ("orders", "customers"):
        assert {f"{asset}_not_empty", f"{asset}_volume_within_history"} <= nodes
    check_nodes = set(definitions.defs.resolve_job_def("check_lake").graph.node_names())
    assert "orders" not in check_nodes and "orders_not_empty" in check_nodes


def test_every_run_is_one_process():
    # A step per process would start Dagster, delta-rs and polars again for every check.
    for job in definitions.defs.resolve_all_job_defs():
        assert job.executor_def.name == "in_process", job.name
