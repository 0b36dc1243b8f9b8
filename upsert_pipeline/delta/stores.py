"""Whether an object store makes concurrent Delta commits safe, probed before the first commit.

delta-rs (1.6) commits a version on an object store by creating ``_delta_log/<version>.json``
with a conditional PUT (``If-None-Match: *``); it has no other lock (its DynamoDB locking
provider was removed in 1.6.1). A store that ignores the header lets a racing writer overwrite a
commit, silently. ``ensure_safe_commits`` therefore creates one unique key under the table's
``_delta_log/_probe/`` twice, through the same object_store client settings delta-rs uses
(``obstore``), and refuses the table with ``UnsafeObjectStoreError`` unless the second create is
refused. The probe object is deleted again; a store found safe is remembered for the process,
per scheme, endpoint and bucket.

The one opt-out is explicit: ``UPSERT_PIPELINE_SINGLE_WRITER=true`` in the environment, or the
storage option ``upsert_pipeline_single_writer: "true"`` (delta-rs ignores keys it does not
know), for a deployment that guarantees one writer per table.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Mapping
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotSupportedError,
    PreconditionError,
    UnknownConfigurationKeyError,
)
from obstore.store import ObjectStore, from_url

from upsert_pipeline.delta.errors import UnsafeObjectStoreError
from upsert_pipeline.delta.storage import S3_ENDPOINT_OPTIONS, is_true, option, storage_options_for
from upsert_pipeline.delta.uris import LOCAL_SCHEME, scheme_of

SINGLE_WRITER_ENV = "UPSERT_PIPELINE_SINGLE_WRITER"
"""Set to ``true`` to skip the probe: the deployment promises a single writer per table."""
SINGLE_WRITER_OPTION = "upsert_pipeline_single_writer"
"""The same opt-out as a storage option (what ``DeltaMergeResource.single_writer`` sets)."""
PROBE_PREFIX = "_delta_log/_probe"
"""Where, under the table, the probe object is created and deleted again."""

# object_store's HTTP client options: obstore takes them apart from the store's own keys.
_CLIENT_OPTIONS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "randomize_addresses",
        "read_timeout",
        "timeout",
        "user_agent",
    }
)
_BOOLEAN_CLIENT_OPTIONS = frozenset(
    {"allow_http", "allow_invalid_certificates", "http1_only", "http2_only", "randomize_addresses"}
)
_STORE_PREFIXES = ("aws_", "google_", "azure_")
_ENDPOINT_OPTIONS = (*S3_ENDPOINT_OPTIONS, "azure_storage_endpoint", "azure_endpoint")
_UNKNOWN_KEY = re.compile(r"Configuration key: '([^']+)'")

_safe_stores: set[tuple[str, str, str]] = set()
_unprobed_stores: set[tuple[str, str, str]] = set()
_lock = threading.Lock()
_log = logging.getLogger(__name__)


def single_writer(storage_options: Mapping[str, str] | None) -> bool:
    """Whether the single-writer opt-out is set (storage option, else environment)."""
    chosen = option(storage_options or {}, (SINGLE_WRITER_OPTION,))
    return is_true(chosen if chosen is not None else os.environ.get(SINGLE_WRITER_ENV))


def _store_key(table_uri: str, options: Mapping[str, str]) -> tuple[str, str, str]:
    """(scheme, endpoint, bucket): what one probe's verdict holds for."""
    endpoint = option(options, _ENDPOINT_OPTIONS) or ""
    return scheme_of(table_uri), endpoint, urlsplit(table_uri).netloc


def _client_value(key: str, value: str) -> str | bool:
    return is_true(value) if key in _BOOLEAN_CLIENT_OPTIONS else value


def _obstore_settings(
    options: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str | bool]]:
    """delta-rs's flat options split into obstore's store config and HTTP client options."""
    config: dict[str, str] = {}
    client: dict[str, str | bool] = {}
    for key, value in options.items():
        lowered = key.lower()
        bare = lowered
        for prefix in _STORE_PREFIXES:
            bare = bare.removeprefix(prefix)
        if bare in _CLIENT_OPTIONS:
            client[bare] = _client_value(bare, value)
        elif lowered != SINGLE_WRITER_OPTION:
            config[lowered] = value
    return config, client


