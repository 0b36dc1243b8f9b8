"""Object-store settings, resolved once, in the form the Delta writer and the landing reader take.

A lake or landing zone on an object store is configured through that store's standard
environment (for S3 and S3-compatible stores such as MinIO or R2: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``), optionally
overridden by explicit options. ``storage_options_for`` resolves them into one mapping, in
delta-rs's (object_store's) keys; delta-rs takes it as ``storage_options``, and
``arrow_filesystem`` turns the same mapping into the pyarrow filesystem that reads the landing
batches, so the writer and the reader can never see two different stores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from upsert_pipeline.delta.uris import AZURE_SCHEMES, LOCAL_SCHEME, scheme_of

S3_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
)
"""The standard variables of S3 and S3-compatible stores that are resolved for ``s3://``."""
GCS_VARIABLES = (
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
"""The standard variables of Google Cloud Storage, resolved for ``gs://``."""
AZURE_VARIABLES = (
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
)
"""The standard variables of Azure Blob Storage / ADLS Gen2, resolved for ``abfs(s)://``."""
VARIABLES_BY_SCHEME: Mapping[str, tuple[str, ...]] = {
    "s3": S3_VARIABLES,
    "gs": GCS_VARIABLES,
    "abfs": AZURE_VARIABLES,
    "abfss": AZURE_VARIABLES,
}

# object_store's aliases of the options the pyarrow filesystems need, all lower case.
_ACCESS_KEY = ("aws_access_key_id", "access_key_id")
_SECRET_KEY = ("aws_secret_access_key", "secret_access_key")
_SESSION_TOKEN = ("aws_session_token", "session_token", "aws_token", "token")
_REGION = ("aws_region", "region", "aws_default_region", "default_region")
S3_ENDPOINT_OPTIONS = ("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint")
"""object_store's names of an S3 endpoint option."""
_AZURE_KEY = ("azure_storage_account_key", "account_key", "access_key")
_AZURE_SAS = ("azure_storage_sas_token", "sas_token", "sas_key")

_TRUE = frozenset({"1", "true", "yes", "on"})


def is_true(value: str | None) -> bool:
    """Whether an option's text means yes (``true``, ``1``, ``yes``, ``on``; any case)."""
    return value is not None and value.strip().lower() in _TRUE


def option(options: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` set in ``options``, keys compared case-insensitively."""
    lowered = {key.lower(): value for key, value in options.items()}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def storage_options_for(
    uri: str,
    *,
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The object-store options of ``uri``: its store's standard variables, then ``overrides``.

    Args:
        uri: A local path or an object-store URI (``s3://bucket/prefix``, ...).
        overrides: Explicit options (delta-rs's keys, e.g. from a resource's config); they win
            over the environment.
        environ: The environment to read; ``os.environ`` when ``None``.

    Returns:
        The options in delta-rs's keys (the variables' names); empty for a local path.

    Example:
        >>> storage_options_for("s3://lake/orders", environ={"AWS_REGION": "eu-west-1"})
        {'AWS_REGION': 'eu-west-1'}
    """
    env = os.environ if environ is None else environ
    names = VARIABLES_BY_SCHEME.get(scheme_of(uri), ())
    resolved = {name: env[name] for name in names if env.get(name)}
    resolved.update(overrides or {})
    return resolved


def _s3_filesystem(options: Mapping[str, str]) -> pafs.S3FileSystem:
    endpoint = option(options, S3_ENDPOINT_OPTIONS)
    scheme, endpoint_override = None, None
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        scheme, endpoint_override = parts.scheme, parts.netloc
    return pafs.S3FileSystem(
        access_key=option(options, _ACCESS_KEY),
        secret_key=option(options, _SECRET_KEY),
        session_token=option(options, _SESSION_TOKEN),
        region=option(options, _REGION),
        endpoint_override=endpoint_override,
        scheme=scheme,
    )


def arrow_filesystem(uri: str, options: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem that opens ``uri`` with ``options``, and the path inside it.

    Args:
        uri: A local path or a URI on a scheme of ``uris.DEFAULT_SCHEMES``.
        options: The options of ``storage_options_for`` (delta-rs's keys).

    Returns:
        ``(filesystem, path)``, ready for ``pyarrow.parquet.read_table(path, filesystem=...)``.
    """
    scheme = scheme_of(uri)
    if scheme == LOCAL_SCHEME:
        path = uri.removeprefix("file://") if uri.startswith("file://") else uri
        return pafs.LocalFileSystem(), str(PurePosixPath(path))
    if scheme == "s3":
        return _s3_filesystem(options), uri.split("://", 1)[1]
    filesystem, path = pafs.FileSystem.from_uri(uri)
    if scheme in AZURE_SCHEMES and (option(options, _AZURE_KEY) or option(options, _AZURE_SAS)):
        account = urlsplit(uri).netloc.split("@", 1)[1].split(".", 1)[0]
        filesystem = pafs.AzureFileSystem(
            account,
            account_key=option(options, _AZURE_KEY),
            sas_token=option(options, _AZURE_SAS),
        )
    return filesystem, path
