"""Reading a Delta table's commit files (``_delta_log/<version:020d>.json``) by version.

Through ``pyarrow.fs``, for a local path and an object store alike: the filesystem is the one the
landing reader uses (``storage.arrow_filesystem``), from the same options (delta-rs's spelling,
the store's standard environment filling what they leave out), so the options a table is opened
with in delta-rs open its log here too. Reads only the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pyarrow import fs as pafs

from upsert_pipeline.delta.storage import arrow_filesystem, storage_options_for

LOG_DIR = "_delta_log"


def commit_file_name(version: int) -> str:
    """The name of a version's commit file, e.g. ``00000000000000000018.json``."""
    return f"{version:020d}.json"


def log_filesystem(
    table_uri: str, storage_options: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding a table and the path of its ``_delta_log`` folder on it.

    Example:
        >>> fs, log = log_filesystem("s3://lake/orders", {"AWS_REGION": "eu-west-1"})
        >>> log
        'lake/orders/_delta_log'
    """
    options = storage_options_for(table_uri, overrides=storage_options)
    filesystem, path = arrow_filesystem(table_uri, options)
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
