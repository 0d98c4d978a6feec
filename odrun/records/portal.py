"""Where record metadata comes from: the portal's REST API, or a local ``file://`` mirror.

Both speak one small protocol (:class:`Portal`): fetch the API document of a
recid, and find the recid of a DOI. A mirror is a folder of ``<recid>.json``
files, each exactly what ``GET /api/records/<recid>`` returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from odrun import http, untrusted
from odrun.errors import ConfigError, MetadataError, NotFoundError
from odrun.settings import Settings

from .refs import is_recid

if TYPE_CHECKING:
    import httpx


#: the largest record document read from a portal (a record listing a million files
#: inline is ~300 MB); larger answers are refused while they arrive
MAX_RECORD_BYTES = 1024 * 1024 * 1024
#: the largest answer to a DOI search (one hit is asked for)
MAX_SEARCH_BYTES = 16 * 1024 * 1024


class Portal(Protocol):
    url: str
    #: True for local mirrors: no network, file:// URIs allowed in records
    local: bool

    def get_record(self, recid: str) -> bytes:
        """The API document of ``recid`` as bytes; NotFoundError if there is none."""
        ...

    def find_doi(self, doi: str) -> str:
        """The recid of the record with this DOI; NotFoundError if there is none."""
        ...


class HttpPortal:
    local = False

    def __init__(self, url: str, settings: Settings, client: Callable[[], httpx.Client]) -> None:
        self.url = url.rstrip("/")
        self.settings = settings
        self._client = client

    @property
    def client(self) -> httpx.Client:
        return self._client()

    def get_record(self, recid: str) -> bytes:
        try:
            return http.get_bytes(
                self.client,
                f"{self.url}/api/records/{recid}",
                self.settings,
                max_bytes=MAX_RECORD_BYTES,
                headers={"Accept": "application/json"},
                what=f"record {recid}",
            )
        except NotFoundError:
            raise NotFoundError(
                f"record {recid} does not exist on {self.url}",
                hint="check the recid, or the portal (--portal / ODRUN_PORTAL_URL)",
            ) from None

    def find_doi(self, doi: str) -> str:
        content = http.get_bytes(
            self.client,
            f"{self.url}/api/records",
            self.settings,
            max_bytes=MAX_SEARCH_BYTES,
            params={"page": "1", "size": "1", "q": f'doi:"{doi}"'},
            headers={"Accept": "application/json"},
            what=f"search for DOI {doi}",
        )
        unexpected = MetadataError(
            f"search for DOI {doi} on {self.url} returned an unexpected document"
        )
        found_doi, recid = doi, None
        try:
            body: Any = untrusted.load_json(content)
            hits = body["hits"]
            total = hits["total"]
            total = total["value"] if isinstance(total, dict) else total
            first = hits["hits"][0] if untrusted.count(total) else None
            if first is not None:
                meta = first.get("metadata") or {}
                found_doi = untrusted.text(meta.get("doi")) or doi
                recid = untrusted.text(meta.get("recid")) or untrusted.text(first.get("id"))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise unexpected from None
        if first is not None and recid and found_doi.lower() == doi.lower():
            if not is_recid(recid):  # it names the next request, cache files and folders
                raise unexpected
            return recid
        raise NotFoundError(
            f"no record with DOI {doi} on {self.url}",
            hint="check the DOI; records without a DOI can be given by recid",
        )


_NUMBERED = re.compile(r"^[a-z][a-z0-9]*-(\d+)$")


class MirrorPortal:
    """A folder of API documents named ``<recid>.json``."""

    local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()

    def _path(self, recid: str) -> Path | None:
        for name in (recid, *(m.group(1) for m in [_NUMBERED.match(recid)] if m)):
            path = self.root / f"{name}.json"
            if path.is_file():
                return path
        return None

    def record_file(self, recid: str) -> Path | None:
        """The file holding ``recid`` when it can be read as it is (streamed), else None."""
        path = self._path(recid)
        return path if path is not None and path.stem == recid else None

    def get_record(self, recid: str) -> bytes:
        path = self._path(recid)
        if path is None:
            raise NotFoundError(
                f"record {recid} is not in the mirror {self.root}",
                hint=f"add it with: odrun mirror {recid} --to {self.root}",
            )
        data = path.read_bytes()
        match = _NUMBERED.match(recid)
        if match and path.stem == match.group(1):
            # cms-5500 may be stored as 5500.json: only if the experiment matches
            experiment = recid.split("-", 1)[0]
            if experiment not in _experiments(data):
                raise NotFoundError(f"record {recid} is not in the mirror {self.root}")
        return data

    def find_doi(self, doi: str) -> str:
        needle = re.compile(r'"doi"\s*:\s*"' + re.escape(doi) + '"', re.IGNORECASE)
        for path in sorted(self.root.glob("*.json")):
            data = path.read_bytes()
            if needle.search(data.decode("utf-8", "replace")):
                return path.stem
        raise NotFoundError(
            f"no record with DOI {doi} in the mirror {self.root}",
            hint=f"add it with: odrun mirror {doi} --to {self.root}",
        )


def _experiments(data: bytes) -> set[str]:
    try:
        meta = untrusted.load_json(data).get("metadata", {})
        value = meta.get("experiment") or []
    except (ValueError, AttributeError):
        return set()
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return {text.lower() for v in values if (text := untrusted.text(v))}


def mirror_path(url: str) -> Path | None:
    """The folder of a ``file://`` portal URL (absolute or relative), else None."""
    if not url.startswith("file:"):
        return None
    rest = url[len("file:") :]
    if rest.startswith("//"):
        split = untrusted.split_url(url)
        if split is None:
            raise ConfigError(f"portal URL {url!r} is not a valid file:// URL")
        rest = split.path if split.netloc in ("", "localhost") else split.netloc + split.path
    return Path(unquote(rest))


def open_portal(settings: Settings, client: Callable[[], httpx.Client]) -> Portal:
    url = settings.portal_url
    folder = mirror_path(url)
    if folder is None and "://" not in url and Path(url).is_dir():
        folder = Path(url)
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError(
                f"portal mirror folder {folder} does not exist",
                hint="give --portal file://DIR with DIR holding <recid>.json files",
            )
        return MirrorPortal(folder)
    split = untrusted.split_url(url)  # None: urllib refuses it (https://[::1)
    if split is None or split.scheme not in ("http", "https") or not split.netloc:
        raise ConfigError(
            f"portal URL {url!r} is neither http(s)://HOST nor file://DIR",
            hint="set --portal or ODRUN_PORTAL_URL, e.g. https://opendata.cern.ch",
        )
    return HttpPortal(url, settings, client)
