"""Crash recovery: recording the commits whose run died before recording them.

A run can die between its merge's commit and Dagster's record of it (an OOM kill, a node taken
away, a deploy that restarts the code location). The commit is in the table, and its
``commitInfo`` names the asset, the partition and the run (``delta/recovery.py`` reads them back).
Every run of an upsert asset starts by comparing the log's pipeline commits of its asset with the
commit versions the instance's materializations recorded; each commit recorded nowhere whose run
is over gets its materialization now, before the run's own merge, labelled recovered (the dead
run's id, the version), with the counts of the commit's own metrics and the log's row counts
around it. It is an ordinary materialization of its partition: the volume history and the checks
judge it like any other, and recovering again records nothing twice.

A run counts as over when the instance says it finished (failed, canceled, succeeded), or when
its commit is older than ``grace_s`` (a run killed by SIGKILL stays "started" in the instance
until run monitoring notices). A younger commit of a run still marked started, or of a run the
instance does not know (another instance's run writing the same lake, such as a notebook's
ephemeral ``dg.materialize``), may belong to a live run about to record it: it is left to that
run, and the watermark ``recovery/log_checked_through`` stays below it so that a later run looks
again.

Runs of different partitions of the asset run at once, and each recovers first: two of them can
find the same dead commit at the same instant. Before recording it a run claims it
(``delta/claims.py``: a create-only object named by the table, the version and the dead run,
beside the table), and only the run that created the claim records it; a commit another run holds
a claim on is left to that run like a live run's commit (the watermark stays below it). A claim
whose claiming run is itself over (by the same rule as above, the claim's age standing for the
commit's) is taken over by creating the claim's next generation, again create-only, so one run
takes it over; holding the claim, the run reads the instance again and records nothing the
previous claimant recorded before it ended. ``grace_s`` is therefore also how long a live run may
take between its claim and its record: a run given ``grace_s=0`` takes over any other run's
claim at once (the operator's ``recover_lake`` when nothing else runs, or tests).

The ``recover_lake`` job does the same for every feed without merging anything.
"""

import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace

import dagster as dg
from pydantic import Field

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.checks.judges import VOLUME_BAND, Severity, Verdict, VolumeBand
from upsert_pipeline.checks.names import expectation_check
from upsert_pipeline.checks.wiring import inline_check_specs, inline_verdicts, recorded_ints
from upsert_pipeline.delta.claims import Claim, RecoveryClaims
from upsert_pipeline.delta.history import Commit
from upsert_pipeline.delta.recovery import committed_result, pipeline_commits
from upsert_pipeline.feeds import Feed, load_feed
from upsert_pipeline.metadata import upsert_metadata
from upsert_pipeline.partitions import partition_scope
from upsert_pipeline.recording import Recorder, RecordEvent
from upsert_pipeline.resources import DeltaMergeResource

RECOVER_JOB = "recover_lake"
DEFAULT_GRACE_S = 120.0
"""How old a commit of a run the instance still calls started must be to count as dead."""
_PAGE = 1000


@dataclass(frozen=True)
class Recovery:
    """What a run found in the log before its merge.

    Attributes:
        commits: The pipeline commits of the asset recorded nowhere whose run is over, each
            claimed by this run (only it records them).
        waiting: Unrecorded commits of runs that may still be alive, or claimed by another
            run that may be (left to them).
        checked_through: Every pipeline commit up to this version is recorded, or in
            ``commits``: the next look at the log starts after it.
    """

    commits: list[Commit]
    waiting: list[Commit]
    checked_through: int


def recorded_commits(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    partitions: Sequence[str] | None = None,
) -> set[tuple[str, int, str]]:
    """``(partition, version, run)`` of every commit a materialization of the asset (of
    ``partitions``, when given) recorded, ``run`` being the run that wrote the commit (the dead
    run, for a recovered one): a table dropped and written again reuses versions, never a run's
    id.

    A materialization of a merge that committed nothing (``delta/version`` equal to
    ``delta/read_version``) records no commit.
    """
    recorded: set[tuple[str, int, str]] = set()
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=asset_key,
                asset_partitions=None if partitions is None else list(partitions),
            ),
            limit=_PAGE,
            cursor=cursor,
        )
        for record in page.records:
            materialization = record.asset_materialization
            counts = recorded_ints(materialization)
            version = counts.get(keys.VERSION)
            partition = record.partition_key
            if version is None or version == counts.get(keys.READ_VERSION) or not partition:
                continue
            dead_run = (
                materialization.metadata.get(keys.RECOVERED_RUN_ID) if materialization else None
            )
            writer = str(dead_run.value) if dead_run is not None else record.run_id
            recorded.add((partition, version, writer))
        if not page.has_more:
            return recorded
        cursor = page.cursor


def _checked_through(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key), limit=1
    ).records
    if not records:
        return -1
    return recorded_ints(records[0].asset_materialization).get(keys.LOG_CHECKED_THROUGH, -1)