def open_store(table_uri: str, options: Mapping[str, str]) -> ObjectStore:
    """The object_store client of the table's prefix, configured as delta-rs's would be.

    delta-rs passes options it does not know on and object_store ignores them there; obstore
    refuses them, so a key it names as unknown (e.g. delta-rs's own ``allow_unsafe_rename``) is
    dropped: it does not change how a PUT is sent.
    """
    config, client = _obstore_settings(options)
    for _ in range(len(config) + 1):
        try:
            # The keys are the store's own (S3, GCS or Azure), checked by obstore at run time.
            return from_url(
                table_uri,
                config=config or None,  # type: ignore[arg-type]
                client_options=client or None,  # type: ignore[arg-type]
            )
        except UnknownConfigurationKeyError as error:
            match = _UNKNOWN_KEY.search(str(error))
            if match is None or match.group(1) not in config:
                raise
            del config[match.group(1)]
    raise AssertionError("unreachable")  # pragma: no cover


def _unsafe(table_uri: str, why: str) -> UnsafeObjectStoreError:
    return UnsafeObjectStoreError(
        f"refusing to commit to {table_uri}: {why}. delta-rs makes concurrent commits safe only "
        "through conditional PUTs (If-None-Match: *), so on this store two writers racing for "
        "one version would lose a commit without an error. Use a store that honours the header "
        "(AWS S3, MinIO, Cloudflare R2, GCS, Azure; no proxy that strips it), or, if exactly "
        f"one process ever writes each table, opt out with {SINGLE_WRITER_ENV}=true"
    )


def probe_conditional_put(table_uri: str, storage_options: Mapping[str, str]) -> None:
    """Creates a unique key under the table twice; the store must refuse the second create.

    Args:
        table_uri: The table's object-store URI (``s3://bucket/prefix/orders``).
        storage_options: Its options, in delta-rs's keys.

    Raises:
        UnsafeObjectStoreError: The second create succeeded, or the store (as configured)
            cannot create conditionally at all. The probe object is deleted either way.
        obstore.exceptions.BaseError: The store could not be written at all (credentials,
            bucket, network); it names the cause.
    """
    store = open_store(table_uri, storage_options)
    key = f"{PROBE_PREFIX}/{uuid.uuid4()}"
    try:
        try:
            obstore.put(store, key, b"", mode="create")
        except NotSupportedError as error:
            why = f"the store cannot create objects conditionally ({error})"
            raise _unsafe(table_uri, why) from error
        try:
            obstore.put(store, key, b"", mode="create")
        except (AlreadyExistsError, PreconditionError):
            return
        raise _unsafe(
            table_uri, f"a second conditional create of {key} succeeded instead of failing (412)"
        )
    finally:
        with contextlib.suppress(BaseError):
            obstore.delete(store, key)


def ensure_safe_commits(table_uri: str, storage_options: Mapping[str, str] | None) -> None:
    """Makes sure the table's object store refuses a second create, before anything commits.

    A local table, the single-writer opt-out, or a store already found safe in this process (same
    scheme, endpoint and bucket) returns at once; otherwise ``probe_conditional_put`` runs.

    Args:
        table_uri: The table's URI or local path.
        storage_options: Its options (delta-rs's keys); the store's standard environment
            variables fill what they leave out.

    Raises:
        UnsafeObjectStoreError: The store would let a concurrent commit be lost.

    Example:
        >>> ensure_safe_commits("data/lake/orders", None)  # local: nothing to probe
    """
    if scheme_of(table_uri) == LOCAL_SCHEME:
        return
    options = storage_options_for(table_uri, overrides=storage_options)
    key = _store_key(table_uri, options)
    if single_writer(options):
        with _lock:
            if key not in _unprobed_stores:
                _unprobed_stores.add(key)
                _log.warning("%s: single-writer opt-out set; conditional PUT not probed", key)
        return
    with _lock:
        if key in _safe_stores:
            return
        probe_conditional_put(table_uri, options)
        _safe_stores.add(key)


def forget_probed_stores() -> None:
    """Forgets every store found safe (for tests that change a store behind the same address)."""
    with _lock:
        _safe_stores.clear()
        _unprobed_stores.clear()
