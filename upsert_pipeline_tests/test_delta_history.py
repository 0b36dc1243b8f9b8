"""History read by version from the log's commit files: commits without commitInfo, cleaned-up
versions, data changes, maintenance, and net rows in delta-rs's and Spark's spelling."""

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from upsert_pipeline.delta.history import (
    PIPELINE_MARKER,
    Commit,
    HistoryUnavailableError,
    RowChanges,
    commits_between,
    net_rows,
    parse_commit,
    row_changes,
)
from upsert_pipeline.delta.log_files import commit_file_name, log_filesystem
from upsert_pipeline_tests.fixture_tables import copy_fixture


def _write_log(table: Path, version: int, actions: list[dict]) -> None:
    log = table / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    (log / commit_file_name(version)).write_text("\n".join(json.dumps(a) for a in actions) + "\n")


_SCHEMA = json.dumps(
    {"type": "struct", "fields": [{"name": "id", "type": "long", "nullable": True, "metadata": {}}]}
)


def _add(path: str, rows: int, *, data_change: bool = True) -> dict:
    return {
        "add": {
            "path": path,
            "partitionValues": {},
            "size": 100,
            "modificationTime": 0,
            "dataChange": data_change,
            "stats": json.dumps({"numRecords": rows}),
        }
    }


def _hand_made_table(tmp_path: Path) -> Path:
    """v0 create + 3 rows (delta-rs metrics), v1 append without commitInfo, v2 a compaction
    without commitInfo, v3 a Spark DELETE."""
    table = tmp_path / "hand"
    _write_log(
        table,
        0,
        [
            {
                "commitInfo": {
                    "timestamp": 1,
                    "operation": "WRITE",
                    "operationParameters": {"mode": "ErrorIfExists"},
                    "operationMetrics": {"num_added_rows": 3, "num_added_files": 1},
                }
            },
            {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
            {
                "metaData": {
                    "id": "t",
                    "format": {"provider": "parquet", "options": {}},
                    "schemaString": _SCHEMA,
                    "partitionColumns": [],
                    "configuration": {},
                }
            },
            _add("a.parquet", 3),
        ],
    )
    _write_log(table, 1, [_add("b.parquet", 2)])
    _write_log(
        table,
        2,
        [
            {"remove": {"path": "a.parquet", "dataChange": False, "deletionTimestamp": 5}},
            {"remove": {"path": "b.parquet", "dataChange": False, "deletionTimestamp": 5}},
            _add("c.parquet", 5, data_change=False),
        ],
    )
    _write_log(
        table,
        3,
        [
            {
                "commitInfo": {
                    "timestamp": 9,
                    "operation": "DELETE",
                    "operationMetrics": {"numDeletedRows": "2", "numCopiedRows": "3"},
                    "engineInfo": "Apache-Spark/3.5.0 Delta-Lake/3.2.0",
                }
            },
            {"remove": {"path": "c.parquet", "dataChange": True, "deletionTimestamp": 9}},
            _add("d.parquet", 3),
        ],
    )
    return table


def test_commits_without_commit_info_keep_their_version(tmp_path):
    table = _hand_made_table(tmp_path)
    # What this module replaces: history() drops v1 and v2 and labels the rest by counting down.
    labels = {e["version"]: e.get("operation") for e in DeltaTable(str(table)).history()}
    assert labels != {0: "WRITE", 3: "DELETE"}

    commits = commits_between(str(table), -1, 3)

    assert [c.version for c in commits] == [0, 1, 2, 3]
    assert [c.operation for c in commits] == ["WRITE", None, None, "DELETE"]
    assert [c.has_commit_info for c in commits] == [True, False, False, True]
    assert [c.data_change for c in commits] == [True, True, False, True]
    assert [c.label for c in commits][1] == "v1 unknown operation"
    assert commits[3].engine == "Apache-Spark/3.5.0 Delta-Lake/3.2.0"
    # unknown operation with data: unknown net; without data: zero, and maintenance
    assert [net_rows(c) for c in commits] == [3, None, 0, -2]
    assert [c.is_maintenance for c in commits] == [False, False, True, False]


def test_a_range_is_read_by_version(tmp_path):
    table = _hand_made_table(tmp_path)
    assert [c.version for c in commits_between(str(table), 1, 3)] == [2, 3]
    assert commits_between(str(table), 3, 3) == []


def test_a_cleaned_up_commit_file_is_history_unavailable(tmp_path):
    table = _hand_made_table(tmp_path)
    (table / "_delta_log" / commit_file_name(1)).unlink()
    with pytest.raises(HistoryUnavailableError, match=r"\[1\]"):
        commits_between(str(table), 0, 3)
    assert [c.version for c in commits_between(str(table), 1, 3)] == [2, 3]


def test_the_fixture_merges_are_read_with_their_spark_metrics(tmp_path):
    uri = copy_fixture("cdf-table-with-cdc-and-dvs", tmp_path)
    commits = {c.version: c for c in commits_between(uri, -1, 25)}

    assert len(commits) == 26
    assert commits[18].operation == "MERGE" and commits[22].operation == "MERGE"
    assert row_changes(commits[18]) == RowChanges(inserted=2, updated=1, deleted=0, copied=0)
    assert row_changes(commits[22]) == RowChanges(inserted=1, updated=0, deleted=1, copied=0)
    assert net_rows(commits[18]) == 2 and net_rows(commits[22]) == 0
    # WRITE append (numOutputRows), DELETE (numDeletedRows), UPDATE (never a net row)
    assert net_rows(commits[25]) == 3
    assert net_rows(commits[24]) == -6
    assert row_changes(commits[20]) == RowChanges(inserted=0, updated=1, deleted=0, copied=0)
    assert net_rows(commits[20]) == 0
    # Databricks OPTIMIZE: no dataChange, so maintenance, and no net row
    assert commits[23].operation == "OPTIMIZE" and not commits[23].data_change
    assert commits[23].is_maintenance and net_rows(commits[23]) == 0
    # Every net row of the table's life adds up to the truth the fixture's README gives (5).
    assert sum(net_rows(c) or 0 for c in commits.values()) == 5
    assert all(net_rows(c) is not None for c in commits.values())


def _commit(operation: str | None, metrics: dict, **kwargs) -> Commit:
    return Commit(version=1, operation=operation, pipeline_asset=None, metrics=metrics, **kwargs)


@pytest.mark.parametrize(
    ("commit", "expected"),
    [
        (_commit("MERGE", {"num_target_rows_inserted": 4, "num_target_rows_deleted": 1}), 3),
        (_commit("MERGE", {"numTargetRowsInserted": "4", "numTargetRowsDeleted": "1"}), 3),
        (_commit("MERGE", {"numTargetRowsInserted": "4"}), None),
        (_commit("WRITE", {"numOutputRows": "7"}, removed_rows=0), 7),
        (_commit("WRITE", {"num_added_rows": 7}, removed_rows=0), 7),
        # an overwrite whose removed files lack stats: unknown; with them: known
        (_commit("WRITE", {"num_added_rows": 7}, removed_rows=None), None),
        (_commit("WRITE", {"numOutputRows": "7"}, removed_rows=10), -3),
        (_commit("DELETE", {"numDeletedRows": "5"}), -5),
        (_commit("DELETE", {"num_deleted_rows": 5}), -5),
        (_commit("DELETE", {}), None),
        (_commit("UPDATE", {"numUpdatedRows": "5"}), 0),
        (_commit("UPDATE", {}), 0),
        (_commit("STREAMING UPDATE", {"numOutputRows": "5"}), None),
        (_commit(None, {}), None),
        (_commit("OPTIMIZE", {"numRemovedFiles": "3"}, data_change=False), 0),
    ],
)
def test_net_rows_in_both_spellings(commit, expected):
    assert net_rows(commit) == expected


def test_removed_rows_subtract_deletion_vectors():
    commit = parse_commit(
        4,
        [
            {"commitInfo": {"operation": "WRITE", "operationMetrics": {"numOutputRows": "2"}}},
            {
                "remove": {
                    "path": "x.parquet",
                    "dataChange": True,
                    "stats": json.dumps({"numRecords": 10}),
                    "deletionVector": {"cardinality": 4},
                }
            },
            _add("y.parquet", 2),
        ],
    )
    assert commit.removed_rows == 6
    assert net_rows(commit) == -4


def test_delta_rs_commits_with_pipeline_markers(tmp_path):
    uri = str(tmp_path / "t")
    batch = pa.table({"id": [1, 2, 3], "p": ["a", "a", "b"]})
    write_deltalake(uri, batch, partition_by=["p"])
    write_deltalake(uri, batch, partition_by=["p"], mode="append")
    table = DeltaTable(uri)
    marker = CommitProperties(custom_metadata={PIPELINE_MARKER: "orders"})
    table.optimize.compact(commit_properties=marker)
    table.vacuum(
        retention_hours=0, dry_run=False, enforce_retention_duration=False, commit_properties=marker
    )
    write_deltalake(uri, batch, partition_by=["p"], mode="overwrite")

    commits = commits_between(uri, 0, DeltaTable(uri).version())

    assert [c.operation for c in commits] == [
        "WRITE",
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "WRITE",
    ]
    assert [c.is_maintenance for c in commits] == [False, True, True, True, False]
    assert [c.pipeline_asset for c in commits][1:4] == ["orders"] * 3
    # delta-rs writes removes without stats: the overwrite's net is unknown, never a guess
    assert [net_rows(c) for c in commits] == [3, 0, 0, 0, None]


def test_s3_uris_open_an_s3_filesystem_with_delta_rs_options():
    filesystem, log = log_filesystem(
        "s3://lake/orders",
        {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        },
    )
    assert filesystem.type_name == "s3"
    assert filesystem.region == "eu-west-1"
    assert log == "lake/orders/_delta_log"


def test_history_reads_an_s3_table_with_its_storage_options(tmp_path):
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        port = server._server.server_port
        options = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ALLOW_HTTP": "true",
        }
        boto3.client(
            "s3",
            endpoint_url=options["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket="lake")
        uri = "s3://lake/t"
        write_deltalake(uri, pa.table({"id": [1, 2]}), storage_options=options)
        DeltaTable(uri, storage_options=options).delete("id = 1")

        commits = commits_between(uri, -1, 1, storage_options=options)

        assert [c.label for c in commits] == ["v0 WRITE", "v1 DELETE"]
        assert [net_rows(c) for c in commits] == [2, -1]
        with pytest.raises(HistoryUnavailableError):
            commits_between(uri, 1, 2, storage_options=options)
    finally:
        server.stop()
