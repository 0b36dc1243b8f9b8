"""Writers killed with SIGKILL in the middle of a merge: the table stays readable, the re-run
succeeds and its counts reconcile.

A forked worker merges a batch, then lingers a moment as a Dagster run would while it records
the materialization, and is killed after a random delay: the kill lands while it opens the table,
writes data files, commits, writes a checkpoint (the table checkpoints every 5 versions), or after
the commit. The delay's upper bound adapts: it grows after a kill that came before the commit and
shrinks after a worker that finished, so kills keep landing on both sides of the commit. After
every kill the table is read at whatever version it is, and the same batch is merged again in the
test process: it must succeed, either merging the batch or, when the killed worker had already
committed it, recognising it as applied. Nothing asserts on time.
"""

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from upsert_pipeline.delta import read_row_counts, upsert
from upsert_pipeline.feeds import ORDERS
from upsert_pipeline_tests.conftest import DAY, order_batch, scan_rows
from upsert_pipeline_tests.test_delta_concurrency import forkserver

KILLS = 20
CREATION_KILLS = 6
MAX_RUNS = 80
BASE_ROWS = 3000
CHANGED_ROWS = 1000
NEW_ROWS = 400
PARTITION = {"order_date": DAY}
RECORDING_S = 0.05


def _round_batch(round_: int) -> pa.Table:
    """CHANGED_ROWS existing keys with a new status and NEW_ROWS new keys."""
    start = (round_ * 379) % (BASE_ROWS - CHANGED_ROWS)
    new = range(BASE_ROWS + round_ * NEW_ROWS, BASE_ROWS + (round_ + 1) * NEW_ROWS)
    return pa.concat_tables(
        [
            order_batch(range(start, start + CHANGED_ROWS), status=f"r{round_}"),
            order_batch(new, status=f"r{round_}"),
        ]
    )


def _merge(uri: str, round_: int, ready) -> None:
    batch = _round_batch(round_)
    ready.set()
    upsert(uri, batch, keys=["order_id"], partition=PARTITION)
    time.sleep(RECORDING_S)  # committed, the materialization not yet recorded


def _kill_during(context, target, args, delay_s: float) -> bool:
    """Runs ``target`` in a forked process, SIGKILLs it ``delay_s`` after it is ready.

    Returns whether the kill landed (the process was still running).
    """
    ready = context.Event()
    process = context.Process(target=target, args=(*args, ready))
    process.start()
    assert ready.wait(60)
    time.sleep(delay_s)
    process.kill()
    process.join()
    return process.exitcode == -signal.SIGKILL


def _orphans(uri: str) -> int:
    """Data files on disk that no commit ever added: what killed writers left behind."""
    added = {
        unquote(action["add"]["path"])
        for commit in Path(uri, "_delta_log").glob("*.json")
        for action in map(json.loads, commit.read_text().splitlines())
        if "add" in action
    }
    data_files = {str(path.relative_to(uri)) for path in Path(uri).glob("*=*/*.parquet")}
    return len(data_files - added)


