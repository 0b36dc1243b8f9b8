"""Retrying a merge whose commit lost a race: which errors are conflicts, and how long to wait.

delta-rs already retries a commit on its own (``CommitProperties.max_commit_retries``, 15 by
default): when another writer took the next version first, it checks the winning commits against
what the merge read and, if they touched none of it (another partition), writes the *same* actions
at the next free version. Nothing is re-read and nothing is re-computed, so it can only ever
succeed for commits that do not overlap. When the winning commit did add or remove files the merge
read (the same partition), or wrote the same application transaction, the commit fails with
``CommitFailedError``; the only correct answer is to reload the table and run the whole merge
again on the new snapshot (new before-counts, new matches). That outer loop is what
``RetryPolicy`` bounds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from deltalake.exceptions import CommitFailedError, DeltaError

# delta-rs (python/src/error.rs) raises every ``TransactionError`` of a commit as one Python type,
# ``CommitFailedError``, with the Rust variant's text as its message; the type alone cannot tell
# a lost race from a table that forbids the commit. So the type is checked first and then the
# variant, by the fixed text each variant's message starts with. TransactionError::CommitConflict
# and ::MaxCommitAttempts both read "Failed to commit transaction: <inner>", and so do the
# CommitConflictError variants that are no race at all (an unsupported reader or writer version,
# a corrupted snapshot, a predicate that cannot be evaluated, no metadata): the inner text decides.
_TRANSACTION_FAILED = "Failed to commit transaction: "
_CONFLICT_VARIANTS = (
    # ConcurrentAppend, ConcurrentDeleteRead, ConcurrentDeleteDelete.
    "Commit failed: a concurrent transaction",
    # ConcurrentTransaction: another commit wrote the same application transaction.
    "Concurrent transaction failed",
    "Metadata changed since last commit",
    "Protocol changed since last commit",
)
# CommitConflictError::ProtocolChanged / MetadataChanged, also raised bare when writers race to
# create a table.
_BARE_CONFLICTS = ("Protocol changed since last commit", "Metadata changed since last commit")
# TransactionError::UnsupportedTableFeatures / UnsupportedReaderFeatures /
# UnsupportedWriterFeatures: the table's protocol requires a feature this delta-rs cannot write.
_UNSUPPORTED_FEATURES = (
    "Unsupported table features required",
    "Unsupported reader features required",
    "Unsupported writer features required",
)
# TransactionError::VersionAlreadyExists, raised (as a plain DeltaError) when two writers race to
# write version 0 of a new table.
_VERSION_TAKEN = "Tried committing existing table version"


def is_commit_conflict(error: BaseException) -> bool:
    """Whether ``error`` means another writer committed first, so re-running the merge may succeed.

    Only a commit conflict is: every other ``CommitFailedError`` (an append-only table, an
    unsupported table feature, a log that cannot be written) fails the same way however often
    it is retried.

    Example:
        >>> is_commit_conflict(CommitFailedError(
        ...     "Failed to commit transaction: Commit failed: a concurrent transaction ..."))
        True
        >>> is_commit_conflict(CommitFailedError(
        ...     "Failed to commit transaction: Delta-rs does not support writer version 8"))
        False
    """
    if isinstance(error, CommitFailedError):
        message = str(error)
        if message.startswith(_TRANSACTION_FAILED):
            inner = message.removeprefix(_TRANSACTION_FAILED)
            # MaxCommitAttempts: delta-rs's own retries all lost the race (its text is a number).
            return inner.startswith(_CONFLICT_VARIANTS) or inner.strip().isdigit()
        return message.startswith(_BARE_CONFLICTS)
    return isinstance(error, DeltaError) and str(error).startswith(_VERSION_TAKEN)


def is_unsupported_table_feature(error: BaseException) -> bool:
    """Whether ``error`` is delta-rs refusing to commit to a table whose features it lacks.

    Example:
        >>> is_unsupported_table_feature(
        ...     CommitFailedError("Unsupported table features required: [RowTracking]")
        ... )
        True
    """
    return isinstance(error, CommitFailedError) and str(error).startswith(_UNSUPPORTED_FEATURES)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often a conflicting merge is re-run, with capped exponential backoff and full jitter.

    Attempt ``n`` (from 1) that fails waits a uniformly random time in
    ``[0, min(max_backoff_s, initial_backoff_s * 2 ** (n - 1))]`` before attempt ``n + 1``; jitter
    keeps writers that collided from colliding again in lockstep.

    Attributes:
        max_attempts: Merges run at most (the first run included); at least 1.
        initial_backoff_s: The cap of the first wait, in seconds.
        max_backoff_s: The cap of any wait, in seconds.
        max_commit_retries: delta-rs's own rebase retries per attempt (see the module docstring);
            ``None`` keeps delta-rs's default (15).

    Example:
        >>> RetryPolicy(max_attempts=3).backoff_s(2, random.Random(0)) <= 0.1
        True
    """

    max_attempts: int = 10
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    max_commit_retries: int | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if not 0 <= self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("backoffs must satisfy 0 <= initial_backoff_s <= max_backoff_s")

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (attempt - 1))
        return rng.uniform(0, cap)
