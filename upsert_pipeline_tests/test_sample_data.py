"""The sample data: deterministic per day, one batch for every partition the UI offers, in the
feeds' schemas, with re-deliveries that change rows."""

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from upsert_pipeline.delta import DisallowedUriError
from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.feeds import CUSTOMERS, ORDERS
from upsert_pipeline.feeds import DEFAULT_START as START_DATE
from upsert_pipeline.partitions import daily_partitions
from upsert_pipeline.resources import LANDING_URI_ENV
from upsert_pipeline.sample_data import (
    REDELIVERED_DAYS,
    SNAPSHOT_DAY,
    days_through_yesterday,
    generate,
    main,
    redeliver,
)


def test_generation_is_deterministic(tmp_path):
    first = generate(tmp_path / "a", days=3)
    second = generate(tmp_path / "b", days=3)
    for a, b in zip(first, second, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))


def test_a_days_batch_does_not_change_when_more_days_are_generated(tmp_path):
    few = generate(tmp_path / "few", days=2)
    many = generate(tmp_path / "many", days=6)
    assert [Path(p).name for p in few] == [Path(p).name for p in many[:4]]
    for a, b in zip(few, many[:4], strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    # Different days are different batches.
    assert not pq.read_table(many[0]).equals(pq.read_table(many[2]))


def test_by_default_every_partition_the_ui_offers_has_a_batch(tmp_path):
    keys = daily_partitions.get_partition_keys()
    assert days_through_yesterday() == len(keys)
    assert keys[0] == START_DATE
    assert dt.date.fromisoformat(keys[-1]) == dt.datetime.now(dt.UTC).date() - dt.timedelta(1)
    written = generate(tmp_path)
    for feed in (ORDERS, CUSTOMERS):
        landed = sorted(p.stem for p in (tmp_path / feed.name).glob("*.parquet"))
        assert landed == keys, feed.name
    assert len(written) == 2 * len(keys)
    # The days --redeliver sends again are among them.
    assert max(*REDELIVERED_DAYS, SNAPSHOT_DAY) < len(keys)


def test_days_through_yesterday_counts_from_the_start_date():
    start = dt.date.fromisoformat(START_DATE)
    assert days_through_yesterday(start) == 0
    assert days_through_yesterday(start + dt.timedelta(days=1)) == 1
    assert days_through_yesterday(start + dt.timedelta(days=24)) == 24


def test_batches_fit_their_feeds(tmp_path):
    for path in map(Path, generate(tmp_path, days=2)):
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


def test_command_line_writes_every_day_through_yesterday(tmp_path, capsys):
    main(["--landing", str(tmp_path)])
    days = days_through_yesterday()
    assert len(list((tmp_path / "orders").glob("*.parquet"))) == days
    assert f"wrote {2 * days} landing batches" in capsys.readouterr().out


def test_command_line_defaults_to_the_configured_landing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(LANDING_URI_ENV, str(tmp_path / "configured"))
    main(["--days", "1"])
    assert (tmp_path / "configured" / "orders" / f"{START_DATE}.parquet").is_file()


def test_missing_only_adds_new_days_and_keeps_redeliveries(tmp_path):
    generate(tmp_path, days=3)
    [redelivered, *_] = redeliver(tmp_path, days=(2,), snapshot_days=())
    before = pq.read_table(redelivered)
    written = generate(tmp_path, days=5, missing_only=True)
    assert sorted(Path(p).stem for p in written) == sorted(
        [(dt.date.fromisoformat(START_DATE) + dt.timedelta(days=d)).isoformat() for d in (3, 4)] * 2
    )
    assert pq.read_table(redelivered).equals(before)


@pytest.mark.parametrize("landing", ["s3a://bucket/feeds", "http://example.com/feeds"])
def test_a_landing_the_reader_cannot_open_is_refused_before_writing(landing):
    with pytest.raises(DisallowedUriError):
        generate(landing, days=1)