def _run_is_over(
    instance: dg.DagsterInstance,
    run_id: str | None,
    since_ms: int | None,
    *,
    current_run_id: str | None,
    grace_s: float,
) -> bool:
    """Whether run ``run_id``, which did something at ``since_ms`` it has not recorded yet, is
    over: finished, or silent for ``grace_s`` since (still called started, or unknown to this
    instance: a run of another instance writing the same lake, such as the ephemeral instance of
    a notebook's or a test's ``dg.materialize``, may be alive and about to record it)."""
    if run_id == current_run_id:
        return False
    run = instance.get_run_by_id(run_id) if run_id else None
    if run is not None and run.is_finished:
        return True
    return time.time() - (since_ms or 0) / 1000 >= grace_s


def _claim(
    instance: dg.DagsterInstance,
    claims: RecoveryClaims,
    commits: Sequence[Commit],
    *,
    current_run_id: str | None,
    grace_s: float,
) -> tuple[list[Commit], list[Commit]]:
    """``commits`` split into those this run now holds the claim on and those another run
    (alive, by ``_run_is_over``) holds."""
    claimant = current_run_id or f"unknown-{uuid.uuid4()}"

    def claimant_is_over(held: Claim) -> bool:
        return _run_is_over(
            instance,
            held.claimant,
            held.claimed_at_ms,
            current_run_id=current_run_id,
            grace_s=grace_s,
        )

    mine: list[Commit] = []
    held: list[Commit] = []
    for commit in commits:
        claim = claims.claim(
            commit.version, str(commit.run_id), claimant=claimant, take_over=claimant_is_over
        )
        (mine if claim is not None else held).append(commit)
    return mine, held


def find_unrecorded(
    instance: dg.DagsterInstance,
    feed: Feed,
    lake: DeltaMergeResource,
    *,
    current_run_id: str | None,
    grace_s: float = DEFAULT_GRACE_S,
) -> Recovery:
    """The pipeline commits of ``feed``'s asset that no materialization records.

    Reads the log after the watermark the asset's latest materialization carries (the whole log
    the first time), and the instance's recorded versions only when the log holds any commit
    of the asset past it. Claims each commit it returns to recover for ``current_run_id``
    (``delta/claims.py``); a commit another live run holds the claim on is returned as waiting.
    """
    asset_key = dg.AssetKey(feed.name)
    after = _checked_through(instance, asset_key)
    table_uri, options = lake.table_uri(feed.name), lake.delta_storage_options()
    commits, latest = pipeline_commits(
        table_uri, feed.name, after_version=after, storage_options=options
    )
    if latest is not None and latest < after:
        # Fewer versions than already checked: the table was written again from scratch.
        after = -1
        commits, latest = pipeline_commits(
            table_uri, feed.name, after_version=after, storage_options=options
        )
    if latest is None:
        return Recovery([], [], after)
    # Only the partitions those commits are of: a run reads the records of a few days.
    partitions = sorted({str(c.pipeline_partition) for c in commits})
    recorded = recorded_commits(instance, asset_key, partitions) if commits else set()
    unrecorded = [
        c for c in commits if (str(c.pipeline_partition), c.version, c.run_id) not in recorded
    ]
    over = [
        c
        for c in unrecorded
        if _run_is_over(
            instance, c.run_id, c.timestamp_ms, current_run_id=current_run_id, grace_s=grace_s
        )
    ]
    claimed, held = (
        _claim(
            instance,
            RecoveryClaims(table_uri, options),
            over,
            current_run_id=current_run_id,
            grace_s=grace_s,
        )
        if over
        else ([], [])
    )
    if claimed:
        # Holding the claims: what a previous claimant recorded before it ended is recorded.
        partitions = sorted({str(c.pipeline_partition) for c in claimed})
        recorded = recorded_commits(instance, asset_key, partitions)
        claimed = [
            c for c in claimed if (str(c.pipeline_partition), c.version, c.run_id) not in recorded
        ]
    waiting = [c for c in unrecorded if c not in over] + held
    checked_through = min((c.version for c in waiting), default=latest + 1) - 1
    return Recovery(claimed, waiting, max(checked_through, after))


def recover_first(
    instance: dg.DagsterInstance,
    feed: Feed,
    lake: DeltaMergeResource,
    *,
    run_id: str,
    grace_s: float,
    inline_specs: Sequence[dg.AssetCheckSpec],
    standalone_specs: Sequence[dg.AssetCheckSpec] = (),
    band: VolumeBand = VOLUME_BAND,
    partitions_def: dg.PartitionsDefinition | None = None,
    log: dg.DagsterLogManager,
) -> Generator[RecordEvent, None, Recorder]:
    """Records the commits of ``feed`` whose run died before recording them (``find_unrecorded``)
    and returns the ``Recorder`` the run then records its own partitions with.

    Example:
        >>> recorder = yield from recover_first(instance, feed, lake, run_id=..., ...)
    """
    recovery = find_unrecorded(instance, feed, lake, current_run_id=run_id, grace_s=grace_s)
    log.info(
        f"{feed.name}: {len(recovery.commits)} commit(s) to recover, "
        f"{len(recovery.waiting)} left to runs that may be alive"
    )
    recorder = Recorder(
        instance,
        feed,
        list(inline_specs),
        list(standalone_specs),
        recovery.checked_through,
        run_id,
        band,
    )
    yield from _recover_events(lake, recovery, recorder, partitions_def=partitions_def, log=log)
    return recorder


