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

from upsert_pipeline.checks.judges import MetadataScalar, Severity, Verdict

SEVERITIES = {
    Severity.WARN: dg.AssetCheckSeverity.WARN,
    Severity.ERROR: dg.AssetCheckSeverity.ERROR,
}


def metadata_value(value: MetadataScalar) -> dg.MetadataValue:
    """A verdict's number or text as metadata; counts stay integers so the UI plots them."""
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    return dg.MetadataValue.text(value)


def _target_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id,
        run_id=records[0].run_id,
        timestamp=records[0].timestamp,
    )


def partition_evaluation(
    instance: dg.DagsterInstance,
    spec: dg.AssetCheckSpec,
    partition_key: str,
    verdict: Verdict,
) -> dg.AssetCheckEvaluation:
    """The verdict of ``spec`` on one partition, as the event the UI lists under that partition.

    Build it after the partition's materialization is recorded: the evaluation points at it.
    """
    return dg.AssetCheckEvaluation(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=verdict.passed,
        metadata={name: metadata_value(value) for name, value in verdict.metadata.items()},
        target_materialization_data=_target_materialization(
            instance, spec.asset_key, partition_key
        ),
        severity=SEVERITIES[verdict.severity],
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
