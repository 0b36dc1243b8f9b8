"""The check names, as the UI and the event log show them."""

COUNTS_RECONCILE = "counts_reconcile"
"""Inline, blocking: the commit's counts add up, from the merge metrics and the log."""
NO_OUT_OF_BAND_WRITES = "no_out_of_band_writes"
"""Inline: nothing but the pipeline wrote since the partition's previous materialization."""
VOLUME_WITHIN_HISTORY = "volume_within_history"
"""Standalone: inserted / updated / deleted stay within a band of the asset's history."""
NOT_EMPTY = "not_empty"
"""Standalone: the partition (or the table) holds rows, by the log's numRecords."""
ROW_COUNTS_UNCHANGED = "row_counts_unchanged"
"""Inline on maintain_lake: compaction and vacuum changed no row count (table and partitions)."""
EXPECTATION_PREFIX = "expect_"
"""Inline, one per expectation of the feed: ``expect_<rule>``, judged from the rule's counts."""


def expectation_check(rule: str) -> str:
    """The check name of the expectation ``rule``, e.g. ``expect_non_negative_amount``."""
    return f"{EXPECTATION_PREFIX}{rule}"
