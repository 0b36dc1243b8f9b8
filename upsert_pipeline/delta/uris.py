"""The allow-list of table and landing locations: which URI schemes, and optionally which roots.

A location is checked as text before anything is opened: an unknown scheme (``http://``,
``ftp://``), a ``..`` segment, credentials in the URI (they belong in ``storage_options``), a
query, a fragment or a control character is refused, and with ``roots`` the location must lie
under one of them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from upsert_pipeline.delta.errors import DisallowedUriError

LOCAL_SCHEME = "file"
AZURE_SCHEMES = frozenset({"abfs", "abfss"})
DEFAULT_SCHEMES = frozenset({LOCAL_SCHEME, "s3", "gs", *AZURE_SCHEMES})
"""Schemes that both delta-rs (the lake) and pyarrow (the landing reader) open. delta-rs's aliases
``s3a://``, ``az://``, ``adl://`` and ``azure://`` are left out: pyarrow cannot open them."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class _Parsed:
    scheme: str
    path: str  # as written, after the scheme
    location: str  # normalised: an absolute path, or scheme://path without a trailing slash


def _parse(uri: str) -> _Parsed:
    match = _SCHEME.fullmatch(uri)
    if match is None:
        if ":" in uri.split("/", 1)[0]:
            raise DisallowedUriError(f"{uri!r} is neither a path nor a scheme://location URI")
        return _Parsed(LOCAL_SCHEME, uri, os.path.abspath(uri))
    scheme, path = match.group(1).lower(), match.group(2)
    if scheme == LOCAL_SCHEME:
        return _Parsed(scheme, path, os.path.abspath("/" + path.lstrip("/")))
    return _Parsed(scheme, path, f"{scheme}://{path.rstrip('/')}")


def scheme_of(uri: str) -> str:
    """The URI's scheme, lower case; ``file`` for a plain path.

    Raises:
        DisallowedUriError: The text is neither a path nor a ``scheme://`` URI.
    """
    return _parse(uri).scheme


def _check_authority(uri: str, scheme: str, authority: str, *, what: str) -> None:
    """Refuses credentials in the authority; Azure's ``container@account.host`` is no credential.

    ``abfs(s)://<container>@<account>.dfs.core.windows.net/<path>`` is the canonical ADLS Gen2
    form, and the only one both delta-rs and pyarrow open; a ``:`` before the ``@`` (a key) is
    refused as anywhere else.
    """
    if not authority:
        raise DisallowedUriError(f"{what} URI {uri!r} names no bucket or container")
    if scheme in AZURE_SCHEMES:
        container, at, host = authority.partition("@")
        if not at or not container or "." not in host:
            raise DisallowedUriError(
                f"{what} URI {uri!r}: write Azure locations as "
                f"{scheme}://<container>@<account>.dfs.core.windows.net/<path>"
            )
        if ":" in container or "@" in host:
            raise DisallowedUriError(
                f"{what} URI {uri!r} carries credentials; pass them as storage options"
            )
    elif "@" in authority:
        raise DisallowedUriError(
            f"{what} URI {uri!r} carries credentials; pass them as storage options"
        )


def _inside(location: str, root: str) -> bool:
    return location == root or location.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class UriPolicy:
    """Where tables and landing files may be: allowed schemes and, optionally, allowed roots.

    Attributes:
        schemes: Allowed URI schemes, lower case; a plain path counts as ``file``.
        roots: Allowed roots (paths or URIs); a location must be one of them or lie under one.
            Empty means any location on an allowed scheme.

    Example:
        >>> UriPolicy(roots=("s3://lake",)).check("s3://lake/orders", what="table")
        's3://lake/orders'
        >>> UriPolicy().check("http://example.com/orders", what="table")
        Traceback (most recent call last):
        DisallowedUriError: table URI 'http://example.com/orders' uses scheme 'http' ...
    """

    schemes: frozenset[str] = DEFAULT_SCHEMES
    roots: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, *, schemes: Iterable[str] | None = None, roots: Iterable[str] = ()) -> UriPolicy:
        """A policy from plain lists (as resources hold them), schemes defaulting to the usual."""
        chosen = DEFAULT_SCHEMES if schemes is None else frozenset(s.lower() for s in schemes)
        return cls(schemes=chosen, roots=tuple(roots))

    def check(self, uri: str, *, what: str) -> str:
        """Returns ``uri`` unchanged if the policy allows it.

        Args:
            uri: A local path or a ``scheme://`` URI.
            what: What the URI names (``"table"``, ``"landing"``), for the error message.

        Raises:
            DisallowedUriError: The URI is refused; the message says why.
        """
        if not uri or _CONTROL.search(uri):
            raise DisallowedUriError(f"{what} URI {uri!r} is empty or holds a control character")
        parsed = _parse(uri)
        if parsed.scheme not in self.schemes:
            raise DisallowedUriError(
                f"{what} URI {uri!r} uses scheme {parsed.scheme!r}; allowed: {sorted(self.schemes)}"
            )
        if any(unquote(segment).strip() == ".." for segment in re.split(r"[/\\]", parsed.path)):
            raise DisallowedUriError(f"{what} URI {uri!r} holds a '..' segment")
        if parsed.scheme != LOCAL_SCHEME:
            rest = parsed.path
            if "?" in rest or "#" in rest:
                raise DisallowedUriError(f"{what} URI {uri!r} holds a query or fragment")
            _check_authority(uri, parsed.scheme, rest.split("/", 1)[0], what=what)
        if self.roots:
            if not any(_inside(parsed.location, _parse(root).location) for root in self.roots):
                raise DisallowedUriError(
                    f"{what} URI {uri!r} is outside the allowed roots {list(self.roots)}"
                )
        return uri


DEFAULT_URI_POLICY = UriPolicy()
"""Any location on a default scheme; no roots."""
