"""URI helpers: the root:// <-> http(s):// prefix map and scheme checks.

EOS serves the same file as ``root://eospublic.cern.ch//eos/opendata/x`` and
``https://eospublic.cern.ch//eos/opendata/x``. Which prefixes correspond is a
setting (``ODRUN_PROTOCOL_MAP``), so tests and private mirrors can map a local
xrootd server's root:// port to its HTTP port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError
from .untrusted import split_url

DEFAULT_PROTOCOL_MAP = "root://eospublic.cern.ch=https://eospublic.cern.ch"

Protocol = Literal["root", "https"]

#: Schemes a record file URI may use. ``file`` only for local mirrors.
REMOTE_SCHEMES = frozenset({"root", "http", "https"})


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine: 127.0.0.0/8, ::1 or ``localhost``."""
    parts = split_url(url)
    try:
        host = ((parts.hostname if parts else None) or "").lower()
    except ValueError:  # a malformed port or bracket
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scheme_of(uri: str) -> str:
    """Lower-cased scheme of ``uri`` ('' if none); cheap, as it runs once per file."""
    scheme, sep, _ = uri.partition("://")
    return scheme.lower() if sep and scheme.isascii() and scheme.isalnum() else ""


@dataclass(frozen=True)
class ProtocolMap:
    """Ordered pairs of equivalent (root prefix, http prefix)."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str) -> ProtocolMap:
        pairs: list[tuple[str, str]] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            root, sep, http = item.partition("=")
            root, http = root.strip().rstrip("/"), http.strip().rstrip("/")
            if (
                not sep
                or scheme_of(root) != "root"
                or scheme_of(http) not in ("http", "https")
                or not _has_host(root)
                or not _has_host(http)
            ):
                raise ConfigError(
                    f"ODRUN_PROTOCOL_MAP entry {item!r} is not ROOT_PREFIX=HTTP_PREFIX",
                    hint="e.g. root://eospublic.cern.ch=https://eospublic.cern.ch",
                )
            pairs.append((root, http))
        return cls(tuple(pairs))

    def __str__(self) -> str:
        return ",".join(f"{root}={http}" for root, http in self.pairs)

    def to_http(self, uri: str) -> str | None:
        """The http(s) form of a root:// URI, or None when no prefix maps it."""
        return _swap(uri, self.pairs)

    def to_root(self, uri: str) -> str | None:
        """The root:// form of an http(s) URI, or None when no prefix maps it."""
        return _swap(uri, ((h, r) for r, h in self.pairs))

    def rewrite(self, uri: str, protocol: Protocol | None) -> str:
        """``uri`` in the wanted protocol when a mapping exists, else unchanged."""
        if protocol is None:
            return uri
        scheme = scheme_of(uri)
        if protocol == "https" and scheme == "root":
            return self.to_http(uri) or uri
        if protocol == "root" and scheme in ("http", "https"):
            return self.to_root(uri) or uri
        return uri


def _has_host(url: str) -> bool:
    split = split_url(url)  # None for what urllib refuses, e.g. root://[::1
    return split is not None and bool(split.netloc)


def _swap(uri: str, pairs: Iterable[tuple[str, str]]) -> str | None:
    for src, dst in pairs:
        if uri == src or uri.startswith(src + "/"):
            return dst + uri[len(src) :]
    return None
