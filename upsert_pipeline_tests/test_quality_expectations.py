"""Expectations counted on a batch in memory: each on_fail mode, SQL null semantics, bad rules."""

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from upsert_pipeline.feeds import ORDERS
from upsert_pipeline.quality import (
    Expectation,
    ExpectationFailedError,
    InvalidRuleError,
    OnFail,
    evaluate_expectations,
    parse_rule,
)
from upsert_pipeline.quality.expectations import RULE_COLUMN
from upsert_pipeline_tests.conftest import order_batch

PROJECT = Path(__file__).resolve().parent.parent


def _batch() -> pa.Table:
    """Orders 1-10: 2 and 3 negative, 4 null amount; 5 with an unknown status."""
    rows = order_batch(range(1, 11)).to_pylist()
    rows[1]["amount"] = Decimal("-1.00")
    rows[2]["amount"] = Decimal("-2.00")
    rows[3]["amount"] = None
    rows[4]["status"] = "lost"
    return pa.Table.from_pylist(rows, schema=ORDERS.schema)


def _rule(on_fail: OnFail, tolerance: float = 0.0) -> Expectation:
    return Expectation(
        name="non_negative_amount", rule="amount >= 0", on_fail=on_fail, tolerance=tolerance
    )


def test_warn_counts_and_keeps_every_row_a_null_passes():
    status = Expectation(
        name="known_status", rule="status in ('placed', 'paid')", on_fail=OnFail.WARN
    )

    quality = evaluate_expectations(
        _batch(), [_rule(OnFail.WARN), status], feed="orders", partition="2026-11-02"
    )

    amount, known = quality.outcomes
    assert (amount.rows, amount.passing, amount.failing, amount.null) == (10, 8, 2, 1)
    assert amount.failing_fraction == pytest.approx(0.2)
    assert (known.passing, known.failing, known.null) == (9, 1, 0)
    assert quality.kept.num_rows == 10 and quality.removed == 0
    assert quality.quarantined.num_rows == 0


def test_drop_leaves_failing_rows_out():
    quality = evaluate_expectations(
        _batch(), [_rule(OnFail.DROP)], feed="orders", partition="2026-11-02"
    )

    assert sorted(quality.kept.column("order_id").to_pylist()) == [1, 4, 5, 6, 7, 8, 9, 10]
    assert (quality.dropped, quality.removed, quality.quarantined.num_rows) == (2, 2, 0)


def test_quarantine_leaves_failing_rows_out_and_names_the_rule():
    quality = evaluate_expectations(
        _batch(), [_rule(OnFail.QUARANTINE)], feed="orders", partition="2026-11-02"
    )

    assert quality.kept.num_rows == 8 and quality.dropped == 0
    assert quality.quarantined.column("order_id").to_pylist() == [2, 3]
    assert set(quality.quarantined.column(RULE_COLUMN).to_pylist()) == {"non_negative_amount"}


def test_fail_refuses_the_batch_naming_feed_partition_rule_and_count():
    with pytest.raises(ExpectationFailedError) as raised:
        evaluate_expectations(_batch(), [_rule(OnFail.FAIL)], feed="orders", partition="2026-11-02")

    message = str(raised.value)
    assert "'orders'" in message and "2026-11-02" in message
    assert "non_negative_amount" in message and "2 of 10" in message
    assert (raised.value.rule, raised.value.failing) == ("non_negative_amount", 2)


def test_fail_within_its_tolerance_lets_the_batch_through():
    quality = evaluate_expectations(
        _batch(), [_rule(OnFail.FAIL, tolerance=0.2)], feed="orders", partition=None
    )

    assert quality.kept.num_rows == 10
    assert quality.outcomes[0].within_tolerance


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("amount >=", "does not parse"),
        ("price > 0", "price"),
        ("amount + 1", "not a boolean"),
        ("1 = 1", "names no column"),
        # polars' SQL cannot compare a zoned timestamp with a literal: refused at load, not at run
        ("updated_at >= '2020-01-01'", "cannot be evaluated"),
    ],
)
def test_a_bad_rule_is_refused(rule, says):
    with pytest.raises(InvalidRuleError, match=says):
        parse_rule(rule, ORDERS.schema)


def test_tombstones_are_not_judged_and_always_kept():
    batch = _batch().append_column("_op", pa.array(["D", "D"] + [None] * 8, pa.string()))

    quality = evaluate_expectations(batch, [_rule(OnFail.DROP)], feed="orders", partition=None)

    # Order 2 (negative amount) is a tombstone: it deletes, whatever its amount.
    [outcome] = quality.outcomes
    assert (outcome.rows, outcome.failing, outcome.null) == (8, 1, 1)
    assert quality.kept.column("order_id").to_pylist() == [1, 2, 4, 5, 6, 7, 8, 9, 10]


_FORK_AFTER_LOAD = """
import os, signal
import polars as pl
from upsert_pipeline.feeds import ORDERS  # parses and checks the orders YAML's rules
assert ORDERS.expectations
pid = os.fork()
if pid == 0:
    signal.alarm(20)
    frame = pl.DataFrame({"a": list(range(200_000)), "b": ["x", "y"] * 100_000})
    for _ in range(5):
        frame.group_by("b").agg(pl.col("a").sum())
        frame.sort("a", descending=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
raise SystemExit(status)
"""


def test_loading_the_feeds_leaves_polars_usable_in_forked_processes():
    # The crash and concurrency tests fork writers from a server that loaded the feeds.
    completed = subprocess.run(
        [sys.executable, "-c", _FORK_AFTER_LOAD], cwd=PROJECT, capture_output=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr.decode()[-2000:]
