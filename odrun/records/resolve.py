"""Resolve a record reference to a :class:`Record`: portal, cache, offline rules, file indices.

Cache policy: a cached response younger than ``settings.metadata_ttl`` is used
without asking the portal; ``refresh`` always asks; ``offline`` never asks and
uses any cached copy; if the portal is unreachable, a stale cached copy is used
and the record carries a note saying so.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odrun import http
from odrun.checksum import checksum_blocks, parse_checksum
from odrun.errors import (
    ChecksumError,
    MetadataError,
    NotFoundError,
    OdrunError,
    OfflineError,
    TooLargeError,
    TransportError,
)
from odrun.settings import Settings
from odrun.urls import scheme_of

from .cache import MetadataCache
from .fast import NeedsGeneralParserError, parse_streamed
from .model import Record
from .parse import parse_record
from .portal import MirrorPortal, Portal, open_portal
from .refs import RecordRef, is_recid, parse_reference
from .stream import load_record_document

#: the largest file index read (the record's declared size, when smaller, is the limit)
MAX_INDEX_BYTES = 1024 * 1024 * 1024

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class Resolved:
    """A record with the raw API document it was built from."""

    record: Record
    document: Mapping[str, Any]


class Resolver:
    """Resolves many references with one HTTP client, portal and cache. Use as a context manager."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load()
        self._client: httpx.Client | None = None
        self.portal: Portal = open_portal(self.settings, lambda: self.client)
        self.cache = MetadataCache(self.settings.metadata_cache_dir, self.portal.url)
        #: the first transport failure while reading index files; later ones fail fast
        self._index_outage: TransportError | None = None

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _local_root(self) -> Path | None:
        return self.portal.root if isinstance(self.portal, MirrorPortal) else None

    @property
    def client(self) -> httpx.Client:
        """The HTTP client, created on first use (a mirror may never need one)."""
        if self._client is None:
            self._client = http.make_client(self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def resolve(self, target: str | RecordRef, *, files: bool = True) -> Record:
        """The record ``target`` names; ``files=False`` reads no file index (for commands
        such as ``cite`` that need no file list: its indices are then marked unavailable).

        The document is streamed (:mod:`odrun.records.stream`): file entries are slimmed
        as they are read, so a record with a million files does not cost a million dicts.
        """
        ref = parse_reference(target) if isinstance(target, str) else target
        recid = self.recid_of(ref)
        source, note = self._record_source(recid)
        # the file is opened inside _reading: an unreadable cache file is its error too
        with (
            self._reading(recid),
            source.open("rb") if isinstance(source, Path) else io.BytesIO(source) as fh,
        ):
            try:
                record = parse_streamed(
                    fh,
                    portal_url=self.portal.url,
                    load_index=self._load_index if files else _skip_index,
                    local_root=self._local_root,
                )
                return _with_note(record, note) if note else record
            except NeedsGeneralParserError:
                fh.seek(0)  # not the plain shape: the general parser reads it
                doc = load_record_document(fh)
        return self._parse(recid, doc, note, files=files)

    def resolve_full(self, target: str | RecordRef, *, files: bool = True) -> Resolved:
        """The record and its whole API document (as :meth:`resolve`, all of it in memory)."""
        ref = parse_reference(target) if isinstance(target, str) else target
        recid = self.recid_of(ref)
        source, note = self._record_source(recid)
        with self._reading(recid):
            doc = json.loads(source.read_bytes() if isinstance(source, Path) else source)
        return Resolved(self._parse(recid, doc, note, files=files), doc)

    @contextlib.contextmanager
    def _reading(self, recid: str) -> Iterator[None]:
        """Reading record ``recid``'s document: an unreadable cache file or invalid JSON is
        a MetadataError (one wording for the streamed and the whole-document reader)."""
        try:
            yield
        except OSError as exc:
            raise MetadataError(
                f"cached record {recid} cannot be read: {exc}", hint="try again with --refresh"
            ) from None
        except (ValueError, RecursionError):
            raise MetadataError(
                f"record {recid} from {self.portal.url} is not valid JSON"
            ) from None

    def _parse(self, recid: str, doc: Any, note: str | None, *, files: bool) -> Record:
        if not isinstance(doc, dict):
            raise MetadataError(f"record {recid} from {self.portal.url} is not a JSON object")
        record = parse_record(
            doc,
            portal_url=self.portal.url,
            load_index=self._load_index if files else _skip_index,
            local_root=self._local_root,
        )
        if note:
            record = _with_note(record, note)
        return record

    # -- references -------------------------------------------------------------------
    def recid_of(self, ref: RecordRef) -> str:
        if ref.kind == "recid":
            return ref.value
        if self.portal.local:
            return self.portal.find_doi(ref.value)
        hit = self.cache.get_doi(ref.value)
        cached = hit.data.decode("utf-8", "replace").strip() if hit else ""
        # a damaged cache entry is a miss: the recid names the next request and folders
        if is_recid(cached) and (self.settings.offline or not self.settings.refresh):
            return cached
        if self.settings.offline:
            raise _offline(f"DOI {ref.value}")
        recid = self.portal.find_doi(ref.value)
        self.cache.put_doi(ref.value, recid)
        return recid

    # -- record documents ---------------------------------------------------------------
    def _record_source(self, recid: str) -> tuple[bytes | Path, str | None]:
        """The record's document: a file to stream (mirror, fresh cache) or fetched bytes."""
        if self.portal.local:
            path = self.portal.record_file(recid) if isinstance(self.portal, MirrorPortal) else None
            return path or self.portal.get_record(recid), None
        hit = self.cache.record_file(recid)
        if hit and (
            self.settings.offline
            or (not self.settings.refresh and hit[1] <= self.settings.metadata_ttl)
        ):
            return hit[0], None
        if self.settings.offline:
            raise _offline(f"record {recid}")
        try:
            data = self.portal.get_record(recid)
        except TransportError as exc:
            if hit is None:
                raise
            saved = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() - hit[1]))
            return hit[0], f"portal unreachable ({exc.message}); using metadata cached {saved}"
        self.cache.put_record(recid, data)
        return data, None

    # -- raw file indices -----------------------------------------------------------------
    def _load_index(self, entry: Mapping[str, Any]) -> bytes:
        """Bytes of a raw index file named in a record, verified against its declared checksum."""
        uri = str(entry.get("uri") or "")
        name = uri.rsplit("/", 1)[-1]
        declared = entry.get("checksum")
        checksum = parse_checksum(str(declared), where=f"index {name}") if declared else None
        if checksum:
            cached = self.cache.get_index(checksum)
            if cached is not None:
                return cached
        if self.settings.offline:
            raise OfflineError(f"index {name} is not cached and --offline is set")
        url = self.settings.protocol_map.rewrite(uri, "https")
        if scheme_of(url) not in ("http", "https"):
            raise TransportError(
                f"index {name}: no HTTP form of {uri}",
                hint="set ODRUN_PROTOCOL_MAP to map its root:// prefix",
            )
        self._raise_remembered_failure(url)
        size = entry.get("size")
        sized = isinstance(size, int) and type(size) is int and 0 <= size <= MAX_INDEX_BYTES
        limit = size if sized and isinstance(size, int) else MAX_INDEX_BYTES
        try:
            if self._index_outage is not None:
                raise self._index_outage
            data = http.get_bytes(
                self.client, url, self.settings, max_bytes=limit, what=f"index {name}"
            )
        except TooLargeError:  # read no further than the record says: not an outage
            if not sized:
                raise
            raise ChecksumError(
                f"index {name}: the server sends more than the {size} bytes the record says"
            ) from None
        except TransportError as exc:
            # one unreachable host: do not retry it for each of a record's indices
            self._index_outage = TransportError(f"storage unreachable: {exc.message}")
            self._remember_failure(url, exc)
            raise
        except NotFoundError as exc:
            self._remember_failure(url, exc)
            raise
        if isinstance(size, int) and size != len(data):
            raise ChecksumError(f"index {name}: got {len(data)} bytes, record says {size}")
        if checksum:
            actual = checksum_blocks([data], checksum.algorithm)
            if actual != checksum:
                raise ChecksumError(f"index {name}: checksum {actual}, record says {checksum}")
            self.cache.put_index(checksum, data)
        self.cache.clear_index_failure(url)
        return data

    def _raise_remembered_failure(self, url: str) -> None:
        """Fail at once if reading ``url`` failed less than ``index_failure_ttl`` ago."""
        ttl = self.settings.index_failure_ttl
        if ttl <= 0 or self.settings.refresh:
            return
        hit = self.cache.get_index_failure(url)
        if hit is not None and hit.age < ttl:
            raise TransportError(
                f"{hit.data.decode(errors='replace')} (remembered from {hit.saved_at}; asked "
                f"again after ODRUN_INDEX_FAILURE_TTL={ttl:g} s, or with --refresh)"
            )

    def _remember_failure(self, url: str, exc: OdrunError) -> None:
        if self.settings.index_failure_ttl > 0:
            # a read-only cache only costs the retries next time
            with contextlib.suppress(OSError):
                self.cache.put_index_failure(url, exc.message)


def _skip_index(entry: Mapping[str, Any]) -> bytes:
    """The index loader of a command that needs no file list: read nothing."""
    raise MetadataError("not read: this command needs no file list")


def _offline(what: str) -> OfflineError:
    return OfflineError(
        f"{what} is not in the metadata cache and --offline is set",
        hint="run once without --offline, or use a file:// mirror (odrun mirror)",
    )


def _with_note(record: Record, note: str) -> Record:
    return replace(record, notes=(*record.notes, note))


def resolve(target: str | RecordRef, settings: Settings | None = None) -> Record:
    """Resolve a DOI, recid or record URL to a :class:`Record` (file indices expanded)."""
    with Resolver(settings) as resolver:
        return resolver.resolve(target)
