"""Reading every landing file of one partition and holding the batch to its feed's columns.

Files are read one at a time, each conformed to the declared columns (cast, checked) before the
next is opened, then concatenated without copying (``pa.concat_tables``): the partition is held
once, as the merge needs it, never beside a second raw copy of every file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from upsert_pipeline.delta import DEFAULT_URI_POLICY, DisallowedUriError, UpsertError, UriPolicy
from upsert_pipeline.delta.operations import OP_COLUMN, with_string_op
from upsert_pipeline.delta.storage import arrow_filesystem, storage_options_for
from upsert_pipeline.delta.validation import check_keys, conform_evolving
from upsert_pipeline.landing.errors import LandingFileNotFoundError
from upsert_pipeline.landing.formats import read_file
from upsert_pipeline.landing.layout import LandingLayout, glob_to_regex, static_prefix


@dataclass(frozen=True)
class LandingFile:
    """One landing file: its URI, its path in its filesystem, and what identifies its content
    (size and modification time; an object store's LastModified)."""

    uri: str
    fs_path: str
    size: int
    mtime_ns: int | None

    @property
    def fingerprint(self) -> str:
        """``<size>:<mtime_ns>``: changes when the file is re-delivered."""
        return f"{self.size}:{self.mtime_ns}"


def _root(
    landing_uri: str, storage_options: Mapping[str, str] | None, filesystem: pafs.FileSystem | None
) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        return filesystem, landing_uri.rstrip("/")
    options = storage_options_for(landing_uri) if storage_options is None else storage_options
    fs, path = arrow_filesystem(landing_uri, options)
    return fs, path.rstrip("/")


def _info_file(info: pafs.FileInfo, uri: str) -> LandingFile:
    return LandingFile(uri=uri, fs_path=info.path, size=int(info.size or 0), mtime_ns=info.mtime_ns)


def list_files(
    landing_uri: str,
    glob: str,
    *,
    filesystem: pafs.FileSystem | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> list[LandingFile]:
    """The files under ``landing_uri`` whose relative path matches ``glob``, sorted by path.

    A glob without wildcards is one ``stat``; otherwise one listing of the folder before the
    first wildcard.
    """
    fs, root = _root(landing_uri, storage_options, filesystem)
    return _list(fs, root, landing_uri.rstrip("/"), glob)


def _list(fs: pafs.FileSystem, root: str, base: str, glob: str) -> list[LandingFile]:
    """``list_files`` on a filesystem already resolved: ``root`` is the landing root's path in
    ``fs``, ``base`` its URI."""
    if not set("*?[") & set(glob):
        info = fs.get_file_info(f"{root}/{glob}")
        if info.type != pafs.FileType.File:
            return []
        return [_info_file(info, f"{base}/{glob}")]
    pattern = re.compile(glob_to_regex(glob))
    found = [file for file, _ in matching_files(fs, root, base, static_prefix(glob), pattern)]
    return sorted(found, key=lambda file: file.fs_path)


def matching_files(
    fs: pafs.FileSystem, root: str, base: str, prefix: str, pattern: re.Pattern[str]
) -> Iterator[tuple[LandingFile, re.Match[str]]]:
    """The files below ``<root>/<prefix>`` (one recursive listing) whose path relative to
    ``root`` matches ``pattern``, each with its match; ``base`` is the root's URI."""
    folder = f"{root}/{prefix}" if prefix else root
    selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(root) + 1 :]
        if match := pattern.fullmatch(relative):
            yield _info_file(info, f"{base}/{relative}"), match


def list_partition_files(
    landing_uri: str,
    layout: LandingLayout,
    start: dt.datetime,
    partition_key: str,
    *,
    filesystem: pafs.FileSystem | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> list[LandingFile]:
    """The landing files of one partition (possibly none), sorted by path."""
    glob = layout.partition_glob(start, partition_key)
    return list_files(landing_uri, glob, filesystem=filesystem, storage_options=storage_options)


def _check_inside(landing_uri: str, path: str) -> None:
    """Refuses a local landing file that resolves (through symlinks) outside the landing root."""
    if "://" in landing_uri and not landing_uri.startswith("file://"):
        return
    root = os.path.realpath(landing_uri.removeprefix("file://"))
    resolved = os.path.realpath(path.removeprefix("file://"))
    if os.path.commonpath([root, resolved]) != root:
        raise DisallowedUriError(f"landing file {path} resolves outside the landing root {root}")


def _named(error: UpsertError, where: str) -> UpsertError:
    """The same error, its message prefixed with the feed and partition it is about."""
    return type(error)(f"{where}: {error}")


def read_partition(
    landing_uri: str,
    layout: LandingLayout,
    *,
    feed_name: str,
    partition_key: str,
    start: dt.datetime,
    schema: pa.Schema,
    keys: Sequence[str],
    evolve: bool,
    filesystem: pafs.FileSystem | None = None,
    uri_policy: UriPolicy | None = None,
    storage_options: Mapping[str, str] | None = None,
    files: Sequence[LandingFile] | None = None,
) -> pa.Table:
    """Reads every landing file of one partition and conforms the batch to ``schema``.

    Args:
        landing_uri: The landing root, a local path or an object-store URI.
        layout: Where the feed's partitions land and in which format.
        feed_name: The feed, named in every error.
        partition_key: The partition (as Dagster names it), named in every error.
        start: The partition's start, which fills the layout's placeholders.
        schema: The declared columns; each file is cast to them.
        keys: The merge keys: not null, unique across all of the partition's files.
        evolve: Whether a file may bring new (nullable) columns.
        filesystem: The filesystem to read with; derived from ``landing_uri`` when ``None``.
        uri_policy: The allowed schemes and roots of ``landing_uri``.
        storage_options: The object-store options of ``landing_uri``; its store's standard
            environment when ``None``.
        files: The partition's files, when the caller listed them already
            (``list_partition_files``); listed here when ``None``.

    Returns:
        The batch with the declared columns and types first, then any new columns (if
        ``evolve``) and the control column ``_op`` (if present).

    Raises:
        DisallowedUriError: The landing URI is not allowed, or a file resolves outside it.
        InvalidPartitionKeyError: The key cannot name a landing path.
        LandingFileNotFoundError: No file of the partition (the error names the glob).
        LandingFileError: A file is empty, not of its format, truncated or unreadable.
        BatchSchemaError, NullKeyError, DuplicateKeyError: The batch does not fit the feed.

    Every error's message starts with ``<feed> <partition>:`` and names the file.
    """
    (uri_policy or DEFAULT_URI_POLICY).check(landing_uri, what="landing")
    where = f"{feed_name} {partition_key}"
    glob = layout.partition_glob(start, partition_key)
    fs, root = _root(landing_uri, storage_options, filesystem)
    if files is None:
        files = _list(fs, root, landing_uri.rstrip("/"), glob)
    if not files:
        raise LandingFileNotFoundError(
            f"{where}: no landing file for the partition: nothing matches "
            f"{landing_uri.rstrip('/')}/{glob}"
        )
    tables = []
    for file in files:
        if filesystem is None:
            _check_inside(landing_uri, file.uri)
        try:
            table = with_string_op(read_file(fs, file.fs_path, file.uri, file.size, layout, schema))
            check_keys(table, keys)  # null and repeated keys first, as within one file
            conformed, _, _ = conform_evolving(table, schema, evolve=evolve, control=(OP_COLUMN,))
        except UpsertError as error:
            message = str(error)
            raise _named(error, where if file.uri in message else f"{where} {file.uri}") from error
        tables.append(conformed)
        del table
    if len(tables) == 1:
        return tables[0]
    batch = pa.concat_tables(tables, promote_options="default")
    try:
        check_keys(batch, keys)  # a key repeated across files
    except UpsertError as error:
        files_named = ", ".join(file.uri for file in files)
        raise _named(error, f"{where} ({files_named})") from error
    return batch
