"""What a commit wrote and removed, file by file, from its own commit file in the log.

The add and remove actions of ``_delta_log/<version>.json`` carry each file's size: the bytes a
commit wrote and the bytes it took out of the table, without listing or opening a data file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from upsert_pipeline.delta.log_files import log_filesystem, read_commit_actions


@dataclass(frozen=True, kw_only=True)
class CommitFiles:
    """The data files one commit added and removed.

    Attributes:
        version: The commit's version.
        files_added: Add actions.
        files_removed: Remove actions.
        bytes_added: Sum of the added files' ``size``.
        bytes_removed: Sum of the removed files' ``size``; ``None`` when a remove action does not
            record its size (it is optional in the protocol).
    """

    version: int
    files_added: int
    files_removed: int
    bytes_added: int
    bytes_removed: int | None


def read_commit_files(
    table_uri: str, version: int, *, storage_options: Mapping[str, str] | None = None
) -> CommitFiles | None:
    """The files of version ``version``'s commit; ``None`` when its commit file is gone.

    Example:
        >>> read_commit_files("data/lake/orders", 18).bytes_added
        48211
    """
    filesystem, log_path = log_filesystem(table_uri, storage_options)
    actions = read_commit_actions(filesystem, log_path, version)
    if actions is None:
        return None
    adds = [action["add"] for action in actions if "add" in action]
    removes = [action["remove"] for action in actions if "remove" in action]
    removed_sizes = [remove.get("size") for remove in removes]
    return CommitFiles(
        version=version,
        files_added=len(adds),
        files_removed=len(removes),
        bytes_added=sum(int(add.get("size", 0)) for add in adds),
        bytes_removed=(
            None
            if any(size is None for size in removed_sizes)
            else sum(int(size) for size in removed_sizes)
        ),
    )