def test_twenty_writers_killed_mid_merge_then_re_runs_reconcile(tmp_path):
    uri = str(tmp_path / "orders")
    DeltaTable.create(
        uri,
        ORDERS.schema,
        partition_by=["order_date"],
        configuration={"delta.checkpointInterval": "5"},
    )
    upsert(
        uri, order_batch(range(BASE_ROWS), status="base"), keys=["order_id"], partition=PARTITION
    )
    model = dict.fromkeys(range(BASE_ROWS), "base")
    context = forkserver()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    outcomes: Counter[str] = Counter()
    delay_bound_s = 0.2
    round_ = 0

    while outcomes["killed"] < KILLS and round_ < MAX_RUNS:
        version = DeltaTable(uri).version()
        killed = _kill_during(context, _merge, (uri, round_), rng.uniform(0, delay_bound_s))

        # The table is readable at the previous version, or at the killed writer's commit.
        table = DeltaTable(uri)
        committed = table.version() == version + 1
        assert table.version() in (version, version + 1)
        if not killed:
            outcomes["finished"] += 1
        elif committed:
            outcomes["killed after commit"] += 1
        else:
            outcomes["killed before commit"] += 1
        outcomes["killed"] += killed
        delay_bound_s *= 1.3 if killed and not committed else 0.85
        assert read_row_counts(uri, partition=PARTITION).partition_rows == scan_rows(uri, DAY)

        result = upsert(uri, _round_batch(round_), keys=["order_id"], partition=PARTITION)

        before, after = result.before.partition_rows, result.partition_rows
        assert before is not None and after is not None
        assert before + result.inserted - result.deleted == after == scan_rows(uri, DAY)
        assert after == read_row_counts(uri, partition=PARTITION).partition_rows
        if committed:
            # The re-run merges again and finds every row in: nothing changes, nothing commits.
            assert not result.committed
            assert (result.inserted, result.updated, result.unchanged) == (0, 0, result.source_rows)
        else:
            assert result.committed and result.version == version + 1
            assert (result.inserted, result.updated) == (NEW_ROWS, CHANGED_ROWS)
        for row in _round_batch(round_).select(["order_id", "status"]).to_pylist():
            model[row["order_id"]] = row["status"]
        frame = pl.read_delta(uri)
        assert dict(zip(frame["order_id"], frame["status"], strict=True)) == model
        round_ += 1

    print(f"\ncrash test: {round_} runs, {dict(outcomes)}, orphan data files {_orphans(uri)}")
    assert outcomes["killed"] >= KILLS
    # Both sides of the commit were hit: kills that lost the merge and kills after it landed.
    assert outcomes["killed before commit"] > 0
    assert outcomes["killed after commit"] > 0


def _create_and_merge(uri: str, round_: int, ready) -> None:
    batch = order_batch(range(100))
    ready.set()
    upsert(uri, batch, keys=["order_id"], partition=PARTITION)


def test_writers_killed_while_creating_the_table_leave_it_creatable(tmp_path):
    context = forkserver()
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    kills = runs = 0
    delay_bound_s = 0.1
    while kills < CREATION_KILLS and runs < MAX_RUNS:
        uri = str(tmp_path / f"orders{runs}")
        killed = _kill_during(
            context, _create_and_merge, (uri, runs), rng.uniform(0, delay_bound_s)
        )
        kills += killed
        delay_bound_s *= 1.0 if killed else 0.8
        runs += 1

        result = upsert(uri, order_batch(range(100)), keys=["order_id"], partition=PARTITION)

        assert result.inserted in (0, 100)
        assert result.committed == (result.inserted == 100)
        assert result.partition_rows == scan_rows(uri) == 100
        operations = Counter(entry["operation"] for entry in DeltaTable(uri).history())
        assert operations == {"CREATE TABLE": 1, "MERGE": 1}
    print(f"\ncreation crash test: {runs} runs, {kills} kills")
    assert kills >= CREATION_KILLS


def test_leftovers_of_a_killed_writer_change_no_count(table_uri):
    upsert(table_uri, order_batch(range(10)), keys=["order_id"], partition=PARTITION)
    log = Path(table_uri, "_delta_log")
    # What a writer killed mid-commit or mid-write leaves: a temporary commit and a data file
    # that no commit names.
    (log / "_commit_0b5e1d3a-0000-4000-8000-000000000000.json.tmp").write_text('{"add": {}}\n')
    data_file = next(Path(table_uri).rglob("*.parquet"))
    (data_file.parent / f"part-orphan-{data_file.name}").write_bytes(data_file.read_bytes())

    result = upsert(table_uri, order_batch(range(5, 15)), keys=["order_id"], partition=PARTITION)

    assert (result.before.partition_rows, result.inserted, result.partition_rows) == (10, 5, 15)
    assert scan_rows(table_uri, DAY) == 15


def test_a_table_whose_creation_was_killed_before_version_0_is_created(tmp_path):
    uri = tmp_path / "orders"
    (uri / "_delta_log").mkdir(parents=True)

    result = upsert(str(uri), order_batch([1, 2]), keys=["order_id"], partition=PARTITION)

    assert (result.inserted, result.version, result.partition_rows) == (2, 1, 2)
