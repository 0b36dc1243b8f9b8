"""Two runs recovering the same dead commit at once record it exactly once, and a claim whose run
died mid-recovery is taken over by a later run (real processes; local disk and moto's S3).

The commit is left by a run SIGKILLed right after it (``killed_run.py``), which the instance then
calls failed (as run monitoring would), so every later run recovers it at once. The racing runs
are two processes, each merging a day of its own; both are held right after reading the
instance's records (both find the commit unrecorded), then released together.
"""

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from upsert_pipeline import metadata_keys as keys
from upsert_pipeline.delta.claims import RecoveryClaims
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.killed_run import materialize_range
from upsert_pipeline_tests.test_recovery_crash import (
    DAYS,
    MARKER_TIMEOUT_S,
    assert_every_commit_recorded_once,
    endpoint,  # noqa: F401 (a fixture `lake` uses)
    kill_run_at,
    lake,  # noqa: F401 (a fixture)
)


def _recoveries(instance: dg.DagsterInstance, day: str) -> list[dict[str, object]]:
    """Metadata of the recovered materializations of ``day``."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("orders"), asset_partitions=[day]), limit=100
    ).records
    found = []
    for record in records:
        metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        if metadata.get(keys.RECOVERED):
            found.append({**metadata, "run_id": record.run_id})
    return found


def _dead_commit(home: Path, lake_uri: str, landing: str, env: dict[str, str]) -> tuple[str, int]:
    """A commit of DAYS[0] whose run was killed before recording it, that run now failed."""
    kill_run_at(
        home=home,
        lake=lake_uri,
        landing=landing,
        first=DAYS[0],
        last=DAYS[0],
        kill_point="after_commit",
        kill_day=DAYS[0],
        env=env,
    )
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        [run] = instance.get_runs()
        instance.report_run_failed(run)
        return run.run_id, 1


def _start_held_run(home: Path, lake_uri: str, landing: str, day: str, hold: Path, env):
    """The run of ``day``, held after reading the records; its log goes to ``held-<day>.log``
    (a pipe nobody reads until the end would fill up and block it)."""
    with (home / f"held-{day}.log").open("wb") as stderr:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "upsert_pipeline_tests.killed_run"),
                *("--home", str(home), "--lake", lake_uri, "--landing", landing),
                *("--first", day, "--last", day, "--hold-dir", str(hold)),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _held_log(home: Path, day: str) -> str:
    return (home / f"held-{day}.log").read_text()[-3000:]


def test_two_runs_recovering_the_same_commit_at_once_record_it_once(lake, tmp_path):  # noqa: F811
    lake_uri, options, env = lake
    landing = str(tmp_path / "landing")
    generate(landing, days=len(DAYS))
    home = tmp_path / "dagster_home"
    home.mkdir()
    dead_run, version = _dead_commit(home, lake_uri, landing, env)

    hold = tmp_path / "hold"
    hold.mkdir()
    runs = [_start_held_run(home, lake_uri, landing, day, hold, env) for day in DAYS[1:3]]
    try:
        deadline = time.monotonic() + MARKER_TIMEOUT_S
        while len(list(hold.glob("ready-*"))) < len(runs):
            for day, run in zip(DAYS[1:3], runs, strict=True):
                assert run.poll() is None, _held_log(home, day)
            assert time.monotonic() < deadline, "the runs never reached their recovery"
            time.sleep(0.05)
        # Both read the records and found the commit unrecorded: now they race for it.
        (hold / "go").write_text("")
        for day, run in zip(DAYS[1:3], runs, strict=True):
            assert run.wait(timeout=MARKER_TIMEOUT_S) == 0, _held_log(home, day)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()

    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        recovered = [
            r
            for r in _recoveries(instance, DAYS[0])
            if r[keys.VERSION] == version and r[keys.RECOVERED_RUN_ID] == dead_run
        ]
        assert len(recovered) == 1
        claim = RecoveryClaims(f"{lake_uri}/orders", options).latest(version, dead_run)
        assert claim is not None and claim.generation == 0
        assert claim.claimant == recovered[0]["run_id"]
        assert_every_commit_recorded_once(instance, lake_uri, options)


def test_a_claim_whose_run_died_mid_recovery_is_taken_over(lake, tmp_path):  # noqa: F811
    lake_uri, options, env = lake
    landing = str(tmp_path / "landing")
    generate(landing, days=len(DAYS))
    home = tmp_path / "dagster_home"
    home.mkdir()
    dead_run, version = _dead_commit(home, lake_uri, landing, env)
    claims = RecoveryClaims(f"{lake_uri}/orders", options)

    # A run claims the commit and is killed before recording it.
    kill_run_at(
        home=home,
        lake=lake_uri,
        landing=landing,
        first=DAYS[1],
        last=DAYS[1],
        kill_point="mid_recovery",
        kill_day=DAYS[1],
        env=env,
    )
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        claimant = next(r for r in instance.get_runs() if r.run_id != dead_run)
        first = claims.latest(version, dead_run)
        assert first is not None and (first.generation, first.claimant) == (0, claimant.run_id)
        assert _recoveries(instance, DAYS[0]) == []

        # While the instance calls that run started and its claim is young, it may still
        # record: a run leaves the commit to it, and its watermark stays below the commit.
        assert materialize_range(
            instance, lake=lake_uri, landing=landing, first=DAYS[2], last=DAYS[2]
        ).success
        assert _recoveries(instance, DAYS[0]) == []
        assert claims.latest(version, dead_run) == first

        # Once the claiming run is over (here: failed), the next run takes the claim over.
        instance.report_run_failed(claimant)
        result = materialize_range(
            instance, lake=lake_uri, landing=landing, first=DAYS[3], last=DAYS[3]
        )
        assert result.success
        [recovered] = _recoveries(instance, DAYS[0])
        assert (recovered[keys.VERSION], recovered[keys.RECOVERED_RUN_ID]) == (version, dead_run)
        second = claims.latest(version, dead_run)
        assert second is not None
        assert (second.generation, second.claimant) == (1, result.run_id)
        assert_every_commit_recorded_once(instance, lake_uri, options)
