"""Which partitions' landing files appeared or changed: what the landing sensor keeps in its cursor.

A partition's fingerprint is a digest of its files' paths, sizes and modification times (an
object store's LastModified), so a new file, a re-delivered file or a removed one changes it; a
partition whose files are untouched keeps it, however often it is looked at.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow.fs as pafs

from upsert_pipeline.landing.layout import LandingLayout
from upsert_pipeline.landing.reading import LandingFile, _root, matching_files


@dataclass(frozen=True)
class LandedFile:
    """A landing file of the layout and the placeholder values its path holds."""

    file: LandingFile
    fields: Mapping[str, str]


def scan(
    landing_uri: str,
    layout: LandingLayout,
    *,
    filesystem: pafs.FileSystem | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> list[LandedFile]:
    """Every file under ``landing_uri`` the layout matches, with its placeholder values, from one
    listing of the deepest folder all partitions share."""
    fs, root = _root(landing_uri, storage_options, filesystem)
    pattern: re.Pattern[str] = layout.template_regex()
    found = [
        LandedFile(file=file, fields=match.groupdict())
        for file, match in matching_files(
            fs, root, landing_uri.rstrip("/"), layout.search_root(), pattern
        )
    ]
    return sorted(found, key=lambda landed: landed.file.fs_path)


def fingerprint(files: list[LandingFile]) -> str:
    """One digest of a partition's files: their paths, sizes and modification times."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.fs_path):
        digest.update(f"{file.fs_path}\0{file.fingerprint}\n".encode())
    return digest.hexdigest()[:32]


def changed(previous: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The partitions whose fingerprint is new or differs from ``previous``, sorted."""
    return sorted(key for key, digest in current.items() if previous.get(key) != digest)
