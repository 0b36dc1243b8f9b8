"""Concurrent merges into one table, in real processes: every commit lands, every count is true.

Workers are forked from a forkserver that has imported the package once, so each process starts
in milliseconds and none inherits a delta-rs runtime from the test process. A barrier releases
all workers of a round at the same moment so that their merges really overlap.
"""

import datetime as dt
import multiprocessing
import random
from collections import Counter
from multiprocessing.context import ForkServerContext
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from upsert_pipeline.delta import (
    CommitRetriesExhaustedError,
    RetryPolicy,
    UpsertResult,
    app_id_for,
    is_commit_conflict,
    read_row_counts,
    upsert,
)
from upsert_pipeline.delta import merge as merge_module
from upsert_pipeline.resources import DeltaMergeResource, LandingResource
from upsert_pipeline.sample_data import generate
from upsert_pipeline_tests.conftest import DAY, feed_asset, order_batch, scan_rows

orders = feed_asset("orders")
"""The orders asset as the Definitions build it."""

PARTITIONS = 8
ROUNDS = 20
ROWS = 40  # new keys per partition per round; half of the previous round's are changed
WRITERS = 4
SAME_PARTITION_ROUNDS = 8
SHARED_KEYS = range(5)
RUNS = 4  # concurrent Dagster runs; each spawns a fresh interpreter
BARRIER_TIMEOUT_S = 120
ROUND_TIMEOUT_S = 300  # a hung worker fails the test instead of blocking the suite
# Patient enough for every writer of a round to win in turn, bounded all the same.
WORKER_RETRY = RetryPolicy(max_attempts=16, initial_backoff_s=0.02, max_backoff_s=0.5)

_barrier: Any = None


def forkserver() -> ForkServerContext:
    """A forkserver context whose server has imported the package and these tests once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["upsert_pipeline.delta", "upsert_pipeline_tests.test_delta_concurrency"]
    )
    return context


def _set_barrier(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _day(partition: int) -> dt.date:
    return dt.date(2026, 11, 1) + dt.timedelta(days=partition)


def _round_batch(partition: int, round_: int) -> pa.Table:
    """ROWS new keys, the first half of last round's keys changed, the second half as they are."""
    day = _day(partition)
    previous = range((round_ - 1) * ROWS, round_ * ROWS) if round_ else range(0)
    half = ROWS // 2
    return pa.concat_tables(
        [
            order_batch(range(round_ * ROWS, (round_ + 1) * ROWS), day=day, status=f"r{round_}"),
            order_batch(previous[:half], day=day, status=f"r{round_}"),
            order_batch(previous[half:], day=day, status=f"r{round_ - 1}"),
        ]
    )


def _expected_status(key: int, rounds: int) -> str:
    round_, position = divmod(key, ROWS)
    changed_next_round = position < ROWS // 2 and round_ + 1 < rounds
    return f"r{round_ + 1}" if changed_next_round else f"r{round_}"


def _merge_partition_round(uri: str, partition: int, round_: int) -> UpsertResult:
    batch = _round_batch(partition, round_)
    _barrier.wait(BARRIER_TIMEOUT_S)
    return upsert(
        uri,
        batch,
        keys=["order_id"],
        partition={"order_date": _day(partition)},
        retry=WORKER_RETRY,
    )


def _run_rounds(uri: str, workers: int, rounds: int, task: Any) -> list[list[Any]]:
    """Runs ``task(uri, worker, round)`` in ``workers`` processes at once, round after round."""
    context = forkserver()
    barrier = context.Barrier(workers)
    with context.Pool(workers, initializer=_set_barrier, initargs=(barrier,)) as pool:
        return [
            pool.starmap_async(
                task, [(uri, worker, round_) for worker in range(workers)], chunksize=1
            ).get(ROUND_TIMEOUT_S)
            for round_ in range(rounds)
        ]


def _report(task: Any, uri: str, worker: int, barrier: Any, results: Any) -> None:
    _set_barrier(barrier)
    try:
        results.put((worker, task(uri, worker, 0)))
    except BaseException as error:
        results.put((worker, error))
        raise


def _run_once(uri: str, workers: int, task: Any, context: Any) -> list[Any]:
    """Runs ``task(uri, worker, 0)`` once in each of ``workers`` processes, released together.

    Plain processes rather than a pool: a Dagster run leaves SIGTERM mapped to
    KeyboardInterrupt in its process, so a pool could not terminate workers that ran one.
    """
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_report, args=(task, uri, worker, barrier, results))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        collected = dict(results.get(timeout=ROUND_TIMEOUT_S) for _ in processes)
        for process in processes:
            process.join(ROUND_TIMEOUT_S)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    for outcome in collected.values():
        if isinstance(outcome, BaseException):
            raise outcome
    return [collected[worker] for worker in range(workers)]


