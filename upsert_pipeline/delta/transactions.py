"""Recognising a batch that is already in, with Delta application transactions (``txn`` actions).

A retried run (one that committed but died before Dagster recorded the materialization) sends the
same batch again. Each commit of ``upsert`` therefore carries two application transactions:

* ``<app>:<table>:<scope>`` at version ``n``: the ``n``-th batch that changed this merge scope.
  ``n`` is the version read from the snapshot the merge ran on, plus one, so it rises by one with
  every committed batch (Delta requires an app's transaction version to be monotonic; delta-rs
  does not enforce it, this module does).
* ``<app>:<table>:<scope>:batch=<sha256>`` at the same version ``n``: which batch that was.

A batch is *already applied* when its own transaction's version equals the scope's latest, i.e.
it is the last batch that changed the scope. Then every one of its rows is in the table as sent
(provided that only ``upsert`` changes rows of that scope, and every such change carries these
transactions) and a merge would insert and update nothing, so ``upsert`` reports it unchanged
without running the merge. A batch sent again after another batch changed the scope is not the
latest and is merged again, as it must be. A batch whose merge changed nothing commits nothing and
so records nothing; sending it again simply merges (and changes nothing) again.

The scope is the merge's scope: one partition (``order_date=2026-11-02``) or the whole table
(``*``). Keying by anything narrower (a Dagster partition of an unpartitioned table) would let
another day's batch change rows behind the transaction's back.

The batch identity is a SHA-256 over the batch in a canonical form: conformed to the table's
schema, sorted by its (unique) keys and written as uncompressed parquet. Row order, chunking and
string layout do not change it; any value does. A pyarrow upgrade may change the bytes and so the
identity: a batch is then merged once more and reports, truthfully, that nothing changed.

Two concurrent merges of one scope write the same scope transaction, so delta-rs refuses the
second commit (``ConcurrentTransaction``, or ``ConcurrentAppend`` first); the retry then sees the
first one's transactions.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Transaction

from upsert_pipeline.delta.result import PartitionValue

APP_NAME = "upsert_pipeline"
WHOLE_TABLE = "*"
_IDENTITY_FORMAT = b"upsert_pipeline.batch.v2\n"


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


def batch_app_id(app_id: str, batch_id: str) -> str:
    """The application id that records one batch of one scope."""
    return f"{app_id}:batch={batch_id}"


def batch_identity(batch: pa.Table, keys: Sequence[str], *, snapshot: bool = False) -> str:
    """A SHA-256 (hex) of the batch's content, independent of row and column order and layout.

    Args:
        batch: The batch, already conformed to the table's schema; its keys are unique.
        keys: The merge keys, which order the rows.
        snapshot: Whether the batch is loaded as a snapshot: the same rows loaded as a snapshot
            also delete, so they are another batch than when upserted.
    """
    # Columns by name: delta-rs may reorder a table's columns (schema evolution moves partition
    # columns last), and the same rows must keep the same identity.
    canonical = (
        batch.select(sorted(batch.column_names))
        .sort_by([(key, "ascending") for key in keys])
        .combine_chunks()
    )
    buffer = io.BytesIO()
    pq.write_table(canonical, buffer, compression="none", use_dictionary=False)
    digest = hashlib.sha256(_IDENTITY_FORMAT)
    digest.update(",".join(keys).encode() + b"\n")
    if snapshot:
        digest.update(b"mode=snapshot\n")
    digest.update(buffer.getvalue())
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class TransactionState:
    """What a snapshot's log says about one merge scope and one batch.

    Attributes:
        app_id: The scope's application id.
        batch_id: The batch's identity.
        scope_version: The scope transaction's version: batches that changed it so far.
        batch_version: The version at which this batch last changed the scope, if ever.
    """

    app_id: str
    batch_id: str
    scope_version: int | None
    batch_version: int | None

    @property
    def batch_app_id(self) -> str:
        """The application id that records this batch."""
        return batch_app_id(self.app_id, self.batch_id)

    @property
    def already_applied(self) -> bool:
        """Whether this batch is the last one that changed the scope."""
        return self.scope_version is not None and self.batch_version == self.scope_version

    @property
    def next_version(self) -> int:
        """The transaction version the next commit of this scope writes."""
        return (self.scope_version or 0) + 1

    def transactions(self) -> list[Transaction]:
        """The two ``txn`` actions a commit of this batch carries."""
        now_ms = int(time.time() * 1000)
        return [
            Transaction(self.app_id, self.next_version, now_ms),
            Transaction(self.batch_app_id, self.next_version, now_ms),
        ]


def read_transaction_state(table: DeltaTable, app_id: str, batch_id: str) -> TransactionState:
    """Reads the scope's and the batch's transaction versions from the snapshot ``table`` holds."""
    return TransactionState(
        app_id=app_id,
        batch_id=batch_id,
        scope_version=table.transaction_version(app_id),
        batch_version=table.transaction_version(batch_app_id(app_id, batch_id)),
    )
