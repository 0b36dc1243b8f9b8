"""Naming a merge's scope in the Delta log with an application transaction (``txn`` action).

Each commit of ``upsert`` carries one application transaction, ``<app>:<table>:<scope>``, where
the scope is the merge's: one partition (``order_date=2026-11-02``) or the whole table (``*``).
It is lineage, and a guard; it never decides whether a batch is merged:

* Lineage: ``DeltaTable.transaction_version(app_id)`` is the table version the scope's latest
  change was planned on, plus one (the version its commit aimed for). It rises with every commit
  of the scope, as Delta requires of an application's transaction versions, without any look-up
  before the merge.
* Guard: two concurrent merges of one scope write the same application id, so delta-rs refuses
  the later commit (``ConcurrentTransaction``, or ``ConcurrentAppend`` first) and ``upsert``
  re-runs it on the new snapshot.

A batch is merged every time it is sent: re-materializing a partition converges it to its batch
(rows deleted out of band are inserted again) and the counts say what that took; a batch that is
already in changes nothing and commits nothing (the change predicate sees to that).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import quote

from deltalake import Transaction

from upsert_pipeline.delta.result import PartitionValue

APP_NAME = "upsert_pipeline"
WHOLE_TABLE = "*"


def _text(value: PartitionValue) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def scope_key(partition: Mapping[str, PartitionValue] | None) -> str:
    """The merge scope as text: ``order_date=2026-11-02`` (columns sorted), or ``*``.

    Example:
        >>> scope_key({"order_date": dt.date(2026, 11, 2)})
        'order_date=2026-11-02'
    """
    if not partition:
        return WHOLE_TABLE
    return "/".join(
        f"{name}={quote(_text(partition[name]), safe='-_.')}" for name in sorted(partition)
    )


def table_name(table_uri: str) -> str:
    """The last segment of a table URI: ``data/lake/orders`` -> ``orders``."""
    return table_uri.rstrip("/").rsplit("/", 1)[-1]


def app_id_for(table: str, partition: Mapping[str, PartitionValue] | None) -> str:
    """The application id of one merge scope, e.g. ``upsert_pipeline:orders:order_date=2026-11-02``.

    Args:
        table: The table's name (its folder in the lake).
        partition: The merge's partition, or ``None`` for the whole table.
    """
    return f"{APP_NAME}:{table}:{scope_key(partition)}"


def scope_transaction(app_id: str, read_version: int) -> Transaction:
    """The ``txn`` action of a commit planned on table version ``read_version``.

    Example:
        >>> scope_transaction("upsert_pipeline:orders:*", 4).version
        5
    """
    return Transaction(app_id, read_version + 1, int(time.time() * 1000))
