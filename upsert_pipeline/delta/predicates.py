"""SQL text for the MERGE: quoted identifiers and literals, so batch content never becomes SQL."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

from upsert_pipeline.delta.errors import InvalidIdentifierError
from upsert_pipeline.delta.result import PartitionValue

SOURCE_ALIAS = "s"
TARGET_ALIAS = "t"

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(name: str) -> str:
    """Returns ``name`` if it is a plain identifier, the only kind put into predicate text.

    Raises:
        InvalidIdentifierError: ``name`` holds anything but letters, digits and underscores.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise InvalidIdentifierError(
            f"column name {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"
        )
    return name


def column(alias: str, name: str) -> str:
    """``alias.`name```, refusing any name that is not a plain identifier."""
    return f"{alias}.`{check_identifier(name)}`"


def literal(value: PartitionValue) -> str:
    """A SQL literal for a partition value: a quoted timestamp, date or string, or an integer.

    A timezone-aware timestamp is written in UTC (``'2026-11-02T13:00:00+00:00'``), as Delta
    Lake stores the partition values of a ``timestamp[us, tz=UTC]`` column; a naive one as it is.
    """
    if isinstance(value, bool):
        raise TypeError(f"a partition value must be a str, int or date, not bool ({value!r})")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return f"'{value.isoformat()}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"a partition value must be a str, int or date, not {type(value).__name__}")


def merge_predicate(keys: Iterable[str], partition: Mapping[str, PartitionValue] | None) -> str:
    """Matches source and target rows on ``keys``, inside one partition when one is given.

    The partition value is a literal on the target side so that delta-rs prunes every other
    partition's files from the merge: they are neither read nor rewritten.

    Example:
        >>> merge_predicate(["order_id"], {"order_date": "2026-11-02"})
        "t.`order_date` = '2026-11-02' AND t.`order_id` = s.`order_id`"
    """
    scope = [
        f"{column(TARGET_ALIAS, name)} = {literal(value)}"
        for name, value in (partition or {}).items()
    ]
    match = [f"{column(TARGET_ALIAS, key)} = {column(SOURCE_ALIAS, key)}" for key in keys]
    return " AND ".join(scope + match)


def changed_predicate(columns: Iterable[str]) -> str | None:
    """True when any of ``columns`` differs between target and source, nulls compared as values.

    Each comparison is parenthesised: delta-rs's planner fails on an unparenthesised chain of
    ``IS DISTINCT FROM ... OR ...``. ``None`` when there is no column to compare (a key-only
    table), in which case no matched row ever needs an update.

    Example:
        >>> changed_predicate(["status", "amount"])
        '(t.`status` IS DISTINCT FROM s.`status`) OR (t.`amount` IS DISTINCT FROM s.`amount`)'
    """
    comparisons = [
        f"({column(TARGET_ALIAS, name)} IS DISTINCT FROM {column(SOURCE_ALIAS, name)})"
        for name in columns
    ]
    return " OR ".join(comparisons) or None


def added_predicate(columns: Iterable[str]) -> str | None:
    """True when any column new to the table holds a value in the source row.

    A column the merge adds (schema evolution) is null in every existing target row, and the
    target does not know it yet, so a change is a non-null source value.

    Example:
        >>> added_predicate(["channel"])
        '(s.`channel` IS NOT NULL)'
    """
    return " OR ".join(f"({column(SOURCE_ALIAS, name)} IS NOT NULL)" for name in columns) or None


def upsert_rows_predicate(op_column: str, delete_op: str) -> str:
    """True for source rows that upsert (their control column is anything but a tombstone)."""
    return f"{column(SOURCE_ALIAS, op_column)} IS DISTINCT FROM {literal(delete_op)}"


def tombstone_predicate(op_column: str, delete_op: str) -> str:
    """True for source rows that are tombstones."""
    return f"{column(SOURCE_ALIAS, op_column)} = {literal(delete_op)}"


def keys_query(table: str, keys: Iterable[str], partition: Mapping[str, PartitionValue]) -> str:
    """SQL selecting the keys of one partition's rows, the partition given by literals.

    Example:
        >>> keys_query("target", ["order_id"], {"order_date": "2026-11-02"})
        'SELECT "order_id" FROM "target" WHERE "order_date" = \\'2026-11-02\\''
    """
    selected = ", ".join(f'"{check_identifier(key)}"' for key in keys)
    scope = " AND ".join(
        f'"{check_identifier(name)}" = {literal(value)}' for name, value in partition.items()
    )
    return f'SELECT {selected} FROM "{check_identifier(table)}" WHERE {scope}'
