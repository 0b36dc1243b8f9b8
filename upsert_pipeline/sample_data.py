"""Deterministic, realistic landing batches for the ``orders`` and ``customers`` feeds.

``python -m upsert_pipeline.sample_data`` writes the first delivery of every day from
``START_DATE`` through yesterday (UTC), the days the daily partitions offer, to a local folder or
an object-store prefix (``--landing s3://landing/feeds``, configured by the store's standard
environment variables). Each day's batch is seeded by its date alone, so it never changes when
more days are generated. ``--redeliver`` then replaces some days' files with corrected re-deliveries
(status changes, amount corrections, late orders, tombstones, most rows sent again unchanged) and
one day with a complete snapshot, so that materializing those days again shows updates, inserts,
deletes and unchanged rows in their counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN
from upsert_pipeline.delta.storage import arrow_filesystem, storage_options_for
from upsert_pipeline.delta.uris import DEFAULT_URI_POLICY
from upsert_pipeline.feeds import CUSTOMERS, ORDERS, Feed
from upsert_pipeline.feeds import DEFAULT_START as START_DATE

REDELIVERED_DAYS = (2, 5, 9)
"""Offsets from ``START_DATE`` of the days ``--redeliver`` sends again, corrected, with tombstones
(``_op = 'D'``) for orders that were withdrawn."""
SNAPSHOT_DAY = 11
"""Offset of the day ``--redeliver`` sends again as a complete snapshot (load it with run config
``snapshot: true``): the orders it leaves out are deleted from that day's partition."""
SEED = 20261101
"""Scaled per kind of batch and added to the day's offset: each day's own seed."""

_STATUSES = ("placed", "paid", "shipped", "delivered")
_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "SE")
_SEGMENTS = ("consumer", "small_business", "enterprise")
_FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia")
_LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus")


def _first_day() -> dt.date:
    return dt.date.fromisoformat(START_DATE)


def days_through_yesterday(today: dt.date | None = None) -> int:
    """How many days lie from ``START_DATE`` through yesterday (UTC): one batch per partition."""
    today = today or dt.datetime.now(dt.UTC).date()
    return max((today - _first_day()).days, 0)


_SEEDS = {
    "orders": SEED,
    "redelivered-orders": SEED * 7,
    "snapshot-orders": SEED * 13,
    "customers": SEED * 3,
    "redelivered-customers": SEED * 11,
}


def _rng(kind: str, day_index: int) -> random.Random:
    """The random source of one kind of batch of one day, seeded by that day alone (its offset
    from ``START_DATE``): no other day's batch, nor how many days are generated, changes it."""
    return random.Random(_SEEDS[kind] + day_index)


def _at(day: dt.date, rng: random.Random) -> dt.datetime:
    seconds = rng.randrange(24 * 3600)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)


def _orders(day_index: int) -> list[dict[str, Any]]:
    """The first delivery of one day's orders; order ids are unique across days."""
    rng = _rng("orders", day_index)
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
    rng = _rng("redelivered-orders", day_index)
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
    rng = _rng("snapshot-orders", day_index)
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
    rng = _rng("customers", day_index)
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
        fix = _rng("redelivered-customers", day_index)
        for row in fix.sample(rows, max(1, len(rows) // 10)):
            row["segment"] = "enterprise" if row["segment"] != "enterprise" else "consumer"
    return rows


def _target(landing: str, feed: Feed, day_index: int) -> tuple[str, pafs.FileSystem, str]:
    """A day's landing batch: its URI, and the filesystem and path that open it."""
    day = _first_day() + dt.timedelta(days=day_index)
    start = dt.datetime.combine(day, dt.time())
    path = f"{landing.rstrip('/')}/{feed.layout.partition_glob(start, day.isoformat())}"
    filesystem, fs_path = arrow_filesystem(path, storage_options_for(landing))
    return path, filesystem, fs_path


def _write(landing: str, feed: Feed, day_index: int, rows: list[dict[str, Any]]) -> str:
    path, filesystem, fs_path = _target(landing, feed, day_index)
    if isinstance(filesystem, pafs.LocalFileSystem):
        filesystem.create_dir(fs_path.rsplit("/", 1)[0], recursive=True)
    schema = feed.schema
    if rows and OP_COLUMN in rows[0]:
        schema = schema.append(pa.field(OP_COLUMN, pa.string()))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), fs_path, filesystem=filesystem)
    return path


