"""Reading a Delta table's commit files (``_delta_log/<version:020d>.json``) by version.

Through ``pyarrow.fs``, for a local path and ``s3://`` alike; ``storage_options`` take delta-rs's
spelling (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ALLOW_HTTP``, ...), so
the options a table is opened with in delta-rs open its log here too. Reads only the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyarrow import fs as pafs

LOG_DIR = "_delta_log"


def commit_file_name(version: int) -> str:
    """The name of a version's commit file, e.g. ``00000000000000000018.json``."""
    return f"{version:020d}.json"


def _option(options: Mapping[str, str], *names: str) -> str | None:
    lowered = {key.lower(): value for key, value in options.items()}
    for name in names:
        if (value := lowered.get(name.lower())) is not None:
            return value
    return None


def _s3_filesystem(options: Mapping[str, str]) -> pafs.FileSystem:
    """An S3 filesystem from delta-rs-style options; unset ones fall back to pyarrow's defaults
    (the standard ``AWS_*`` environment variables and credential chain)."""
    kwargs: dict[str, Any] = {}
    if access_key := _option(options, "AWS_ACCESS_KEY_ID", "access_key_id"):
        kwargs["access_key"] = access_key
        kwargs["secret_key"] = _option(options, "AWS_SECRET_ACCESS_KEY", "secret_access_key")
        kwargs["session_token"] = _option(options, "AWS_SESSION_TOKEN", "session_token")
    if region := _option(options, "AWS_REGION", "AWS_DEFAULT_REGION", "region"):
        kwargs["region"] = region
    endpoint = _option(options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "endpoint_url", "endpoint")
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme:
            kwargs["scheme"] = parsed.scheme
            kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
        else:
            kwargs["endpoint_override"] = endpoint
    return pafs.S3FileSystem(**kwargs)


def log_filesystem(
    table_uri: str, storage_options: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding a table and the path of its ``_delta_log`` folder on it.

    Example:
        >>> fs, log = log_filesystem("s3://lake/orders", {"AWS_REGION": "eu-west-1"})
        >>> log
        'lake/orders/_delta_log'
    """
    parsed = urlparse(table_uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a path (or a Windows drive)
        path = parsed.path if parsed.scheme == "file" else table_uri
        return pafs.LocalFileSystem(), str(Path(path).resolve() / LOG_DIR)
    if parsed.scheme in ("s3", "s3a"):
        return _s3_filesystem(storage_options or {}), f"{parsed.netloc}{parsed.path}/{LOG_DIR}"
    filesystem, path = pafs.FileSystem.from_uri(table_uri)
    return filesystem, f"{path.rstrip('/')}/{LOG_DIR}"


def read_commit_actions(
    filesystem: pafs.FileSystem, log_path: str, version: int
) -> list[dict[str, Any]] | None:
    """The actions of one version's commit file, in order; ``None`` if the file is not there.

    Raises:
        ValueError: The file is not newline-delimited JSON objects.
    """
    try:
        with filesystem.open_input_stream(f"{log_path}/{commit_file_name(version)}") as stream:
            text = stream.read().decode("utf-8")
    except FileNotFoundError:
        return None
    actions: list[dict[str, Any]] = []
    for line in text.splitlines():
        if line.strip():
            action = json.loads(line)
            if not isinstance(action, dict):
                raise ValueError(f"version {version}: a log line is not a JSON object: {line!r}")
            actions.append(action)
    return actions
