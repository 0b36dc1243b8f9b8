"""Recovery claims: of runs creating the same claim at once exactly one gets it, a stale claim is
taken over by exactly one run, a live one by none; claims live beside the table, where a vacuum
never touches them. Local disk and moto's S3."""

import datetime as dt
import os
import threading

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from upsert_pipeline.delta import DisallowedUriError, upsert
from upsert_pipeline.delta.claims import Claim, RecoveryClaims, claims_uri
from upsert_pipeline.delta.storage import storage_options_for
from upsert_pipeline_tests.object_store import keys_under, moto_server, new_bucket, s3_env

RUNS = 8
DEAD = "dead-run"


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def table(request, tmp_path, monkeypatch):
    """A table's URI and its delta-rs options (the table itself need not exist)."""
    if request.param == "local":
        yield str(tmp_path / "lake" / "orders"), None
        return
    endpoint = request.getfixturevalue("endpoint")
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    uri = f"s3://{new_bucket(endpoint)}/lake/orders"
    yield uri, storage_options_for(uri)


def _race(table, take_over) -> list[Claim | None]:
    """Each of RUNS threads, with a store client of its own, claims commit 3 of DEAD at once."""
    uri, options = table
    barrier = threading.Barrier(RUNS)
    results: list[Claim | None] = [None] * RUNS
    errors: list[BaseException] = []

    def run(index: int) -> None:
        claims = RecoveryClaims(uri, options)
        barrier.wait()
        try:
            results[index] = claims.claim(3, DEAD, claimant=f"run-{index}", take_over=take_over)
        except BaseException as error:  # a thread that failed must not pass as one that lost
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_of_runs_claiming_one_commit_at_once_exactly_one_gets_it(table):
    results = _race(table, take_over=lambda held: False)
    [winner] = [claim for claim in results if claim is not None]
    assert winner.generation == 0
    assert RecoveryClaims(*table).latest(3, DEAD) == winner
    # Its claimant asking again gets the same claim; another commit is claimed apart.
    claims = RecoveryClaims(*table)
    assert claims.claim(3, DEAD, claimant=winner.claimant, take_over=lambda h: False) == winner
    assert claims.latest(4, DEAD) is None
    assert claims.latest(3, "another-run") is None


def test_a_stale_claim_is_taken_over_by_one_run_and_a_live_one_by_none(table):
    claims = RecoveryClaims(*table)
    first = claims.claim(3, DEAD, claimant="died", take_over=lambda held: False)
    assert first is not None and first.generation == 0
    # The claimant may still be alive: nobody takes its claim.
    assert claims.claim(3, DEAD, claimant="other", take_over=lambda held: False) is None

    results = _race(table, take_over=lambda held: held.claimant == "died")
    [winner] = [claim for claim in results if claim is not None]
    assert winner.generation == 1
    assert claims.latest(3, DEAD) == winner


def test_claims_live_beside_the_table_and_a_vacuum_leaves_them(tmp_path):
    uri = str(tmp_path / "lake" / "orders")
    day = dt.date(2026, 11, 1)
    for values in ([1, 2], [9, 2]):  # the second merge rewrites the first's file
        upsert(uri, pa.table({"id": [1, 2], "day": [day] * 2, "v": values}), keys=["id"])
    claim = RecoveryClaims(uri).claim(1, DEAD, claimant="run", take_over=lambda held: False)
    assert claim is not None
    assert claims_uri(uri) == str(tmp_path / "lake" / "_upsert_pipeline" / "recovery" / "orders")
    with pytest.raises(DisallowedUriError, match="cannot be named '_upsert_pipeline'"):
        claims_uri(str(tmp_path / "lake" / "_upsert_pipeline"))
    claim_file = os.path.join(claims_uri(uri), f"{1:020d}-{DEAD}", "0.json")
    assert os.path.isfile(claim_file)

    table = DeltaTable(uri)
    # ``full``: every file under the table that the log does not name, not only removed ones.
    vacuumed = table.vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True
    )
    assert vacuumed  # it deleted the rewritten file...
    assert os.path.isfile(claim_file)  # ...and not the claim
    assert all("_upsert_pipeline" not in path for path in table.file_uris())


def test_claims_on_s3_are_objects_beside_the_table(endpoint, monkeypatch):
    for name, value in s3_env(endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = new_bucket(endpoint)
    uri = f"s3://{bucket}/lake/orders"
    claims = RecoveryClaims(uri, storage_options_for(uri))
    assert claims.claim(7, DEAD, claimant="run", take_over=lambda held: False) is not None
    assert keys_under(endpoint, bucket) == [
        f"lake/_upsert_pipeline/recovery/orders/{7:020d}-{DEAD}/0.json"
    ]