def _recover_events(
    lake: DeltaMergeResource,
    recovery: Recovery,
    recorder: Recorder,
    *,
    partitions_def: dg.PartitionsDefinition | None,
    log: dg.DagsterLogManager,
) -> Iterator[RecordEvent]:
    """Each commit of ``recovery`` as its partition's materialization, labelled recovered, and
    the selected checks' verdicts on it, oldest commit first."""
    instance, feed = recorder.instance, recorder.feed
    table_uri = lake.table_uri(feed.name)
    for index, commit in enumerate(recovery.commits):
        # Should this run die part-way, the watermark stays below the commits not recorded yet.
        following = recovery.commits[index + 1 : index + 2]
        watermark = min([recovery.checked_through, *(c.version - 1 for c in following)])
        partition_key = str(commit.pipeline_partition)
        if partitions_def is not None and not partitions_def.has_partition_key(partition_key):
            log.warning(
                f"{feed.name}: v{commit.version} of run {commit.run_id} names partition "
                f"{partition_key!r}, which the asset does not have: not recorded"
            )
            continue
        result = committed_result(
            table_uri,
            commit,
            partition=partition_scope(feed, partition_key),
            storage_options=lake.delta_storage_options(),
        )
        # The landing batch is not read again: the merge's source rows stand in for it.
        verdicts = inline_verdicts(
            instance,
            feed,
            lake,
            result,
            partition_key=partition_key,
            landing_rows=result.source_rows,
        )
        # The expectations were counted on the dead run's batch in memory: the log does not
        # hold their counts, so each rule's verdict on a recovered commit is "unknown".
        for expectation in feed.expectations:
            verdicts[expectation_check(expectation.name)] = Verdict(
                False,
                Severity.WARN,
                f"unknown: run {commit.run_id} died before recording the counts of rule "
                f"{expectation.name!r}; the Delta log does not hold them",
            )
        metadata = upsert_metadata(result, table_name=feed.name, schema=feed.schema)
        # How many of the batch's rows were tombstones is not in the log.
        del metadata[keys.TOMBSTONES]
        metadata[keys.RECOVERED] = dg.MetadataValue.bool(True)
        metadata[keys.RECOVERED_RUN_ID] = dg.MetadataValue.dagster_run(str(commit.run_id))
        log.warning(
            f"{feed.name} {partition_key}: recovering v{commit.version}, committed by run "
            f"{commit.run_id}, which died before recording it: {result.inserted} inserted, "
            f"{result.updated} updated, {result.deleted} deleted"
        )
        yield from replace(recorder, checked_through=watermark).record(
            result,
            partition_key,
            metadata,
            verdicts,
            description=(
                f"Recovered: version {commit.version}, committed by run {commit.run_id}, "
                "which died before recording it."
            ),
        )


class RecoverConfig(dg.Config):
    """Run config of ``recover_lake``."""

    feeds: list[str] = Field(
        default_factory=list, description="The feeds to recover; every feed when empty."
    )
    grace_s: float = Field(
        default=DEFAULT_GRACE_S,
        description=(
            "A commit of a run the instance still calls started counts as dead once it is this "
            "old (seconds). Finished runs' commits are recovered at once."
        ),
    )


def build_recover_job(feed_names: Sequence[str]) -> dg.JobDefinition:
    """``recover_lake``: records every feed's unrecorded pipeline commits, merging nothing (each
    feed's YAML is read when the job runs, not when the code location loads)."""

    @dg.op(name="recover_commits", out={}, description="Records commits whose run died first.")
    def _recover(
        context: dg.OpExecutionContext, config: RecoverConfig, lake: DeltaMergeResource
    ) -> Iterator[RecordEvent]:
        unknown = sorted(set(config.feeds) - set(feed_names))
        if unknown:
            raise dg.Failure(f"no such feed(s): {unknown}; feeds are {sorted(feed_names)}")
        for name in config.feeds or sorted(feed_names):
            feed = load_feed(name)
            yield from recover_first(
                context.instance,
                feed,
                lake,
                run_id=context.run_id,
                grace_s=config.grace_s,
                inline_specs=inline_check_specs(feed),
                log=context.log,
            )

    @dg.job(
        name=RECOVER_JOB,
        description=(
            "Records the commits whose run died before recording them, for every feed (or the "
            "feeds in its config), without merging anything. Runs without a partition."
        ),
    )
    def _job() -> None:
        _recover()

    return _job
