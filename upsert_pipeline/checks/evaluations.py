"""Check verdicts recorded per partition, in a run of one partition or of a range of them.

A single-run backfill (``dg.BackfillPolicy.single_run()``) materializes a range of partitions in
one step. Dagster 1.13 records one check execution per partition of the range (its planned event
carries the range), but turns an ``AssetCheckResult`` into an evaluation of the run's single
partition key, and of no partition at all in a ranged run. So the asset and the standalone checks
yield ``dg.AssetCheckEvaluation`` events themselves, one per partition, each naming the
materialization it judged (the partition's latest, as Dagster's own conversion picks it), and then
the check's output, which Dagster requires of every step that declares one.
"""

from collections.abc import Iterable, Iterator

import dagster as dg

# Not exported at the top level in 1.13; it is the type of AssetCheckEvaluation's field.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from upsert_pipeline.checks.judges import Verdict


def target_of(record: dg.EventLogRecord) -> AssetCheckEvaluationTargetMaterializationData:
    """The materialization record an evaluation judged, as the evaluation points at it."""
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


def latest_record(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str
) -> dg.EventLogRecord | None:
    """The partition's latest materialization record, or ``None`` if it has none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    return records[0] if records else None


def latest_target(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The partition's latest materialization (what Dagster's own conversion of a check result
    points at), or ``None`` if it has none. Read it after the materialization is recorded."""
    record = latest_record(instance, asset_key, partition_key)
    return target_of(record) if record else None


def partition_evaluation(
    spec: dg.AssetCheckSpec,
    partition_key: str,
    verdict: Verdict,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    """The verdict of ``spec`` on one partition, judging the materialization ``target``, as the
    event the UI lists under that partition. Counts stay integers, so the UI plots them."""
    return dg.AssetCheckEvaluation(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=verdict.passed,
        metadata=dict(verdict.metadata),
        target_materialization_data=target,
        severity=dg.AssetCheckSeverity(verdict.severity.value),
        description=verdict.description,
        blocking=spec.blocking,
        partition=partition_key,
    )


def check_outputs(
    assets_def: dg.AssetsDefinition, check_keys: Iterable[dg.AssetCheckKey]
) -> Iterator[dg.Output[None]]:
    """The (valueless) output of each check the step declares, after its evaluations."""
    for key in check_keys:
        yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