def _exists(landing: str, feed: Feed, day_index: int) -> bool:
    _, filesystem, fs_path = _target(landing, feed, day_index)
    return bool(filesystem.get_file_info(fs_path).type == pafs.FileType.File)


def generate(
    landing: str | os.PathLike[str], *, days: int | None = None, missing_only: bool = False
) -> list[str]:
    """Writes the first delivery of each day of both feeds under ``landing``.

    Args:
        landing: A local folder or an object-store prefix (``s3://landing/feeds``); an
            object store is reached through its standard environment variables.
        days: How many days from ``START_DATE``; every day through yesterday (UTC) by default.
        missing_only: Write only the days that have no batch yet (keeps re-deliveries).

    Returns:
        The paths or URIs written.

    Raises:
        DisallowedUriError: ``landing`` is not a location the landing reader can open.
    """
    root = DEFAULT_URI_POLICY.check(os.fspath(landing), what="landing")
    written = []
    for day_index in range(days_through_yesterday() if days is None else days):
        if not (missing_only and _exists(root, ORDERS, day_index)):
            written.append(_write(root, ORDERS, day_index, _orders(day_index)))
        if not (missing_only and _exists(root, CUSTOMERS, day_index)):
            written.append(_write(root, CUSTOMERS, day_index, _customers(day_index)))
    return written


def redeliver(
    landing: str | os.PathLike[str],
    *,
    days: tuple[int, ...] = REDELIVERED_DAYS,
    snapshot_days: tuple[int, ...] = (SNAPSHOT_DAY,),
) -> list[str]:
    """Replaces the given days' batches with their corrected re-deliveries.

    ``days`` get corrections, late orders and tombstones; ``snapshot_days`` get a complete
    snapshot of their orders, to be loaded with ``snapshot: true``. Both are offsets from
    ``START_DATE`` and lie within the days ``generate`` writes by default.
    """
    root = DEFAULT_URI_POLICY.check(os.fspath(landing), what="landing")
    written = []
    for day_index in days:
        written.append(_write(root, ORDERS, day_index, _redelivered_orders(day_index)))
        written.append(_write(root, CUSTOMERS, day_index, _customers(day_index, redelivered=True)))
    for day_index in snapshot_days:
        written.append(_write(root, ORDERS, day_index, _snapshot_orders(day_index)))
    return written


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m upsert_pipeline.sample_data [--landing URI] [--redeliver]``.

    The landing defaults to ``UPSERT_PIPELINE_LANDING_URI``, else the project's ``data/landing``.
    """
    from upsert_pipeline.resources import DEFAULT_LANDING_URI, LANDING_URI_ENV

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--landing",
        default=os.environ.get(LANDING_URI_ENV) or DEFAULT_LANDING_URI,
        help="a folder or an object-store prefix such as s3://landing/feeds",
    )
    parser.add_argument(
        "--days", type=int, default=None, help="days from START_DATE (default: through yesterday)"
    )
    parser.add_argument(
        "--missing-only", action="store_true", help="write only days that have no batch yet"
    )
    parser.add_argument(
        "--redeliver", action="store_true", help="replace some days with corrected batches"
    )
    args = parser.parse_args(argv)
    if args.redeliver:
        paths = redeliver(args.landing)
        first = _first_day()
        for label, offsets in (("re-delivered", REDELIVERED_DAYS), ("snapshot", (SNAPSHOT_DAY,))):
            days = ", ".join(str(first + dt.timedelta(days=offset)) for offset in offsets)
            print(f"{label}: {days}")
    else:
        paths = generate(args.landing, days=args.days, missing_only=args.missing_only)
    print(f"wrote {len(paths)} landing batches under {args.landing}")


if __name__ == "__main__":
    main()
