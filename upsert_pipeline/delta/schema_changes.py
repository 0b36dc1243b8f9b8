"""How a table's schema changed between two versions, in words a reader of the event log follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True, kw_only=True)
class SchemaChanges:
    """The differences between a schema before and after a commit.

    Attributes:
        added: ``(column, type)`` of each column the commit added.
        widened: ``(column, type before, type after)`` of each column whose type changed.
        dropped: Columns the commit removed.
        filled: Columns the batch lacked, written as null in its rows (no schema change, but a
            reader wants to know).
    """

    added: tuple[tuple[str, str], ...] = ()
    widened: tuple[tuple[str, str, str], ...] = ()
    dropped: tuple[str, ...] = ()
    filled: tuple[str, ...] = ()

    @property
    def schema_changed(self) -> bool:
        """Whether the table's schema differs."""
        return bool(self.added or self.widened or self.dropped)

    def describe(self) -> list[str]:
        """One readable line per change, e.g. ``added discount: decimal128(12, 2)``."""
        return [
            *(f"added {name}: {kind}" for name, kind in self.added),
            *(f"type of {name}: {old} -> {new}" for name, old, new in self.widened),
            *(f"dropped {name}" for name in self.dropped),
            *(f"filled {name} with nulls (the batch lacked it)" for name in self.filled),
        ]


def schema_changes(
    before: pa.Schema | None, after: pa.Schema, *, filled: Sequence[str] = ()
) -> SchemaChanges:
    """What changed from ``before`` (``None``: the table did not exist) to ``after``.

    Example:
        >>> schema_changes(pa.schema({"a": pa.int32()}), pa.schema({"a": pa.int64()})).describe()
        ['type of a: int32 -> int64']
    """
    if before is None:
        return SchemaChanges(filled=tuple(filled))
    old = {field.name: field.type for field in before}
    new = {field.name: field.type for field in after}
    return SchemaChanges(
        added=tuple((name, str(kind)) for name, kind in new.items() if name not in old),
        widened=tuple(
            (name, str(old[name]), str(kind))
            for name, kind in new.items()
            if name in old and old[name] != kind
        ),
        dropped=tuple(name for name in old if name not in new),
        filled=tuple(filled),
    )