def _assert_reconciles_with_the_log(uri: str, result: UpsertResult) -> None:
    """Counts equal the log's at the versions they claim, and add up across the commit."""
    before, after = result.before.partition_rows, result.partition_rows
    assert before is not None and after is not None
    assert before + result.inserted - result.deleted == after
    at_read = read_row_counts(uri, partition=result.partition, version=result.read_version)
    at_commit = read_row_counts(uri, partition=result.partition, version=result.version)
    assert (at_read.partition_rows, at_commit.partition_rows) == (before, after)
    assert at_commit.table_rows == result.table_rows


def test_eight_partitions_merged_concurrently_for_twenty_rounds_lose_no_row(tmp_path):
    uri = str(tmp_path / "orders")
    # Round 0 also races eight writers to create the table.
    rounds = _run_rounds(uri, PARTITIONS, ROUNDS, _merge_partition_round)

    commits = {}
    for round_, results in enumerate(rounds):
        for partition, result in enumerate(results):
            assert result.partition == {"order_date": _day(partition)}
            expected_updated = ROWS // 2 if round_ else 0
            assert (result.inserted, result.updated, result.deleted) == (ROWS, expected_updated, 0)
            assert result.unchanged == (ROWS // 2 if round_ else 0)
            assert result.partition_rows == (round_ + 1) * ROWS
            assert result.committed
            _assert_reconciles_with_the_log(uri, result)
            commits[result.version] = result
    # Every merge landed at its own version: none lost, none overwritten.
    assert sorted(commits) == list(range(1, PARTITIONS * ROUNDS + 1))

    table = DeltaTable(uri)
    assert table.version() == PARTITIONS * ROUNDS
    for entry in table.history():
        if entry["operation"] != "MERGE":
            continue
        result = commits[entry["version"]]
        assert entry["operationMetrics"]["num_target_rows_inserted"] == result.inserted
        assert entry["operationMetrics"]["num_target_rows_updated"] == result.updated
        assert entry["upsert_pipeline.app_id"] == result.app_id
    last_commit = {}
    for result in commits.values():
        app_id = app_id_for("orders", result.partition)
        last_commit[app_id] = max(last_commit.get(app_id, -1), result.version)
    for partition in range(PARTITIONS):
        app_id = app_id_for("orders", {"order_date": _day(partition)})
        # The scope's latest commit recorded the version it was planned for.
        planned = next(r.read_version for r in commits.values() if r.version == last_commit[app_id])
        assert table.transaction_version(app_id) == planned + 1

    frame = pl.read_delta(uri)
    assert frame.height == PARTITIONS * ROUNDS * ROWS
    assert frame.select("order_date", "order_id").n_unique() == frame.height
    assert read_row_counts(uri).table_rows == frame.height
    for partition in range(PARTITIONS):
        rows = frame.filter(pl.col("order_date") == _day(partition))
        statuses = dict(zip(rows["order_id"], rows["status"], strict=True))
        assert statuses == {key: _expected_status(key, ROUNDS) for key in range(ROUNDS * ROWS)}


def _merge_same_partition(uri: str, writer: int, round_: int) -> UpsertResult:
    status = f"w{writer}r{round_}"
    own_keys = range(1000 * (writer + 1) + 10 * round_, 1000 * (writer + 1) + 10 * round_ + 10)
    batch = pa.concat_tables(
        [order_batch(SHARED_KEYS, status=status), order_batch(own_keys, status=status)]
    )
    _barrier.wait(BARRIER_TIMEOUT_S)
    return upsert(uri, batch, keys=["order_id"], partition={"order_date": DAY}, retry=WORKER_RETRY)


def test_concurrent_merges_of_the_same_partition_are_retried_and_all_land(tmp_path):
    uri = str(tmp_path / "orders")
    results = [
        result
        for round_ in _run_rounds(uri, WRITERS, SAME_PARTITION_ROUNDS, _merge_same_partition)
        for result in round_
    ]

    by_version = sorted(results, key=lambda result: result.version)
    assert [result.version for result in by_version] == list(range(1, len(results) + 1))
    first, *rest = by_version
    assert (first.inserted, first.updated) == (15, 0)
    assert all((result.inserted, result.updated) == (10, 5) for result in rest)
    for result in results:
        _assert_reconciles_with_the_log(uri, result)
        # Each attempt re-read its before-counts: they are the previous commit's after-counts.
        assert result.read_version == result.version - 1
    # The merges overlapped: conflicts happened, and were retried rather than lost.
    assert sum(result.commit_attempts for result in results) > len(results)

    frame = pl.read_delta(uri)
    assert frame.height == scan_rows(uri, DAY) == 5 + 10 * len(results)
    assert frame["order_id"].n_unique() == frame.height
    # No lost update: the shared keys hold what the last commit wrote, and each commit wrote
    # its own writer's status.
    shared = frame.filter(pl.col("order_id") < len(SHARED_KEYS))
    assert set(shared["status"]) == {_status_of(by_version[-1], uri)}
    assert len({_status_of(result, uri) for result in results}) == len(results)


def _status_of(result: UpsertResult, uri: str) -> str:
    """The status the commit at ``result.version`` wrote to the shared keys."""
    at_version = pl.read_delta(uri, version=result.version)
    statuses = set(at_version.filter(pl.col("order_id") < len(SHARED_KEYS))["status"])
    assert len(statuses) == 1
    return statuses.pop()


def _send_the_same_batch(uri: str, writer: int, round_: int) -> UpsertResult:
    batch = order_batch(range(round_ * 100, round_ * 100 + 50), status=f"r{round_}")
    _barrier.wait(BARRIER_TIMEOUT_S)
    return upsert(uri, batch, keys=["order_id"], partition={"order_date": DAY}, retry=WORKER_RETRY)


def test_the_same_batch_sent_concurrently_is_committed_exactly_once(tmp_path):
    uri = str(tmp_path / "orders")
    rounds = _run_rounds(uri, WRITERS, 3, _send_the_same_batch)

    for round_, results in enumerate(rounds, start=1):
        applied = [result for result in results if result.committed]
        assert len(applied) == 1
        assert applied[0].version == round_
        assert applied[0].inserted == 50
        for result in results:
            if result is not applied[0]:
                # Either it lost the commit race and its re-run merged on the new snapshot, or
                # it started after the commit; both find every row in and change nothing.
                assert not result.committed
                assert (result.inserted, result.updated, result.unchanged) == (0, 0, 50)
                assert result.version == round_
            assert result.partition_rows == 50 * round_
    assert DeltaTable(uri).version() == 3
    assert scan_rows(uri, DAY) == 150


def _create_by_racing(uri: str, writer: int, table: int) -> UpsertResult:
    batch = order_batch(range(ROWS), day=_day(writer))
    _barrier.wait(BARRIER_TIMEOUT_S)
    return upsert(
        f"{uri}/t{table}",
        batch,
        keys=["order_id"],
        partition={"order_date": _day(writer)},
        retry=WORKER_RETRY,
    )


def test_writers_racing_to_create_a_table_all_land(tmp_path):
    tables = 5
    rounds = _run_rounds(str(tmp_path), PARTITIONS, tables, _create_by_racing)

    for table, results in enumerate(rounds):
        uri = str(tmp_path / f"t{table}")
        # One CREATE TABLE, not one per racer (raw DeltaTable.create writes several).
        operations = Counter(entry["operation"] for entry in DeltaTable(uri).history())
        assert operations == {"CREATE TABLE": 1, "MERGE": PARTITIONS}
        assert DeltaTable(uri).version() == PARTITIONS
        assert sorted(result.version for result in results) == list(range(1, PARTITIONS + 1))
        assert all(result.inserted == ROWS for result in results)
        assert scan_rows(uri) == read_row_counts(uri).table_rows == PARTITIONS * ROWS


def _materialize_orders(root: str, partition: int, _round: int) -> dict[str, Any]:
    """One Dagster run of the orders asset for one day, as a backfill launches it."""
    import dagster as dg

    resources = {
        "landing": LandingResource(uri=f"{root}/landing"),
        "lake": DeltaMergeResource(lake_uri=f"{root}/lake"),
    }
    key = _day(partition).isoformat()
    _barrier.wait(BARRIER_TIMEOUT_S)
    result = dg.materialize([orders], partition_key=key, resources=resources)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("orders")
    return {name: value.value for name, value in materialization.metadata.items()}


def test_concurrent_runs_of_the_orders_asset_lose_no_commit_and_no_row(tmp_path):
    generate(tmp_path / "landing", days=RUNS)
    # Fresh interpreters, as Dagster's multiprocess executor and run launcher start them.
    spawn = multiprocessing.get_context("spawn")
    metadata = _run_once(str(tmp_path), RUNS, _materialize_orders, spawn)

    uri = str(tmp_path / "lake" / "orders")
    assert sorted(m["delta/version"] for m in metadata) == list(range(1, RUNS + 1))
    for partition, materialization in enumerate(metadata):
        day = _day(partition)
        landed = pq.read_table(tmp_path / "landing" / "orders" / f"{day}.parquet").num_rows
        assert materialization["upsert/rows_inserted"] == landed
        assert materialization["dagster/partition_row_count"] == landed == scan_rows(uri, day)
    assert (
        scan_rows(uri)
        == read_row_counts(uri).table_rows
        == sum(m["upsert/rows_inserted"] for m in metadata)
    )


# In-process, deterministic: a competing commit injected between the snapshot and the commit.


def _interfere(monkeypatch, competitor, times: int) -> Counter[str]:
    """Runs ``competitor`` right after the merge read its snapshot, on the first ``times`` runs.

    The hook is the merge's first count of its snapshot (its before-counts): the competitor
    commits between that read and the merge's own commit.
    """
    calls: Counter[str] = Counter()
    original = merge_module.snapshot_counts

    def read_then_compete(*args, **kwargs):
        state = original(*args, **kwargs)
        if not calls["inside"] and calls["competed"] < times:
            calls["competed"] += 1
            calls["inside"] += 1
            try:
                competitor(calls["competed"])
            finally:
                calls["inside"] -= 1
        return state

    monkeypatch.setattr(merge_module, "snapshot_counts", read_then_compete)
    return calls


def test_a_conflict_is_retried_on_a_fresh_snapshot_with_counts_re_read(table_uri, monkeypatch):
    partition = {"order_date": DAY}
    upsert(table_uri, order_batch(range(1, 6)), keys=["order_id"], partition=partition)
    _interfere(
        monkeypatch,
        lambda n: upsert(
            table_uri, order_batch(range(100, 103)), keys=["order_id"], partition=partition
        ),
        times=1,
    )

    result = upsert(
        table_uri, order_batch(range(4, 9), status="paid"), keys=["order_id"], partition=partition
    )

    assert result.commit_attempts == 2
    assert (result.read_version, result.version) == (2, 3)
    assert result.before.partition_rows == 8  # 5, plus the competitor's 3: re-read
    assert (result.inserted, result.updated, result.unchanged) == (3, 2, 0)
    assert result.partition_rows == scan_rows(table_uri, DAY) == 11
    assert DeltaTable(table_uri).history(1)[0]["upsert_pipeline.commit_attempt"] == 2


def test_conflicts_on_every_attempt_exhaust_the_retries_and_write_nothing(table_uri, monkeypatch):
    partition = {"order_date": DAY}
    upsert(table_uri, order_batch([1]), keys=["order_id"], partition=partition)
    _interfere(
        monkeypatch,
        lambda n: upsert(table_uri, order_batch([100 + n]), keys=["order_id"], partition=partition),
        times=10,
    )

    with pytest.raises(CommitRetriesExhaustedError) as raised:
        upsert(
            table_uri,
            order_batch([50]),
            keys=["order_id"],
            partition=partition,
            retry=RetryPolicy(max_attempts=3, initial_backoff_s=0, max_backoff_s=0),
        )

    assert raised.value.attempts == 3
    assert isinstance(raised.value.__cause__, CommitFailedError)
    assert DeltaTable(table_uri).version() == 4  # the first write and the 3 competitors only
    ids = set(pl.read_delta(table_uri)["order_id"])
    assert ids == {1, 101, 102, 103}


def test_a_merge_into_another_partition_is_not_a_conflict(table_uri, monkeypatch):
    upsert(table_uri, order_batch([1]), keys=["order_id"], partition={"order_date": DAY})
    other = dt.date(2026, 11, 3)
    _interfere(
        monkeypatch,
        lambda n: upsert(
            table_uri,
            order_batch([7], day=other),
            keys=["order_id"],
            partition={"order_date": other},
        ),
        times=1,
    )

    result = upsert(table_uri, order_batch([2]), keys=["order_id"], partition={"order_date": DAY})

    # delta-rs moved the commit past the other partition's: no re-merge was needed.
    assert result.commit_attempts == 1
    assert (result.read_version, result.version, result.concurrent_commits) == (1, 3, 1)
    assert (result.before.partition_rows, result.partition_rows) == (1, 2)
    assert result.table_rows == 3


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (CommitFailedError("Failed to commit transaction: Concurrent transaction failed."), True),
        (CommitFailedError("Failed to commit transaction: 15"), True),
        (CommitFailedError("Protocol changed since last commit: protocol changed"), True),
        (DeltaError("Tried committing existing table version: 0"), True),
        (
            CommitFailedError(
                "The transaction includes Remove action with data change but Delta table is "
                "append-only"
            ),
            False,
        ),
        (DeltaError("Generic error: schema mismatch"), False),
        (OSError("disk full"), False),
        (ValueError("bad"), False),
    ],
)
def test_which_errors_are_commit_conflicts(error, retried):
    assert is_commit_conflict(error) is retried


def test_backoff_is_jittered_capped_and_bounded():
    policy = RetryPolicy(max_attempts=6, initial_backoff_s=0.1, max_backoff_s=0.5)
    rng = random.Random(7)
    for attempt, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        waits = [policy.backoff_s(attempt, rng) for _ in range(200)]
        assert all(0 <= wait <= cap for wait in waits)
        assert max(waits) > cap * 0.8 and min(waits) < cap * 0.2  # spread, not lockstep
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial_backoff_s=1.0, max_backoff_s=0.5)
