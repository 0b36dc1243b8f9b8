"""Shared fixtures: a Delta table URI on tmp_path, small order batches, landing data, resources."""

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest

from upsert_pipeline.definitions import feed_definitions
from upsert_pipeline.delta import upsert
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline.sample_data import generate

DAY = dt.date(2026, 11, 2)
OTHER_DAY = dt.date(2026, 11, 3)
UPDATED_AT = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)


def feed_asset(name: str) -> dg.AssetsDefinition:
    """The asset the defs folder builds for a feed (no resources bound)."""
    [asset] = [
        a
        for a in feed_definitions().assets or ()
        if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey(name)
    ]
    return asset


def feed_checks(*names: str) -> list[dg.AssetsDefinition]:
    """The standalone checks the defs folder builds for the named feeds."""
    keys = {dg.AssetKey(name) for name in names}
    return [
        check
        for check in feed_definitions().asset_checks or ()
        if {key.asset_key for key in check.check_keys} <= keys
    ]


def order_batch(
    ids: Sequence[int],
    *,
    day: dt.date = DAY,
    status: str | None = "placed",
    amount: Decimal | None = Decimal("9.99"),
) -> pa.Table:
    """Orders with the given ids on one day, every row alike but for its id."""
    count = len(ids)
    return pa.table(
        {
            "order_id": list(ids),
            "order_date": [day] * count,
            "customer_id": [7] * count,
            "status": [status] * count,
            "amount": [amount] * count,
            "updated_at": [UPDATED_AT] * count,
        },
        schema=ORDERS.schema,
    )


def scan_rows(table_uri: str, day: dt.date | None = None) -> int:
    """The reference count: a polars scan of the table's data (what this project avoids)."""
    frame = pl.scan_delta(table_uri)
    if day is not None:
        frame = frame.filter(pl.col("order_date") == day)
    return int(frame.select(pl.len()).collect().item())


def partition_materializations(
    instance: dg.DagsterInstance, asset: str, days: Sequence[str], limit: int = 5
) -> dict[str, Sequence[dg.EventLogRecord]]:
    """Each day's latest materializations of ``asset`` (newest first, at most ``limit``)."""
    return {
        day: instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day]),
            limit=limit,
        ).records
        for day in days
    }


def run_check_evaluations(
    instance: dg.DagsterInstance, run_id: str
) -> list[dg.AssetCheckEvaluation]:
    """Every check evaluation a run recorded, as stored in the event log."""
    return [
        record.event_log_entry.dagster_event.event_specific_data
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        if record.event_log_entry.dagster_event is not None
    ]


def verdicts_by_partition(
    evaluations: Sequence[dg.AssetCheckEvaluation], asset: str
) -> dict[str, dict[str, bool]]:
    """Per partition, each check's verdict on ``asset``; each names its partition, once per
    partition and check."""
    by_day: dict[str, dict[str, bool]] = {}
    for evaluation in evaluations:
        if evaluation.asset_key == dg.AssetKey(asset):
            assert evaluation.partition is not None, evaluation
            day = by_day.setdefault(evaluation.partition, {})
            assert evaluation.check_name not in day, evaluation  # once per day and check
            day[evaluation.check_name] = evaluation.passed
    return by_day


@pytest.fixture
def table_uri(tmp_path: Path) -> str:
    return str(tmp_path / "lake" / "orders")


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    generate(landing, days=4)
    return landing


@pytest.fixture
def resources(tmp_path: Path, landing_dir: Path) -> dict[str, object]:
    return {
        "landing": LandingResource(uri=str(landing_dir)),
        "lake": DeltaMergeResource(lake_uri=str(tmp_path / "lake")),
    }


@pytest.fixture
def two_days(table_uri: str) -> str:
    """A table of two partitions: version 0 creates it, DAY's merge (orders 1-5) is version 1,
    OTHER_DAY's (orders 1-3) version 2."""
    upsert(table_uri, order_batch(range(1, 6)), keys=["order_id"], partition={"order_date": DAY})
    upsert(
        table_uri,
        order_batch(range(1, 4), day=OTHER_DAY),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
    )
    return table_uri
