"""Expectations: named SQL rules over a batch's columns, counted on the batch in memory.

A rule is a SQL boolean expression (``amount >= 0``, ``status in ('new', 'paid')``,
``email like '%@%'``) parsed by polars' SQL expression parser (``pl.sql_expr``). Each rule is
evaluated on every row of the batch before the merge, and its rows counted:

- **passing**: the rule is true, or **NULL**. As in a SQL ``CHECK`` constraint, a rule that
  evaluates to NULL (``amount >= 0`` where ``amount`` is null) is not a failure; such rows are
  also counted apart (``RuleOutcome.null``). To reject nulls, say so: ``amount IS NOT NULL AND
  amount >= 0``. So ``warn`` never warns about a null, ``drop`` / ``quarantine`` keep the row and
  ``fail`` lets it through.
- **failing**: the rule is false.

What a failing row does depends on the rule's ``on_fail``:

- ``warn``: nothing; the row is merged and the count recorded.
- ``drop``: the row is left out of the merge.
- ``quarantine``: the row is left out of the merge and written, with the rule's name, to the
  feed's quarantine table (``<lake>/<feed>__quarantine``).
- ``fail``: when the failing fraction exceeds the rule's ``tolerance``, the whole batch is refused
  (``ExpectationFailedError``) before anything is written; within the tolerance it acts as
  ``warn``.

Every rule is evaluated on the whole batch as it landed, so each rule's counts are independent of
the others' order. Tombstones (rows with ``_op = 'D'``, see ``upsert_pipeline.delta.operations``)
are not judged: they delete a key whatever their other values, and are left out of every count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import polars as pl
import pyarrow as pa

from upsert_pipeline.delta.operations import DELETE_OP, OP_COLUMN, with_string_op

RULE_COLUMN = "_expectation"
"""The column naming the failed rule of a quarantined row."""


class OnFail(StrEnum):
    """What a row failing a rule does."""

    WARN = "warn"
    DROP = "drop"
    QUARANTINE = "quarantine"
    FAIL = "fail"


class InvalidRuleError(ValueError):
    """A rule does not parse, names a column the batch does not carry, or is not boolean."""


class ExpectationFailedError(ValueError):
    """A ``fail`` rule's failing rows exceed its tolerance: the batch is refused, nothing written.

    Attributes:
        rule: The rule's name.
        failing: Rows failing it.
        outcomes: Every rule's counts on the refused batch.
    """

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        failing: int,
        outcomes: tuple[RuleOutcome, ...] = (),
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.failing = failing
        self.outcomes = outcomes


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """One named rule of a feed.

    Attributes:
        name: The rule's name (an identifier); its asset check is named after it.
        rule: A SQL boolean expression over the batch's columns.
        on_fail: What a failing row does.
        tolerance: The failing fraction (0 to 1) tolerated: above it, the rule's check fails,
            and a ``fail`` rule refuses the batch.
    """

    name: str
    rule: str
    on_fail: OnFail = OnFail.WARN
    tolerance: float = 0.0


def parse_rule(rule: str, schema: pa.Schema) -> pl.Expr:
    """The polars expression of ``rule``, checked against the columns of ``schema``.

    Example:
        >>> parse_rule("amount >= 0", pa.schema({"amount": pa.float64()}))
        <Expr ['[(col("amount")) >= (dyn int: 0)]'] at ...>

    Raises:
        InvalidRuleError: It does not parse, names an unknown column, or is not boolean.
    """
    try:
        expression = pl.sql_expr(rule)
    except Exception as error:
        raise InvalidRuleError(f"rule {rule!r} does not parse as SQL: {error}") from error
    if not expression.meta.root_names():
        raise InvalidRuleError(f"rule {rule!r} names no column: it would judge no row")
    unknown = [name for name in expression.meta.root_names() if name not in schema.names]
    if unknown:
        raise InvalidRuleError(
            f"rule {rule!r} names column(s) {unknown} that the feed does not declare "
            f"(columns: {schema.names})"
        )
    empty = pl.from_arrow(schema.empty_table())
    assert isinstance(empty, pl.DataFrame)
    try:
        # Resolved, not run: rules are parsed when the feeds load, which may be in a process that
        # forks workers afterwards (a forkserver preload), and a process that has run a polars
        # query once deadlocks polars in its forked children.
        dtype = empty.lazy().select(expression.alias("rule")).collect_schema()["rule"]
    except Exception as error:
        raise InvalidRuleError(f"rule {rule!r} cannot be evaluated: {error}") from error
    if dtype != pl.Boolean:
        raise InvalidRuleError(f"rule {rule!r} is {dtype}, not a boolean expression")
    return expression


@dataclass(frozen=True, kw_only=True)
class RuleOutcome:
    """One rule's counts on one batch.

    Attributes:
        expectation: The rule.
        rows: Rows of the batch the rule judged (tombstones are not).
        passing: Rows for which the rule is true or NULL.
        failing: Rows for which the rule is false.
        null: Rows for which the rule is NULL (counted as passing).
    """

    expectation: Expectation
    rows: int
    passing: int
    failing: int
    null: int

    @property
    def failing_fraction(self) -> float:
        """``failing / rows`` (0.0 for an empty batch)."""
        return self.failing / self.rows if self.rows else 0.0

    @property
    def within_tolerance(self) -> bool:
        """Whether the failing fraction is at most the tolerated one."""
        return self.failing_fraction <= self.expectation.tolerance


@dataclass(frozen=True, kw_only=True)
class QualityOutcome:
    """Every rule's counts on a batch and what is left to merge.

    Attributes:
        landed_rows: Rows of the batch as it landed.
        outcomes: One per rule, in declared order.
        kept: The batch to merge: the landed rows minus those failing a ``drop`` or
            ``quarantine`` rule.
        dropped: Rows left out by ``drop`` rules only (not quarantined).
        quarantined: The rows failing a ``quarantine`` rule, one per (row, rule), with the rule's
            name in ``RULE_COLUMN``; empty when none.
    """

    landed_rows: int
    outcomes: tuple[RuleOutcome, ...]
    kept: pa.Table
    dropped: int
    quarantined: pa.Table

    @property
    def removed(self) -> int:
        """Rows of the landed batch left out of the merge (dropped or quarantined)."""
        return self.landed_rows - int(self.kept.num_rows)


def evaluate_expectations(
    batch: pa.Table,
    expectations: Sequence[Expectation],
    *,
    feed: str,
    partition: str | None,
) -> QualityOutcome:
    """Counts each rule on ``batch`` and applies its ``on_fail``; see the module docstring.

    Args:
        batch: The landed batch, in memory.
        expectations: The feed's rules.
        feed: The feed's name, for the error.
        partition: The partition key, for the error.

    Raises:
        ExpectationFailedError: A ``fail`` rule's failing fraction exceeds its tolerance.
        InvalidRuleError: A rule does not fit the batch.
    """
    if not expectations:
        return QualityOutcome(
            landed_rows=batch.num_rows,
            outcomes=(),
            kept=batch,
            dropped=0,
            quarantined=_quarantine_table(batch, []),
        )
    rules = [_parsed(expectation.rule, batch.schema) for expectation in expectations]
    # Only the columns the rules read (and ``_op``) are handed to polars.
    needed = sorted({name for rule in rules for name in rule.meta.root_names()})
    has_op = OP_COLUMN in batch.column_names
    source = with_string_op(batch.select([*needed, OP_COLUMN])) if has_op else batch.select(needed)
    frame = pl.from_arrow(source)
    assert isinstance(frame, pl.DataFrame)
    # Tombstones (``_op = 'D'``) delete a key: no rule judges their values, none stops them.
    judging = pl.col(OP_COLUMN).ne(DELETE_OP).fill_null(True) if has_op else pl.lit(True)
    # Each rule evaluated once, over the whole batch; then counted.
    results = frame.select(
        judging.alias("judged"), *(rule.alias(f"r{index}") for index, rule in enumerate(rules))
    )
    judged = pl.col("judged")
    failing = [
        pl.col(f"r{index}").eq(False).fill_null(False) & judged for index in range(len(rules))
    ]
    counts = results.select(
        judged.sum().alias("rows"),
        *(mask.sum().alias(f"failing{index}") for index, mask in enumerate(failing)),
        *(
            (pl.col(f"r{index}").is_null() & judged).sum().alias(f"null{index}")
            for index in range(len(rules))
        ),
    ).row(0, named=True)
    rows = int(counts["rows"]) if has_op else batch.num_rows
    outcomes = tuple(
        RuleOutcome(
            expectation=expectation,
            rows=rows,
            passing=rows - int(counts[f"failing{index}"]),
            failing=int(counts[f"failing{index}"]),
            null=int(counts[f"null{index}"]),
        )
        for index, expectation in enumerate(expectations)
    )
    for outcome in outcomes:
        if outcome.expectation.on_fail is OnFail.FAIL and not outcome.within_tolerance:
            where = f"feed {feed!r}" + (f", partition {partition}" if partition else "")
            raise ExpectationFailedError(
                f"{where}: expectation {outcome.expectation.name!r} "
                f"({outcome.expectation.rule}) failed on {outcome.failing} of {outcome.rows} rows "
                f"({outcome.failing_fraction:.2%} > tolerance "
                f"{outcome.expectation.tolerance:.2%}); the batch is refused, nothing written",
                rule=outcome.expectation.name,
                failing=outcome.failing,
                outcomes=outcomes,
            )
    # Row masks only for the rules that leave failing rows out, and only if any failed.
    leaving = [
        index
        for index, outcome in enumerate(outcomes)
        if outcome.failing and outcome.expectation.on_fail in (OnFail.DROP, OnFail.QUARANTINE)
    ]
    if not leaving:
        return QualityOutcome(
            landed_rows=batch.num_rows,
            outcomes=outcomes,
            kept=batch,
            dropped=0,
            quarantined=_quarantine_table(batch, []),
        )
    masks = results.select(failing[index].alias(f"m{index}") for index in leaving)
    quarantine_masks = [
        (expectations[index].name, masks.get_column(f"m{index}"))
        for index in leaving
        if expectations[index].on_fail is OnFail.QUARANTINE
    ]
    removed = masks.select(pl.any_horizontal(pl.all())).to_series()
    quarantined_any = (
        pl.DataFrame([mask for _, mask in quarantine_masks])
        .select(pl.any_horizontal(pl.all()))
        .to_series()
        if quarantine_masks
        else pl.repeat(False, batch.num_rows, dtype=pl.Boolean, eager=True)
    )
    return QualityOutcome(
        landed_rows=batch.num_rows,
        outcomes=outcomes,
        kept=batch.filter(pa.array((~removed).to_arrow())),
        dropped=int((removed & ~quarantined_any).sum()),
        quarantined=_quarantine_table(batch, quarantine_masks),
    )


@lru_cache(maxsize=256)
def _parsed(rule: str, schema: pa.Schema) -> pl.Expr:
    """``parse_rule``, once per rule and schema (every batch of a feed has the same)."""
    return parse_rule(rule, schema)


def _quarantine_table(batch: pa.Table, failing: Sequence[tuple[str, pl.Series]]) -> pa.Table:
    """The rows each quarantine rule failed, with the rule's name, stacked."""
    schema = batch.schema.append(pa.field(RULE_COLUMN, pa.string(), nullable=False))
    parts = [
        batch.filter(pa.array(mask.to_arrow())).append_column(
            schema.field(RULE_COLUMN),
            pa.array([name] * int(mask.sum()), pa.string()),
        )
        for name, mask in failing
    ]
    return pa.concat_tables(parts) if parts else schema.empty_table()
