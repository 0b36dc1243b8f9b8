"""Recording one partition's commit the moment it lands: its materialization, then each selected
check's verdict on it.

An upsert asset runs one day or a backfill's whole range of days in one step. Each day is
recorded as soon as its merge returns (``dg.AssetMaterialization`` with the day's partition, then
``dg.AssetCheckEvaluation`` events), never at the end of the step: a run killed on day 15 of 30
leaves days 1 to 14 recorded and judged, and the UI fills in while a long backfill runs. The asset
therefore yields no output of its own (``output_required=False``): Dagster would turn that output
into one more materialization of every partition of the range, each a duplicate.

The two standalone checks (``volume_within_history``, ``not_empty``) are judged here too, when the
run selected them: they depend on the asset's output, so in the asset's run their own step is
skipped and these evaluations complete the executions Dagster planned for them. Run on their own
(``check_lake``, the UI) they judge as before.

A commit is recorded once: a day whose commit was already recorded (a later run recovered it
while this one was still working, see ``recovery.py``) is not recorded again.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import dagster as dg

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.checks.evaluations import latest_record, partition_evaluation, target_of
from upsert_pipeline.checks.judges import VOLUME_BAND, Verdict, VolumeBand, judge_not_empty
from upsert_pipeline.checks.names import NOT_EMPTY, VOLUME_WITHIN_HISTORY
from upsert_pipeline.checks.wiring import recorded_ints, volume_verdict_on
from upsert_pipeline.delta import UpsertResult
from upsert_pipeline.feeds import Feed

STANDALONE_CHECKS = (VOLUME_WITHIN_HISTORY, NOT_EMPTY)
"""The standalone checks a run of the asset judges per day as it records the day."""

RecordEvent = dg.AssetMaterialization | dg.AssetCheckEvaluation


def standalone_specs(context: dg.AssetExecutionContext, feed: Feed) -> list[dg.AssetCheckSpec]:
    """The standalone checks of ``feed`` that this run executes (selected in its job)."""
    in_job = context.job_def.asset_layer.asset_graph.asset_check_keys
    selection = context.run.asset_check_selection
    specs = []
    for name in STANDALONE_CHECKS:
        key = dg.AssetCheckKey(dg.AssetKey(feed.name), name)
        if key in in_job and (selection is None or key in selection):
            specs.append(dg.AssetCheckSpec(name, asset=feed.name))
    return specs


def recovered_already(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str, version: int, run_id: str
) -> bool:
    """Whether the partition's latest materialization is a recovery of this run's commit at
    ``version`` (another run recorded it while this one was still working)."""
    record = latest_record(instance, asset_key, partition)
    if record is None or record.asset_materialization is None:
        return False
    dead_run = record.asset_materialization.metadata.get(keys.RECOVERED_RUN_ID)
    return (
        recorded_ints(record.asset_materialization).get(keys.VERSION) == version
        and dead_run is not None
        and dead_run.value == run_id
    )


@dataclass(frozen=True)
class Recorder:
    """Records the partitions of one step as their commits land.

    Attributes:
        instance: The Dagster instance the events go to.
        feed: The feed whose asset is recorded.
        inline_specs: The asset's own checks selected in the run.
        standalone_specs: The standalone checks selected in the run (``standalone_specs``).
        checked_through: ``recovery/log_checked_through`` of every materialization it records.
        run_id: The run recording (whose commits carry it).
        band: The feed's thresholds of ``volume_within_history``.
    """

    instance: dg.DagsterInstance
    feed: Feed
    inline_specs: list[dg.AssetCheckSpec]
    standalone_specs: list[dg.AssetCheckSpec]
    checked_through: int
    run_id: str
    band: VolumeBand = VOLUME_BAND

    def record(
        self,
        result: UpsertResult,
        partition_key: str,
        metadata: Mapping[str, dg.MetadataValue],
        verdicts: Mapping[str, Verdict],
        *,
        description: str | None = None,
    ) -> Iterator[RecordEvent]:
        """The partition's materialization, then each selected check's verdict on it; nothing
        if its commit is already recorded."""
        asset_key = dg.AssetKey(self.feed.name)
        if result.committed and recovered_already(
            self.instance, asset_key, partition_key, result.version, self.run_id
        ):
            return
        yield dg.AssetMaterialization(
            asset_key=asset_key,
            partition=partition_key,
            description=description,
            metadata={
                **metadata,
                keys.LOG_CHECKED_THROUGH: dg.MetadataValue.int(self.checked_through),
            },
        )
        # Dagster stores an event as it is yielded: the materialization is recorded by now.
        recorded = latest_record(self.instance, asset_key, partition_key)
        target = target_of(recorded) if recorded else None
        for spec in self.inline_specs:
            yield partition_evaluation(spec, partition_key, verdicts[spec.name], target)
        for spec in self.standalone_specs:
            if spec.name == VOLUME_WITHIN_HISTORY:
                verdict = volume_verdict_on(
                    self.instance, asset_key, partition_key, recorded, self.band
                )
            else:
                verdict = judge_not_empty(
                    result.after, partitioned=self.feed.partition_column is not None
                )
            yield partition_evaluation(spec, partition_key, verdict, target)
