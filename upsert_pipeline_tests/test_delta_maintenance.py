"""maintain(): compaction of the partitions that need it, vacuum's retention, a checkpoint, and
the row counts before and after, from the log and equal to a scan."""

import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import upsert
from upsert_pipeline.delta.history import PIPELINE_MARKER, commits_between
from upsert_pipeline.delta.log_files import commit_file_name
from upsert_pipeline.delta.maintenance import MaintenancePolicy, RetentionTooShortError, maintain
from upsert_pipeline_tests.conftest import DAY, OTHER_DAY, order_batch, scan_rows

QUIET_DAY = dt.date(2026, 11, 4)


def redeliver(table_uri: str, day: dt.date, times: int, *, rows: int = 20) -> None:
    """``times`` late deliveries of a day, each bringing new orders: a small file each."""
    base = {DAY: 0, OTHER_DAY: 1000, QUIET_DAY: 2000}[day]
    for delivery in range(times):
        first = base + rows * delivery
        batch = order_batch(range(first, first + rows), day=day, amount=Decimal(f"{delivery}.50"))
        upsert(table_uri, batch, keys=["order_id"], partition={"order_date": day})


@pytest.fixture
def fragmented(table_uri):
    redeliver(table_uri, DAY, 6)
    redeliver(table_uri, OTHER_DAY, 6)
    redeliver(table_uri, QUIET_DAY, 1)
    return table_uri


def _files(table_uri: str, day: dt.date) -> set[str]:
    actions = pa.table(DeltaTable(table_uri).get_add_actions(flatten=True)).to_pydict()
    return {
        path
        for path, value in zip(actions["path"], actions["partition.order_date"], strict=True)
        if value == day
    }


def test_compaction_keeps_every_count_and_reduces_files(fragmented):
    rows = {day: scan_rows(fragmented, day) for day in (DAY, OTHER_DAY, QUIET_DAY)}
    files_before = {day: len(_files(fragmented, day)) for day in (DAY, OTHER_DAY, QUIET_DAY)}
    assert files_before[DAY] > 2 and files_before[QUIET_DAY] == 1

    result = maintain(
        fragmented,
        policy=MaintenancePolicy(max_small_files=2),
        commit_metadata={PIPELINE_MARKER: "orders"},
    )

    assert sorted(result.partitions_compacted) == ["order_date=2026-11-02", "order_date=2026-11-03"]
    assert len(_files(fragmented, DAY)) == len(_files(fragmented, OTHER_DAY)) == 1
    assert _files(fragmented, QUIET_DAY) and result.files_after == 3
    assert result.files_before == sum(files_before.values())
    assert result.files_compacted == files_before[DAY] + files_before[OTHER_DAY]
    assert result.files_written == 2
    assert result.bytes_after < result.bytes_before
    # counts unchanged, from the log, and equal to a scan
    assert result.changed_counts == [] and result.unknown_counts == []
    assert result.table_rows_before == result.table_rows_after == scan_rows(fragmented)
    assert result.partition_rows_after == {
        f"order_date={day}": rows[day] for day in (DAY, OTHER_DAY, QUIET_DAY)
    }
    assert result.partition_rows_before == result.partition_rows_after
    # its commits: two OPTIMIZEs with the pipeline's marker, none a data change, a checkpoint
    commits = commits_between(fragmented, result.version_before, result.version_after)
    assert [c.operation for c in commits] == ["OPTIMIZE", "OPTIMIZE"]
    assert all(c.is_maintenance and c.pipeline_asset == "orders" for c in commits)
    assert result.commit_versions == (result.version_before + 1, result.version_before + 2)
    assert result.concurrent_commits == ()
    assert result.checkpoint_version == result.version_after
    assert (Path(fragmented) / "_delta_log" / "_last_checkpoint").exists()
    # the default retention (7 days) keeps the files just removed
    assert result.files_vacuumed == 0


def test_a_table_that_needs_nothing_is_left_as_it_was(fragmented):
    version = DeltaTable(fragmented).version()
    result = maintain(fragmented, policy=MaintenancePolicy(max_small_files=100, checkpoint=False))
    assert result.partitions_compacted == () and result.commit_versions == ()
    assert result.version_after == version and result.files_after == result.files_before
    assert result.checkpoint_version is None


def test_a_merge_after_compaction_counts_as_before(fragmented):
    maintain(fragmented, policy=MaintenancePolicy(max_small_files=2))
    result = upsert(
        fragmented,
        order_batch(range(100, 130), day=DAY, amount=Decimal("99.00")),
        keys=["order_id"],
        partition={"order_date": DAY},
    )
    assert (result.inserted, result.updated) == (10, 20)
    assert result.partition_rows == scan_rows(fragmented, DAY) == 130
    assert result.before.partition_rows + result.inserted - result.deleted == result.partition_rows


def _age_tombstones(table_uri: str, version: int, hours: int) -> None:
    """Rewrites a commit's remove actions as if made ``hours`` ago (test setup on the log)."""
    path = Path(table_uri) / "_delta_log" / commit_file_name(version)
    old = int((time.time() - hours * 3600) * 1000)
    actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for action in actions:
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = old
    path.write_text("".join(json.dumps(action) + "\n" for action in actions))


def test_vacuum_deletes_files_older_than_the_retention_and_keeps_younger_ones(fragmented):
    old_files = _files(fragmented, DAY)
    table = DeltaTable(fragmented)
    table.optimize.compact(partition_filters=[("order_date", "=", str(DAY))])
    _age_tombstones(fragmented, table.version(), hours=48)
    young_files = _files(fragmented, OTHER_DAY)

    result = maintain(
        fragmented,
        policy=MaintenancePolicy(
            max_small_files=2, retention_hours=24, enforce_retention_duration=False
        ),
    )

    assert result.partitions_compacted == ("order_date=2026-11-03",)
    assert result.files_vacuumed == len(old_files)
    assert not any((Path(fragmented) / path).exists() for path in old_files)
    assert all((Path(fragmented) / path).exists() for path in young_files)
    assert result.changed_counts == []
    commits = commits_between(fragmented, result.version_before, result.version_after)
    ops = [c.operation for c in commits]
    assert ops == ["OPTIMIZE", "VACUUM START", "VACUUM END"]


def test_a_retention_shorter_than_the_table_allows_is_refused_before_any_write(fragmented):
    version = DeltaTable(fragmented).version()
    with pytest.raises(RetentionTooShortError, match="168 h"):
        maintain(fragmented, policy=MaintenancePolicy(max_small_files=2, retention_hours=1))
    assert DeltaTable(fragmented).version() == version
