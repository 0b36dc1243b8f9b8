"""A run of the orders asset in a process of its own, which stops at a kill point and waits there
to be killed: what the crash tests SIGKILL.

    python -m upsert_pipeline_tests.killed_run --home H --lake L --landing D --first 2026-11-01 \
        --last 2026-11-03 --kill-point after_commit --kill-day 2026-11-02 --marker M

The kill point is a hook patched into this process only (never into the package): ``upsert``'s
merge of ``--kill-day`` is wrapped so that, ``before_commit``, the process writes ``--marker`` and
sleeps before merging, or, ``after_commit``, it merges (the commit lands) and then writes the
marker and sleeps before the run records anything. The test waits for the marker and kills the
process: the kill lands at exactly that point. ``--kill-point none`` runs to the end.
``mid_recovery`` stops the run while it recovers a dead run's commit: after claiming it, before
recording it (``recovery.committed_result`` wrapped).

``--hold-dir D`` makes the run stop right after its recovery read the instance's records (the
first ``recovery.recorded_commits``), write ``D/ready-<pid>`` and wait for ``D/go``: two runs so
held find the same unrecorded commits, then race to recover them once the test writes ``go``.

``--report`` runs nothing and prints, for each pipeline commit of orders in the log, the
materializations the instance recorded for it (what the README's "After a crash" shows).
"""

import argparse
import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline import recovery
from upsert_pipeline.definitions import feed_definitions
from upsert_pipeline.delta import merge
from upsert_pipeline.delta.recovery import pipeline_commits
from upsert_pipeline.delta.result import UpsertResult
from upsert_pipeline.resources import DeltaMergeResource, LandingResource

KILL_POINTS = ("before_commit", "after_commit", "mid_recovery", "none")
WAIT_S = 600


def _install_kill_point(kill_point: str, kill_day: str, marker: Path) -> None:
    run = merge._Merge.run

    def _stop() -> None:
        marker.write_text(kill_point)
        time.sleep(WAIT_S)  # killed here

    def run_then_maybe_stop(self: merge._Merge, table: object, attempt: int) -> UpsertResult:
        target = any(str(value) == kill_day for value in (self.partition or {}).values())
        if target and kill_point == "before_commit":
            _stop()
        result = run(self, table, attempt)  # type: ignore[arg-type]
        if target and kill_point == "after_commit":
            _stop()
        return result

    merge._Merge.run = run_then_maybe_stop  # type: ignore[method-assign]
    if kill_point == "mid_recovery":
        rebuild = recovery.committed_result

        def stop_before_recording(*args: Any, **kwargs: Any) -> UpsertResult:
            _stop()
            return rebuild(*args, **kwargs)

        recovery.committed_result = stop_before_recording  # type: ignore[assignment]


def _install_hold(hold_dir: Path) -> None:
    read = recovery.recorded_commits
    held = []

    def read_then_hold(*args: Any, **kwargs: Any) -> set[tuple[str, int, str]]:
        records = read(*args, **kwargs)
        if not held:
            held.append(True)
            (hold_dir / f"ready-{os.getpid()}").write_text("")
            deadline = time.monotonic() + WAIT_S
            while not (hold_dir / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return records

    recovery.recorded_commits = read_then_hold  # type: ignore[assignment]


def materialize_range(
    instance: dg.DagsterInstance,
    *,
    lake: str,
    landing: str,
    first: str,
    last: str,
    grace_s: float | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of the orders asset (and its checks) over ``first``..``last``, as a single-run
    backfill runs it."""
    feeds = feed_definitions()  # the defs folder's, without resources bound
    [asset] = [
        a
        for a in feeds.assets or ()
        if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey("orders")
    ]
    checks = [
        check
        for check in feeds.asset_checks or ()
        if isinstance(check, dg.AssetsDefinition | dg.AssetChecksDefinition)
        and {key.asset_key for key in check.check_keys} == {dg.AssetKey("orders")}
    ]
    config = {} if grace_s is None else {"recovery_grace_s": grace_s}
    return dg.materialize(
        [asset, *checks],
        instance=instance,
        resources={
            "landing": LandingResource(uri=landing),
            "lake": DeltaMergeResource(lake_uri=lake),
        },
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        run_config={"ops": {"orders": {"config": config}}},
        raise_on_error=False,
    )


def report(instance: dg.DagsterInstance, lake: str) -> list[str]:
    """One line per pipeline commit of orders: its day, version and run, and what recorded it."""
    commits, _ = pipeline_commits(f"{lake}/orders", "orders")
    records = instance.fetch_materializations(dg.AssetKey("orders"), limit=1000).records
    lines = []
    for commit in commits:
        recorded = [
            r
            for r in records
            if r.partition_key == commit.pipeline_partition
            and getattr(r.asset_materialization.metadata.get(keys.VERSION), "value", None)
            == commit.version
            and getattr(r.asset_materialization.metadata.get(keys.READ_VERSION), "value", None)
            != commit.version
        ]
        how = [
            "recovered" if keys.RECOVERED in r.asset_materialization.metadata else "recorded"
            for r in recorded
        ]
        inserted = commit.metrics.get("num_target_rows_inserted")
        lines.append(
            f"{commit.pipeline_partition} v{commit.version} run {commit.run_id} "
            f"inserted {inserted}: {len(recorded)} materialization(s) {how}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, help="the instance's folder (sqlite)")
    parser.add_argument("--lake", required=True)
    parser.add_argument("--landing", default="")
    parser.add_argument("--first", default="")
    parser.add_argument("--last", default="")
    parser.add_argument("--kill-point", choices=KILL_POINTS, default="none")
    parser.add_argument("--grace-s", type=float, default=None, help="recovery_grace_s of the run")
    parser.add_argument("--report", action="store_true", help="print what is recorded; run nothing")
    parser.add_argument("--kill-day", default="")
    parser.add_argument("--marker", default="")
    parser.add_argument("--hold-dir", default="", help="hold after reading the records (see above)")
    args = parser.parse_args()
    if args.report:
        with dg.DagsterInstance.local_temp(tempdir=args.home) as instance:
            print("\n".join(report(instance, args.lake)))
        return
    if args.kill_point != "none":
        _install_kill_point(args.kill_point, args.kill_day, Path(args.marker))
    if args.hold_dir:
        _install_hold(Path(args.hold_dir))
    Path(args.home).mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(tempdir=args.home) as instance:
        materialize_range(
            instance,
            lake=args.lake,
            landing=args.landing,
            first=args.first,
            last=args.last,
            grace_s=args.grace_s,
        )


if __name__ == "__main__":
    main()
