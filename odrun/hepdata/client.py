"""HEPData's public API: a record's current version, and one table's bytes, cached.

``hepdata:ins1234567/Table 3@1`` names table "Table 3" of the record with INSPIRE id
1234567, version 1 (without ``@N``: the record's current version, read from
``GET {hepdata_url}/record/ins1234567?format=json&light=true``, key ``version``).
A table is downloaded in HEPData's submission YAML from
``GET {hepdata_url}/download/table/ins1234567/Table%203/1/yaml``.

Cache (under ``<cache_dir>/hepdata/<sha1(hepdata_url)[:12]>/``): ``records/<ins>.json``
(the record document, fresh for ``metadata_ttl``, like portal records) and
``tables/<ins>/v<N>/<sha1(table)>.yaml`` with its ``.sha256`` beside it. A published
table version never changes, so a cached table is used for good once its bytes match
the checksum stored with them (a mismatch downloads it again). ``--refresh`` asks for
the current version again; ``--offline`` never asks (OfflineError when not cached).

``hepdata_url`` (ODRUN_HEPDATA_URL) must be https, or http on a loopback address (a
local stand-in), as for the portal, and so must every redirect the server answers with
(a redirect to plain http elsewhere is refused before anything is asked there). An answer
larger than :data:`MAX_DOWNLOAD_BYTES` is refused while it arrives. Nothing here prints.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from odrun import http, untrusted
from odrun._fs import atomic_write
from odrun.errors import (
    ConfigError,
    HepdataError,
    InvalidReferenceError,
    NotFoundError,
    OfflineError,
)
from odrun.hepdata.table import Table, parse_table
from odrun.settings import Settings
from odrun.urls import is_loopback

if TYPE_CHECKING:
    import httpx

PREFIX = "hepdata:"
_INSPIRE = re.compile(r"^(?:ins)?(\d{1,12})$")
_VERSION = re.compile(r"^(.*)@(\d{1,6})$")
MAX_TABLE_NAME = 200
#: the largest answer read from the server (a table or a record document); the YAML
#: loader reads 16 MiB at most, the largest tables on hepdata.net are a few MiB
MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TableRef:
    """``ins<digits>/<table name>[@version]``."""

    inspire: str  # "ins1234567"
    table: str
    version: int | None = None

    def __str__(self) -> str:
        at = f"@{self.version}" if self.version is not None else ""
        return f"{self.inspire}/{self.table}{at}"

    @property
    def unversioned(self) -> str:
        return f"{self.inspire}/{self.table}"


def is_remote(reference: str) -> bool:
    """``reference`` names a table on HEPData (``hepdata:ins…/…``), not a local file."""
    rest = reference[len(PREFIX) :] if reference.startswith(PREFIX) else None
    return rest is not None and bool(_INSPIRE.match(rest.partition("/")[0].strip()))


def parse_ref(text: str) -> TableRef:
    """A :class:`TableRef` from ``[hepdata:]ins1234567/Table 3[@1]`` (InvalidReferenceError)."""
    rest = text[len(PREFIX) :] if text.startswith(PREFIX) else text
    record, sep, table = rest.partition("/")
    match = _INSPIRE.match(record.strip())
    if not sep or match is None:
        raise InvalidReferenceError(
            f"HEPData reference {text[:80]!r} is not ins<INSPIRE id>/<table name>[@version]",
            hint='e.g. hepdata:ins1234567/"Table 3"@1',
        )
    version: int | None = None
    found = _VERSION.match(table)
    if found:
        table, version = found.group(1), int(found.group(2))
        if version < 1:
            raise InvalidReferenceError(f"HEPData reference {text[:80]!r}: versions start at 1")
    table = table.strip()
    if not table or len(table) > MAX_TABLE_NAME or not table.isprintable():
        raise InvalidReferenceError(
            f"HEPData reference {text[:80]!r} has no valid table name "
            f"(1 to {MAX_TABLE_NAME} printable characters)"
        )
    return TableRef(f"ins{match.group(1)}", table, version)


@dataclass(frozen=True)
class TablePin:
    """What a run's lock pinned of a table: its version and the sha256 of its bytes (None:
    a lock that recorded no checksum). A published version is not supposed to change; if
    the server answers other bytes for it, they are not the table the run pinned."""

    version: int
    sha256: str | None = None


@dataclass(frozen=True)
class ResolvedTable:
    """A table's bytes with the version they are and their sha256."""

    ref: TableRef
    version: int
    sha256: str
    data: bytes
    url: str

    @property
    def pinned(self) -> TableRef:
        return TableRef(self.ref.inspire, self.ref.table, self.version)

    def table(self) -> Table:
        return parse_table(self.data, str(self.pinned), "yaml")

    def pin(self) -> dict[str, Any]:
        """The lock entry: what was compared against, exactly."""
        return {
            "reference": self.ref.unversioned,
            "version": self.version,
            "sha256": self.sha256,
            "url": self.url,
        }


def check_url(url: str) -> str:
    """``url`` without a trailing slash if it is https, or http on loopback (ConfigError)."""
    split = untrusted.split_url(url)
    if split is None or split.scheme not in ("http", "https") or not split.netloc:
        raise ConfigError(
            f"HEPData URL {url!r} is not an http(s) URL",
            hint="set ODRUN_HEPDATA_URL, e.g. https://www.hepdata.net",
        )
    if split.scheme == "http" and not is_loopback(url):
        raise ConfigError(
            f"HEPData URL {url} is plain http: only https, or http on a loopback address",
            hint="use https:// in ODRUN_HEPDATA_URL",
        )
    return url.rstrip("/")


