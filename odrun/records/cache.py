"""On-disk cache of portal metadata responses, one folder per portal.

Layout under ``<cache_dir>/metadata/<portal-key>/``: ``records/<recid>.json``
(the API response bytes as received), ``dois/<sha1(doi)>`` (the recid a DOI
resolved to) and ``indices/<alg>-<hex>`` (raw file-index bytes, keyed by their
verified checksum) and ``failures/<sha1(url)>`` (why an index URL could not be
read, remembered for ``Settings.index_failure_ttl``). Writes are atomic (temp
file + rename), so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from odrun._fs import atomic_write
from odrun.checksum import Checksum

_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class CacheHit:
    data: bytes
    age: float

    @property
    def saved_at(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() - self.age))


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written there (OSError if not)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".odrun-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


class MetadataCache:
    def __init__(self, root: Path, portal_url: str) -> None:
        key = hashlib.sha1(portal_url.rstrip("/").encode()).hexdigest()[:12]
        self.root = root / key

    def _read(self, path: Path) -> CacheHit | None:
        try:
            data = path.read_bytes()
            age = max(0.0, time.time() - path.stat().st_mtime)
        except OSError:
            return None
        return CacheHit(data, age)

    def _record_path(self, recid: str) -> Path:
        if not _SAFE.match(recid):
            recid = hashlib.sha1(recid.encode()).hexdigest()
        return self.root / "records" / f"{recid}.json"

    def record_file(self, recid: str) -> tuple[Path, float] | None:
        """The cached response of ``recid`` and its age in seconds, without reading it."""
        path = self._record_path(recid)
        try:
            return path, max(0.0, time.time() - path.stat().st_mtime)
        except OSError:
            return None

    def get_record(self, recid: str) -> CacheHit | None:
        return self._read(self._record_path(recid))

    def put_record(self, recid: str, data: bytes) -> None:
        atomic_write(self._record_path(recid), data)

    def _doi_path(self, doi: str) -> Path:
        return self.root / "dois" / hashlib.sha1(doi.lower().encode()).hexdigest()

    def get_doi(self, doi: str) -> CacheHit | None:
        return self._read(self._doi_path(doi))

    def put_doi(self, doi: str, recid: str) -> None:
        atomic_write(self._doi_path(doi), recid.encode())

    def _index_path(self, checksum: Checksum) -> Path:
        return self.root / "indices" / f"{checksum.algorithm}-{checksum.value}"

    def get_index(self, checksum: Checksum) -> bytes | None:
        hit = self._read(self._index_path(checksum))
        return hit.data if hit else None

    def put_index(self, checksum: Checksum, data: bytes) -> None:
        atomic_write(self._index_path(checksum), data)

    def _failure_path(self, url: str) -> Path:
        return self.root / "failures" / hashlib.sha1(url.encode()).hexdigest()

    def get_index_failure(self, url: str) -> CacheHit | None:
        """Why reading the index at ``url`` failed last time, and how long ago (or None)."""
        return self._read(self._failure_path(url))

    def put_index_failure(self, url: str, reason: str) -> None:
        atomic_write(self._failure_path(url), reason.encode())

    def clear_index_failure(self, url: str) -> None:
        self._failure_path(url).unlink(missing_ok=True)
