"""The feeds: what lands, with which schema, and how it is keyed and partitioned in the lake.

A feed is the one place to change to point the pipeline at one's own table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Feed:
    """A daily landing feed upserted into one Delta table.

    Attributes:
        name: The asset name, the landing folder (``<landing>/<name>/<YYYY-MM-DD>.parquet``) and
            the table's folder in the lake (``<lake>/<name>``).
        schema: The columns every landing batch must carry, with their types.
        keys: The merge key columns.
        partition_column: The date column the table is partitioned by and every row's value of
            which must equal the partition's day; ``None`` for an unpartitioned table (each daily
            batch then upserts into the whole table).
        description: Shown in the Dagster UI.
        evolve_schema: Whether a batch may bring new (nullable) columns, which the merge then
            adds to the table; otherwise such a batch is refused.
    """

    name: str
    schema: pa.Schema
    keys: tuple[str, ...]
    partition_column: str | None
    description: str
    evolve_schema: bool = True


ORDERS = Feed(
    name="orders",
    schema=pa.schema(
        [
            pa.field("order_id", pa.int64(), nullable=False),
            pa.field("order_date", pa.date32(), nullable=False),
            pa.field("customer_id", pa.int64()),
            pa.field("status", pa.string()),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    ),
    keys=("order_id",),
    partition_column="order_date",
    description=(
        "Orders upserted by order_id into a Delta table partitioned by order_date; each day's "
        "landing batch (or its re-delivery) is merged into its own partition only."
    ),
)

CUSTOMERS = Feed(
    name="customers",
    schema=pa.schema(
        [
            pa.field("customer_id", pa.int64(), nullable=False),
            pa.field("name", pa.string()),
            pa.field("email", pa.string()),
            pa.field("country", pa.string()),
            pa.field("segment", pa.string()),
            pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        ]
    ),
    keys=("customer_id",),
    partition_column=None,
    description=(
        "Customers: a slowly changing dimension; each day's feed of new and changed customers is "
        "upserted by customer_id into one unpartitioned Delta table."
    ),
)

FEEDS = (ORDERS, CUSTOMERS)
