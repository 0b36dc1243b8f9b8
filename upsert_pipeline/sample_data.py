"""Deterministic, realistic landing batches for the ``orders`` and ``customers`` feeds.

``python -m upsert_pipeline.sample_data`` writes the first delivery of every day from
``START_DATE`` on; ``--redeliver`` then replaces some days' files with corrected re-deliveries
(status changes, amount corrections, late orders, tombstones, most rows sent again unchanged) and
one day with a complete snapshot, so that materializing those days again shows updates, inserts,
deletes and unchanged rows in their counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.feeds import CUSTOMERS, ORDERS, Feed
from upsert_pipeline.partitions import START_DATE

DAYS = 14
"""Days of sample data, from ``START_DATE``."""
REDELIVERED_DAYS = (2, 5, 9)
"""Offsets from ``START_DATE`` of the days ``--redeliver`` sends again, corrected, with tombstones
(``_op = 'D'``) for orders that were withdrawn."""
SNAPSHOT_DAY = 11
"""Offset of the day ``--redeliver`` sends again as a complete snapshot (load it with run config
``snapshot: true``): the orders it leaves out are deleted from that day's partition."""
SEED = 20261101

_STATUSES = ("placed", "paid", "shipped", "delivered")
_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "SE")
_SEGMENTS = ("consumer", "small_business", "enterprise")
_FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia")
_LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus")


def _first_day() -> dt.date:
    return dt.date.fromisoformat(START_DATE)


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    seconds = rng.randrange(24 * 3600)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


def _orders(day_index: int) -> list[dict[str, Any]]:
    """The first delivery of one day's orders; order ids are unique across days."""
    rng = random.Random(SEED + day_index)
    day = _first_day() + dt.timedelta(days=day_index)
    count = rng.randint(300, 600)
    first_id = 1_000_000 + day_index * 10_000
    rows = []
    for offset in range(count):
        status = rng.choice(_STATUSES) if rng.random() > 0.03 else None
        amount = Decimal(rng.randint(500, 50_000)) / 100 if rng.random() > 0.02 else None
        rows.append(
            {
                "order_id": first_id + offset,
                "order_date": day,
                "customer_id": rng.randint(1, 200 + 10 * day_index),
                "status": status,
                "amount": amount,
                "updated_at": _at(day, rng),
            }
        )
    return rows


def _redelivered_orders(day_index: int) -> list[dict[str, Any]]:
    """The day's orders sent again: some corrected, some late, the rest unchanged."""
    rng = random.Random(SEED * 7 + day_index)
    rows = _orders(day_index)
    corrected_at = dt.datetime.combine(
        _first_day() + dt.timedelta(days=day_index + 1), dt.time(6), tzinfo=dt.UTC
    )
    for row in rows:
        roll = rng.random()
        if roll < 0.08:
            row["status"] = "cancelled"
            row["updated_at"] = corrected_at
        elif roll < 0.12:
            row["amount"] = None if row["amount"] is None else row["amount"] + Decimal("1.25")
            row["updated_at"] = corrected_at
        elif roll < 0.14 and row["status"] is None:
            row["status"] = "paid"
            row["updated_at"] = corrected_at
    for row in rows:
        row[OP_COLUMN] = DELETE_OP if rng.random() < 0.02 else None
    last_id = rows[-1]["order_id"]
    day = rows[0]["order_date"]
    for offset in range(1, rng.randint(10, 40)):
        rows.append(
            {
                "order_id": last_id + offset,
                "order_date": day,
                "customer_id": rng.randint(1, 200),
                "status": "placed",
                "amount": Decimal(rng.randint(500, 50_000)) / 100,
                "updated_at": corrected_at,
                OP_COLUMN: None,
            }
        )
    return rows


def _snapshot_orders(day_index: int) -> list[dict[str, Any]]:
    """The day's orders as a complete snapshot: withdrawn orders left out, one status corrected."""
    rng = random.Random(SEED * 13 + day_index)
    rows = [row for row in _orders(day_index) if rng.random() > 0.05]
    rows[0]["status"] = "cancelled"
    return rows


def _customer(customer_id: int, day: dt.date, rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {
        "customer_id": customer_id,
        "name": f"{first} {last}",
        "email": f"{first}.{last}.{customer_id}@example.com".lower(),
        "country": rng.choice(_COUNTRIES),
        "segment": rng.choice(_SEGMENTS) if rng.random() > 0.05 else None,
        "updated_at": _at(day, rng),
    }


def _customers(day_index: int, *, redelivered: bool = False) -> list[dict[str, Any]]:
    """New and changed customers of one day: 200 on the first day, then about 10 new a day."""
    rng = random.Random(SEED * 3 + day_index)
    day = _first_day() + dt.timedelta(days=day_index)
    if day_index == 0:
        rows = [_customer(customer_id, day, rng) for customer_id in range(1, 201)]
    else:
        known = 200 + 10 * (day_index - 1)
        new = [_customer(known + n, day, rng) for n in range(1, 11)]
        changed = [
            _customer(customer_id, day, rng) for customer_id in rng.sample(range(1, known + 1), 15)
        ]
        rows = new + changed
    if redelivered:
        fix = random.Random(SEED * 11 + day_index)
        for row in fix.sample(rows, max(1, len(rows) // 10)):
            row["segment"] = "enterprise" if row["segment"] != "enterprise" else "consumer"
    return rows


def _write(landing: Path, feed: Feed, day_index: int, rows: list[dict[str, Any]]) -> Path:
    day = _first_day() + dt.timedelta(days=day_index)
    path = landing / feed.name / f"{day.isoformat()}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = feed.schema
    if rows and OP_COLUMN in rows[0]:
        schema = schema.append(pa.field(OP_COLUMN, pa.string()))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def generate(landing: Path, *, days: int = DAYS) -> list[Path]:
    """Writes the first delivery of ``days`` days of both feeds under ``landing``."""
    written = []
    for day_index in range(days):
        written.append(_write(landing, ORDERS, day_index, _orders(day_index)))
        written.append(_write(landing, CUSTOMERS, day_index, _customers(day_index)))
    return written


def redeliver(
    landing: Path,
    *,
    days: tuple[int, ...] = REDELIVERED_DAYS,
    snapshot_days: tuple[int, ...] = (SNAPSHOT_DAY,),
) -> list[Path]:
    """Replaces the given days' batches with their corrected re-deliveries.

    ``days`` get corrections, late orders and tombstones; ``snapshot_days`` get a complete
    snapshot of their orders, to be loaded with ``snapshot: true``.
    """
    written = []
    for day_index in days:
        written.append(_write(landing, ORDERS, day_index, _redelivered_orders(day_index)))
        written.append(
            _write(landing, CUSTOMERS, day_index, _customers(day_index, redelivered=True))
        )
    for day_index in snapshot_days:
        written.append(_write(landing, ORDERS, day_index, _snapshot_orders(day_index)))
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m upsert_pipeline.sample_data [--landing DIR] [--redeliver]``."""
    from upsert_pipeline.resources import DEFAULT_LANDING_URI

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--landing", type=Path, default=Path(DEFAULT_LANDING_URI))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument(
        "--redeliver", action="store_true", help="replace some days with corrected batches"
    )
    args = parser.parse_args(argv)
    paths = redeliver(args.landing) if args.redeliver else generate(args.landing, days=args.days)
    print(f"wrote {len(paths)} landing batches under {args.landing}")


if __name__ == "__main__":
    main()
