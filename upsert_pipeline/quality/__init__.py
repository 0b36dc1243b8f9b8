"""Data-quality expectations: rules declared per feed, evaluated on the batch in memory before the
merge. Plain Python (polars and pyarrow), no Dagster."""

from upsert_pipeline.quality.expectations import (
    Expectation,
    ExpectationFailedError,
    InvalidRuleError,
    OnFail,
    QualityOutcome,
    RuleOutcome,
    evaluate_expectations,
    parse_rule,
)

__all__ = [
    "Expectation",
    "ExpectationFailedError",
    "InvalidRuleError",
    "OnFail",
    "QualityOutcome",
    "RuleOutcome",
    "evaluate_expectations",
    "parse_rule",
]