def url_segment(name: str) -> str:
    """``name`` as one path segment of a URL: '/' escaped, and a name of dots only ('.',
    '..') escaped too, or the URL would climb out of its path (clients remove dot
    segments) and ask for another resource."""
    segment = quote(name, safe="")
    return segment.replace(".", "%2E") if not name.strip(".") else segment


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class HepdataClient:
    """Resolve and download HEPData tables through the cache; use as a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = check_url(settings.hepdata_url)
        key = hashlib.sha1(self.url.encode()).hexdigest()[:12]
        self.root = settings.cache_dir / "hepdata" / key
        self._http: httpx.Client | None = None

    def __enter__(self) -> HepdataClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _get(self, url: str, what: str) -> bytes:
        if self._http is None:
            self._http = http.make_client(self.settings, no_downgrade=True)
        return http.get_bytes(
            self._http, url, self.settings, max_bytes=MAX_DOWNLOAD_BYTES, what=what
        )

    def _record_path(self, inspire: str) -> Path:
        return self.root / "records" / f"{inspire}.json"

    def current_version(self, inspire: str) -> int:
        """The record's current version (cached for ``metadata_ttl``)."""
        path = self._record_path(inspire)
        data: bytes | None = None
        try:
            age = time.time() - path.stat().st_mtime
            if self.settings.offline or (
                not self.settings.refresh and age <= self.settings.metadata_ttl
            ):
                data = path.read_bytes()
                return _version_of(data, inspire)
        except (OSError, HepdataError):  # not cached, or a cached answer that is not one
            if self.settings.offline and data is not None:
                raise
            data = None
        if data is None:
            if self.settings.offline:
                raise OfflineError(
                    f"HEPData record {inspire} is not cached and --offline is set",
                    hint="run once online, or pin the table version (…@N)",
                )
            url = f"{self.url}/record/{inspire}?format=json&light=true"
            try:
                data = self._get(url, f"HEPData record {inspire}")
            except NotFoundError:
                raise NotFoundError(
                    f"HEPData has no record {inspire} ({self.url})",
                    hint="check the INSPIRE id, or ODRUN_HEPDATA_URL",
                ) from None
        version = _version_of(data, inspire)
        atomic_write(path, data)
        return version

    def _table_path(self, ref: TableRef, version: int) -> Path:
        name = hashlib.sha1(ref.table.encode()).hexdigest()[:16]
        return self.root / "tables" / ref.inspire / f"v{version}" / f"{name}.yaml"

    def _cached(self, path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
            want = path.with_suffix(".sha256").read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return data if _sha256(data) == want else None

    def fetch(self, ref: TableRef) -> ResolvedTable:
        """The table ``ref`` names (its pinned version, else the current one)."""
        version = ref.version if ref.version is not None else self.current_version(ref.inspire)
        path = self._table_path(ref, version)
        url = f"{self.url}/download/table/{ref.inspire}/{url_segment(ref.table)}/{version}/yaml"
        data = self._cached(path)
        if data is None:
            if self.settings.offline:
                raise OfflineError(
                    f"HEPData table {ref.unversioned} version {version} is not cached "
                    "and --offline is set",
                    hint="run once online to cache it",
                )
            try:
                data = self._get(url, f"HEPData table {ref.unversioned}")
            except NotFoundError:
                raise NotFoundError(
                    f"HEPData record {ref.inspire} version {version} has no table "
                    f"{ref.table!r} ({self.url})",
                    hint="check the table name (odrun hepdata INS lists them) and the version",
                ) from None
            resolved = ResolvedTable(ref, version, _sha256(data), data, url)
            resolved.table()  # a table that does not parse is not cached
            atomic_write(path, data)
            atomic_write(path.with_suffix(".sha256"), resolved.sha256.encode())
            return resolved
        return ResolvedTable(ref, version, _sha256(data), data, url)

    def table_names(self, inspire: str, version: int | None = None) -> list[str]:
        """The names of a record's tables (the full record document; not cached)."""
        if self.settings.offline:
            raise OfflineError("listing a HEPData record's tables needs the network")
        at = f"&version={version}" if version is not None else ""
        data = self._get(
            f"{self.url}/record/{inspire}?format=json{at}", f"HEPData record {inspire}"
        )
        try:
            tables = untrusted.load_json(data)["data_tables"]
            names = [untrusted.text(t.get("name")) for t in tables]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise HepdataError(
                f"HEPData record {inspire}: unexpected document (no data_tables)"
            ) from None
        return [n for n in names if n]


def _version_of(data: bytes, inspire: str) -> int:
    try:
        doc = untrusted.load_json(data)
        raw = doc.get("version")
        if raw is None and isinstance(doc.get("record"), dict):
            raw = doc["record"].get("version")
    except (ValueError, AttributeError):
        raw = None
    version = untrusted.count(raw)
    if version is None or version < 1:
        raise HepdataError(f"HEPData record {inspire}: the answer names no version")
    return version
