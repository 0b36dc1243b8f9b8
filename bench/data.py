"""Generated order data at scale: the ``orders`` schema and a 24-column wide variant.

Rows are built with numpy in whole columns (no Python loop per row), deterministic per seed.
Tables are built as many small appends leave them: each ``write_deltalake`` append writes one
file into each of the table's partitions, so a table of F files is F / days appends, with the
checkpoints delta-rs writes on its own every 100 commits.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from upsert_pipeline.feeds import DEFAULT_START as START_DATE
from upsert_pipeline.feeds import ORDERS, Feed

FIRST_DAY = dt.date.fromisoformat(START_DATE)
_EPOCH = dt.date(1970, 1, 1)
_STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled")
_WORDS = ("web", "app", "store", "phone", "partner", "EUR", "USD", "GBP", "DE", "FR", "NL", "ES")

WIDE_EXTRA = pa.schema(
    [
        pa.field("quantity", pa.int64()),
        pa.field("items", pa.int64()),
        pa.field("store_id", pa.int64()),
        pa.field("warehouse_id", pa.int64()),
        pa.field("promo_id", pa.int64()),
        pa.field("sales_rep_id", pa.int64()),
        pa.field("unit_price", pa.float64()),
        pa.field("discount", pa.float64()),
        pa.field("tax", pa.float64()),
        pa.field("shipping_cost", pa.float64()),
        pa.field("weight_kg", pa.float64()),
        pa.field("channel", pa.string()),
        pa.field("currency", pa.string()),
        pa.field("country", pa.string()),
        pa.field("payment_method", pa.string()),
        pa.field("carrier", pa.string()),
        pa.field("is_gift", pa.bool_()),
        pa.field("shipped_at", pa.timestamp("us", tz="UTC")),
    ]
)

ORDERS_WIDE = Feed(
    name="orders_wide",
    schema=pa.schema(list(ORDERS.schema) + list(WIDE_EXTRA)),
    keys=ORDERS.keys,
    partition_column=ORDERS.partition_column,
    description="The orders feed with 18 more columns (24 in all), for merge cost by width.",
)

FEEDS = {"orders": ORDERS, "wide": ORDERS_WIDE}
"""The two shapes benchmarked, by the name used in results."""


def day(index: int) -> dt.date:
    """The ``index``-th partition day from ``START_DATE``."""
    return FIRST_DAY + dt.timedelta(days=index)


def _strings(rng: np.random.Generator, n: int, choices: tuple[str, ...], nulls: float) -> pa.Array:
    codes = rng.integers(0, len(choices), n, dtype=np.int32)
    mask = rng.random(n) < nulls if nulls else None
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask), pa.array(choices)).cast(
        pa.string()
    )


def _decimal_cents(cents: np.ndarray, mask: np.ndarray) -> pa.Array:
    """A decimal128(12, 2) array from non-negative integer cents, built from its buffers."""
    words = np.zeros((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    validity = pa.array(~mask).buffers()[1]
    return pa.Array.from_buffers(
        pa.decimal128(12, 2), len(cents), [validity, pa.py_buffer(words.tobytes())]
    )


def _timestamps(rng: np.random.Generator, n: int, days: np.ndarray) -> pa.Array:
    micros = (days.astype(np.int64) * 86_400 + rng.integers(0, 86_400, n)) * 1_000_000
    return pa.array(micros, pa.timestamp("us", tz="UTC"))


def rows(feed: Feed, ids: np.ndarray, days: np.ndarray | int, *, seed: int = 0) -> pa.Table:
    """Rows of ``feed`` with the given ``order_id``s, on the given partition day index(es).

    Args:
        feed: ``ORDERS`` or ``ORDERS_WIDE``.
        ids: The ``order_id`` of every row.
        days: One day index for every row, or an array of day indexes (one per row).
        seed: Varies every non-key value; the same seed and ids give the same rows.

    Returns:
        A table with exactly ``feed.schema``.
    """
    count = len(ids)
    first = int(ids[0]) if count else 0
    rng = np.random.default_rng([seed, first, count])
    day_index = np.broadcast_to(np.asarray(days, dtype=np.int32), (count,))
    epoch_days = day_index + (FIRST_DAY - _EPOCH).days
    columns: dict[str, pa.Array] = {
        "order_id": pa.array(np.asarray(ids, dtype=np.int64)),
        "order_date": pa.array(epoch_days, pa.int32()).cast(pa.date32()),
        "customer_id": pa.array(rng.integers(1, 2_000_000, count)),
        "status": _strings(rng, count, _STATUSES, 0.03),
        "amount": _decimal_cents(rng.integers(500, 5_000_000, count), rng.random(count) < 0.02),
        "updated_at": _timestamps(rng, count, epoch_days),
    }
    if feed is ORDERS_WIDE:
        for field in WIDE_EXTRA:
            if pa.types.is_int64(field.type):
                columns[field.name] = pa.array(rng.integers(0, 10_000, count))
            elif pa.types.is_float64(field.type):
                columns[field.name] = pa.array(np.round(rng.random(count) * 1000, 2))
            elif pa.types.is_string(field.type):
                columns[field.name] = _strings(rng, count, _WORDS, 0.01)
            elif pa.types.is_boolean(field.type):
                columns[field.name] = pa.array(rng.random(count) < 0.1)
            else:
                columns[field.name] = _timestamps(rng, count, epoch_days + 1)
    return pa.table(columns).cast(feed.schema)


@dataclass(frozen=True)
class TableSpec:
    """A generated table: how many rows, files and partitions, and of which shape.

    Attributes:
        feed: The shape (``"orders"`` or ``"wide"``).
        rows: Rows in the table.
        files: Data files in the table; a multiple of ``days``.
        days: Partitions (days from ``START_DATE``); each holds ``files / days`` files.
    """

    feed: str
    rows: int
    files: int
    days: int

    @property
    def appends(self) -> int:
        """How many appends build the table: each writes one file into every partition."""
        return self.files // self.days

    @property
    def rows_per_file(self) -> int:
        """Rows in each data file."""
        return self.rows // self.files

    @property
    def name(self) -> str:
        """A folder name that says what the table holds."""
        return f"{self.feed}_{self.rows}r_{self.files}f"


def build_table(uri: str, spec: TableSpec, *, storage_options: dict[str, str] | None = None) -> int:
    """Writes ``spec``'s table at ``uri`` as ``spec.appends`` appends; returns its version.

    File ``k`` of append ``a`` lands in partition ``k`` and holds the ``rows_per_file``
    consecutive ids starting at ``(a * days + k) * rows_per_file``, so ids are unique across the
    table and the highest ids of a partition sit in its last file.
    """
    if spec.files % spec.days or spec.rows % spec.files:
        raise ValueError(f"{spec}: files must divide by days, and rows by files")
    feed = FEEDS[spec.feed]
    per_file = spec.rows_per_file
    per_append = per_file * spec.days
    table: DeltaTable | str = uri
    for append in range(spec.appends):
        day_index = np.repeat(np.arange(spec.days, dtype=np.int32), per_file)
        first = append * per_append
        ids = np.arange(first, first + per_append, dtype=np.int64)
        batch = rows(feed, ids, day_index, seed=append)
        write_deltalake(
            table,
            batch,
            mode="append",
            partition_by=[feed.partition_column or ""],
            storage_options=storage_options,
        )
        if isinstance(table, str):
            table = DeltaTable(uri, storage_options=storage_options)
    assert isinstance(table, DeltaTable)
    table.update_incremental()
    return table.version()


def upsert_batch(
    spec: TableSpec, day_index: int, *, updates: int, inserts: int, first_new_id: int, seed: int
) -> pa.Table:
    """A re-delivery for one partition: its ``updates`` newest rows changed, plus new rows.

    The updated rows are the partition's highest ids (its last files, as a day's corrections
    touch the newest orders); the inserted ids start at ``first_new_id``, above every id of the
    table. ``seed`` must differ from the one the rows were written with so that they change.
    """
    feed = FEEDS[spec.feed]
    changed = partition_ids(spec, day_index)[-updates:] if updates else np.empty(0, np.int64)
    new = np.arange(first_new_id, first_new_id + inserts, dtype=np.int64)
    return rows(feed, np.concatenate([changed, new]), day_index, seed=seed)


def partition_ids(spec: TableSpec, day_index: int) -> np.ndarray:
    """Every ``order_id`` in one partition of a table built by ``build_table``, ascending."""
    per_file = spec.rows_per_file
    starts = (np.arange(spec.appends) * spec.days + day_index) * per_file
    return (starts[:, None] + np.arange(per_file)).ravel()
