"""Create-only claims that let exactly one run recover a commit whose own run died.

Several runs of one asset (its partitions, run at once) each look for unrecorded commits before
they merge, so two of them can find the same dead run's commit at the same instant. Before a run
records such a commit it creates a claim object; the create is conditional (the object store's
``If-None-Match: *`` PUT, the same create-only PUT delta-rs commits with and
``stores.ensure_safe_commits`` probes; on local disk a hard link, which fails if the name exists,
so a claim is never seen half-written), so of the runs racing for it exactly one succeeds, and
only that run records the commit.

A claim's name says what it claims: ``<lake>/_upsert_pipeline/recovery/<table>/<version>-<dead
run id>/<generation>.json``, beside the table (never inside it or its ``_delta_log``: no Delta
reader, writer or vacuum ever lists it). Its body names the claiming run and when it claimed.
The claiming run can die too, before it records the commit. A claim is therefore never deleted
or overwritten: it is *superseded* by creating the next generation (``1.json`` after
``0.json``), again create-only, so that of the runs that find the same stale claim exactly one
takes it over. Whether a claim is stale is the caller's decision (``take_over``: the Dagster layer
asks its instance whether the claiming run is over); the caller must then check, holding the new
claim, whether the previous claimant recorded the commit before it ended.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import obstore
from obstore.exceptions import AlreadyExistsError, PreconditionError
from obstore.store import LocalStore, ObjectStore

from upsert_pipeline.delta.errors import DisallowedUriError
from upsert_pipeline.delta.storage import storage_options_for
from upsert_pipeline.delta.stores import open_store
from upsert_pipeline.delta.uris import LOCAL_SCHEME, scheme_of

CLAIMS_FOLDER = "_upsert_pipeline/recovery"
"""Where, under the lake root (beside its tables), the claims of each table are kept."""
MAX_TAKEOVERS = 16
"""How many generations one ``claim`` call tries before leaving the commit to the others."""


@dataclass(frozen=True)
class Claim:
    """One generation of the claim on recovering one commit.

    Attributes:
        version: The commit's version.
        dead_run_id: The run that wrote the commit and died before recording it.
        generation: 0 for the first claim; each takeover creates the next.
        claimant: The run that created this generation (the one allowed to record the commit).
        claimed_at_ms: When it was created (milliseconds since the epoch, the claimant's clock).
    """

    version: int
    dead_run_id: str
    generation: int
    claimant: str
    claimed_at_ms: int


def claims_uri(table_uri: str) -> str:
    """Where the claims of the table at ``table_uri`` live: ``<lake>/_upsert_pipeline/recovery/
    <table>``, ``<lake>`` being the folder that holds the table.

    Raises:
        DisallowedUriError: The table is named like the claims' own folder.
    """
    parent, _, table = table_uri.rstrip("/").rpartition("/")
    if table == CLAIMS_FOLDER.partition("/")[0]:
        raise DisallowedUriError(f"{table_uri}: a table cannot be named {table!r} (the claims)")
    return f"{parent}/{CLAIMS_FOLDER}/{table}"


class RecoveryClaims:
    """The recovery claims of one Delta table (local disk or object store).

    Args:
        table_uri: The table's URI or local path.
        storage_options: Its options, in delta-rs's keys (the store's environment fills the rest).

    Example:
        >>> claims = RecoveryClaims("data/lake/orders")
        >>> claims.create(7, "0b5e...", 0, claimant="9f1c...")  # None: another run has it
    """

    def __init__(self, table_uri: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.uri = claims_uri(table_uri)
        self._store = _open(self.uri, storage_options)

    def create(
        self, version: int, dead_run_id: str, generation: int, *, claimant: str
    ) -> Claim | None:
        """Creates generation ``generation`` of the claim on commit ``version`` of
        ``dead_run_id``; ``None`` when that generation exists already (another run made it)."""
        claim = Claim(version, dead_run_id, generation, claimant, int(time.time() * 1000))
        body = {
            "version": version,
            "dead_run_id": dead_run_id,
            "generation": generation,
            "claimant": claimant,
            "claimed_at_ms": claim.claimed_at_ms,
        }
        try:
            obstore.put(
                self._store,
                _key(version, dead_run_id, generation),
                json.dumps(body).encode(),
                mode="create",
            )
        except (AlreadyExistsError, PreconditionError):
            return None
        return claim

    def latest(self, version: int, dead_run_id: str) -> Claim | None:
        """The newest generation of the claim on the commit, or ``None`` if nobody claimed it."""
        folder = _folder(version, dead_run_id)
        generations = [
            int(name.removesuffix(".json"))
            for batch in obstore.list(self._store, prefix=f"{folder}/")
            for meta in batch
            if (name := meta["path"].rpartition("/")[2]).removesuffix(".json").isdigit()
        ]
        if not generations:
            return None
        generation = max(generations)
        body = json.loads(
            bytes(obstore.get(self._store, _key(version, dead_run_id, generation)).bytes())
        )
        return Claim(
            version, dead_run_id, generation, str(body["claimant"]), int(body["claimed_at_ms"])
        )

    def claim(
        self,
        version: int,
        dead_run_id: str,
        *,
        claimant: str,
        take_over: Callable[[Claim], bool],
    ) -> Claim | None:
        """The claim of ``claimant`` on the commit, created now (or found: it claimed before),
        or ``None`` when another run holds it.

        A claim of another run is superseded only when ``take_over`` says that run is over; of
        several runs superseding the same claim at once, one creates the next generation and the
        others get ``None``.
        """
        for _ in range(MAX_TAKEOVERS):
            held = self.latest(version, dead_run_id)
            if held is not None and held.claimant == claimant:
                return held
            if held is not None and not take_over(held):
                return None
            generation = 0 if held is None else held.generation + 1
            created = self.create(version, dead_run_id, generation, claimant=claimant)
            if created is not None:
                return created
        return None


def _folder(version: int, dead_run_id: str) -> str:
    return f"{version:020d}-{dead_run_id}"


def _key(version: int, dead_run_id: str, generation: int) -> str:
    return f"{_folder(version, dead_run_id)}/{generation}.json"


def _open(uri: str, storage_options: Mapping[str, str] | None) -> ObjectStore:
    if scheme_of(uri) == LOCAL_SCHEME:
        path = os.path.abspath(uri.removeprefix("file://"))
        return LocalStore(path, mkdir=True)
    return open_store(uri, storage_options_for(uri, overrides=storage_options))
