"""Backfills after schema evolution: a batch without a column the table gained loads nulls there.

Only a nullable column outside the declared ones (``required_columns``) may be absent; with
``evolve_schema`` and nothing declared, only the table's not-null columns are required.
"""

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import MissingColumnError, upsert
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch

DECLARED = ORDERS.schema.names


def _with_channel(batch: pa.Table, values: list[str | None]) -> pa.Table:
    return batch.append_column(pa.field("channel", pa.string()), pa.array(values, pa.string()))


@pytest.fixture
def evolved(table_uri):
    """Two days; the later one's batch added ``channel`` (schema evolution)."""
    upsert(table_uri, order_batch([1, 2]), keys=["order_id"], partition={"order_date": DAY})
    upsert(
        table_uri,
        _with_channel(order_batch([1, 2], day=OTHER_DAY), ["web", "shop"]),
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
        evolve_schema=True,
    )
    return table_uri


def _channels(uri: str) -> dict[tuple[str, int], str | None]:
    frame = pl.read_delta(uri)
    return {(str(row["order_date"]), row["order_id"]): row["channel"] for row in frame.to_dicts()}


@pytest.mark.parametrize(
    "options",
    [{"required_columns": DECLARED}, {"evolve_schema": True}],
    ids=["declared-columns", "evolve-schema"],
)
def test_a_backfill_without_the_gained_column_loads_nulls_there(evolved, options):
    batch = order_batch([1, 3], day=OTHER_DAY, status="paid")

    result = upsert(
        evolved, batch, keys=["order_id"], partition={"order_date": OTHER_DAY}, **options
    )

    # 1 changes status and loses its channel, 3 is new; 2 is not in the batch and keeps its own.
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 0)
    assert result.columns_filled == ("channel",)
    assert result.columns_added == ()
    assert _channels(evolved)[(str(OTHER_DAY), 1)] is None
    assert _channels(evolved)[(str(OTHER_DAY), 2)] == "shop"
    assert _channels(evolved)[(str(OTHER_DAY), 3)] is None
    assert result.partition_rows == 3


def test_a_backfill_that_is_already_in_changes_nothing(evolved):
    result = upsert(
        evolved,
        order_batch([1, 2]),
        keys=["order_id"],
        partition={"order_date": DAY},
        required_columns=DECLARED,
    )
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 2)
    assert not result.committed
    assert result.columns_filled == ("channel",)


def test_a_batch_that_has_every_column_fills_none(evolved):
    batch = _with_channel(order_batch([1], day=OTHER_DAY), ["web"])
    result = upsert(
        evolved,
        batch,
        keys=["order_id"],
        partition={"order_date": OTHER_DAY},
        required_columns=DECLARED,
    )
    assert result.columns_filled == ()
    assert (result.updated, result.unchanged) == (0, 1)


def test_without_evolution_or_a_declaration_every_table_column_is_required(evolved):
    version = DeltaTable(evolved).version()
    with pytest.raises(MissingColumnError):
        upsert(evolved, order_batch([3]), keys=["order_id"], partition={"order_date": DAY})
    assert DeltaTable(evolved).version() == version


@pytest.mark.parametrize(
    "options",
    [{"required_columns": DECLARED}, {"evolve_schema": True}],
    ids=["declared-columns", "evolve-schema"],
)
def test_a_declared_or_not_null_column_is_still_required(evolved, options):
    version = DeltaTable(evolved).version()
    # status is declared; order_id (the key, not null) and order_date (the partition) always.
    missing = "status" if "required_columns" in options else "order_id"
    batch = order_batch([3]).drop_columns([missing])
    with pytest.raises(MissingColumnError, match=missing):
        upsert(evolved, batch, keys=["customer_id"], partition={"order_date": DAY}, **options)
    assert DeltaTable(evolved).version() == version


def test_a_not_null_column_the_table_gained_is_required_under_evolution(tmp_path):
    uri = str(tmp_path / "events")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.int64())])
    upsert(uri, pa.table({"id": [1], "v": [1]}, schema=schema), keys=["id"])
    version = DeltaTable(uri).version()
    # The table's not-null id is required; its nullable v may be absent (it loads null).
    result = upsert(
        uri, pa.table({"id": [2]}, schema=schema.remove(1)), keys=["id"], evolve_schema=True
    )
    assert (result.inserted, result.columns_filled) == (1, ("v",))
    assert result.version == version + 1
    assert pl.read_delta(uri).sort("id").to_dicts() == [{"id": 1, "v": 1}, {"id": 2, "v": None}]
