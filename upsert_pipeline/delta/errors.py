"""Named errors for refused batches. Each one is raised before anything is written to the table."""

from __future__ import annotations


class UpsertError(Exception):
    """Base class: the batch was refused and the Delta table was left as it was."""


class BatchSchemaError(UpsertError):
    """The batch's columns do not fit the table's (or the feed's declared) schema."""


class MissingColumnError(BatchSchemaError):
    """A column the table or feed requires is absent from the batch."""


class UnexpectedColumnError(BatchSchemaError):
    """The batch carries a column that the table or feed does not have."""


class DuplicateColumnError(BatchSchemaError):
    """Two columns' names differ only in case: Delta (and Spark) would take them for one."""


class ColumnTypeError(BatchSchemaError):
    """A column's type differs from the table's (or the feed's declared) type."""


class NullValueError(BatchSchemaError):
    """A column declared not null (by the table or the feed) holds a null."""


class InvalidIdentifierError(UpsertError):
    """A column name cannot be used safely in a merge predicate."""


class DuplicateKeyError(UpsertError):
    """Two or more rows of the batch share one merge key."""


class NullKeyError(UpsertError):
    """A merge key column holds a null."""


class PartitionMismatchError(UpsertError):
    """A row's partition column does not equal the partition being loaded."""


class PartitionSpecError(UpsertError):
    """The partition asked for does not match the columns the table is partitioned by."""


class InvalidPartitionValueError(UpsertError):
    """A partition value cannot be stored faithfully or put in a merge predicate.

    Delta Lake writes an empty-string partition value as null, so ``''`` would land in another
    partition than the one asked for; booleans, datetimes and other types have no literal here.
    """


class DisallowedUriError(UpsertError):
    """A table or landing URI is outside the allow-list of schemes and roots."""


class CommitRetriesExhaustedError(RuntimeError):
    """Every commit attempt of a merge hit a concurrent commit; nothing of the batch was written.

    Attributes:
        attempts: How many times the merge was run against a fresh snapshot.
    """

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class SnapshotScopeError(UpsertError):
    """A snapshot load was asked for without a partition: it would delete across the table."""


class EmptySnapshotError(UpsertError):
    """An empty batch in snapshot mode would delete its whole partition; not allowed by default."""


class TombstoneInSnapshotError(UpsertError):
    """A snapshot batch carries tombstones; in a snapshot a deleted row is simply left out."""


class UnsupportedTableFeatureError(UpsertError):
    """The table's protocol requires a feature the installed delta-rs cannot write.

    Raised at once, never retried: the table (written by Spark or Databricks, say, with row
    tracking or domain metadata on) refuses every commit of this writer. Nothing was written.
    """


class UnsafeObjectStoreError(UpsertError):
    """The object store accepted a second create of the same key: concurrent commits would be lost.

    delta-rs commits a Delta version on an object store by creating ``_delta_log/<version>.json``
    with a conditional PUT (``If-None-Match: *``): of two writers racing for one version, the
    store must refuse the second. A store (or a proxy in front of it) that ignores the header
    lets the second overwrite the first, and a commit is lost without an error.
    """
