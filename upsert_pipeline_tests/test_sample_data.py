"""The sample data: deterministic, in the feeds' schemas, with re-deliveries that change rows."""

import pyarrow.parquet as pq

from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.feeds import CUSTOMERS, ORDERS
from upsert_pipeline.sample_data import (
    DAYS,
    REDELIVERED_DAYS,
    SNAPSHOT_DAY,
    generate,
    main,
    redeliver,
)


def test_generation_is_deterministic(tmp_path):
    first = generate(tmp_path / "a", days=3)
    second = generate(tmp_path / "b", days=3)
    for a, b in zip(first, second, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))


def test_batches_fit_their_feeds(tmp_path):
    for path in generate(tmp_path, days=2):
        feed = ORDERS if path.parent.name == "orders" else CUSTOMERS
        table = pq.read_table(path)
        assert table.schema.remove_metadata() == feed.schema
        keys = table.column(feed.keys[0])
        assert keys.null_count == 0 and len(keys.unique()) == len(keys)


def test_a_redelivery_corrects_keeps_and_adds_orders(tmp_path):
    day = REDELIVERED_DAYS[0]
    [first, _] = generate(tmp_path, days=day + 1)[-2:]
    original = {row["order_id"]: row for row in pq.read_table(first).to_pylist()}
    redeliver(tmp_path, days=(day,), snapshot_days=())
    again = {row.pop("order_id"): row for row in pq.read_table(first).to_pylist()}
    tombstones = {key for key, row in again.items() if row.pop(OP_COLUMN) == DELETE_OP}

    assert set(original) < set(again)  # late orders
    changed = sum(
        {**original[key], "order_id": None} != {**again[key], "order_id": None} for key in original
    )
    assert 0 < changed < len(original)  # corrections, and rows sent again unchanged
    assert 0 < len(tombstones) < len(original) // 10


def test_a_snapshot_day_leaves_orders_out_and_carries_no_tombstones(tmp_path):
    [first, _] = generate(tmp_path, days=SNAPSHOT_DAY + 1)[-2:]
    original = pq.read_table(first)
    [snapshot] = redeliver(tmp_path, days=(), snapshot_days=(SNAPSHOT_DAY,))
    again = pq.read_table(snapshot)
    assert again.schema.remove_metadata() == ORDERS.schema
    kept = set(again.column("order_id").to_pylist())
    assert 0 < original.num_rows - len(kept) < original.num_rows // 5
    assert kept < set(original.column("order_id").to_pylist())


def test_command_line_writes_every_day(tmp_path, capsys):
    main(["--landing", str(tmp_path)])
    assert len(list((tmp_path / "orders").glob("*.parquet"))) == DAYS
    assert "wrote 28 landing batches" in capsys.readouterr().out
