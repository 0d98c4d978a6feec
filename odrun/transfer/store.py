"""The content-addressed file cache shared by every analysis on a machine.

Layout under ``<cache_dir>/files/``::

    adler32/0a/0a1b2c3d-1048576          verified bytes, read-only (0444)
    adler32/0a/0a1b2c3d-1048576.json     where they came from (uri, recid, time)
    adler32/0a/0a1b2c3d-1048576.part     a transfer in progress (resumable)
    adler32/0a/0a1b2c3d-1048576.lock     flock(2) lock held while transferring

A file is keyed by its declared checksum *and* size (adler32 alone is only 32
bits). Files a record declares no checksum for are keyed by URI under
``nochecksum/`` and verified by size only. An entry appears only by rename after
verification, so nothing unverified is ever visible in the cache. Destinations
get hard links to entries (or copies across filesystems).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odrun._fs import LinkMode, atomic_write, place
from odrun.checksum import checksum_file
from odrun.errors import CancelledError
from odrun.records.model import RecordFile


def cache_key(f: RecordFile) -> str:
    """Relative cache path of a record file's content."""
    if f.checksum is not None and f.size is not None:
        value = f.checksum.value
        return f"{f.checksum.algorithm}/{value[:2]}/{value}-{f.size}"
    digest = hashlib.sha1(f.uri.encode()).hexdigest()
    return f"nochecksum/{digest[:2]}/{digest}-{f.size if f.size is not None else 'x'}"


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size: int
    meta: dict[str, Any]

    @property
    def last_used(self) -> float:
        return float(self.meta.get("last_used") or self.path.stat().st_mtime)


class FileStore:
    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / "files"

    def entry(self, key: str) -> Path:
        return self.root / key

    def part(self, key: str) -> Path:
        return self.root / f"{key}.part"

    def has(self, key: str) -> bool:
        return self.entry(key).is_file()

    @contextlib.contextmanager
    def lock(self, key: str, cancelled: threading.Event | None = None) -> Iterator[None]:
        """Exclusive lock on one key, across threads and processes (flock on its own fd).

        Waiting polls, so that a Ctrl-C (``cancelled``) is not stuck behind another
        process's transfer.
        """
        path = self.root / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:  # another process holds the file: poll, bounded by it
                    if (cancelled or threading.Event()).wait(0.1):
                        raise CancelledError(f"interrupted while waiting for {key}") from None
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def commit(self, part: Path, key: str, meta: dict[str, Any]) -> Path:
        """Publish a verified part file as the entry ``key``."""
        entry = self.entry(key)
        os.chmod(part, 0o444)
        os.replace(part, entry)
        stat = entry.stat()
        self._write_meta(
            key, dict(meta, last_used=time.time(), size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        )
        return entry

    def intact(self, key: str) -> bool:
        """Whether entry ``key`` is still what was committed (cheap: size and mtime).

        A destination is a hard link to its entry: writing into it changes the
        entry. Such an entry no longer counts as cached; it is verified again
        (and dropped if it no longer matches its key).
        """
        entry = self.entry(key)
        try:
            stat = entry.stat()
        except OSError:
            return False
        meta = self.read_meta(key)
        if stat.st_size == meta.get("size") and stat.st_mtime_ns == meta.get("mtime_ns"):
            return True
        ok = self.verify_entry(CacheEntry(key, entry, stat.st_size, meta)) is None
        if ok:
            self._write_meta(key, dict(meta, size=stat.st_size, mtime_ns=stat.st_mtime_ns))
        else:
            self.remove(key)
        return ok

    def _write_meta(self, key: str, meta: dict[str, Any]) -> None:
        atomic_write(self.root / f"{key}.json", json.dumps(meta, sort_keys=True).encode())

    def touch(self, key: str) -> None:
        meta = self.read_meta(key)
        meta["last_used"] = time.time()
        self._write_meta(key, meta)

    def read_meta(self, key: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def link(self, key: str, dest: Path) -> LinkMode:
        """Make ``dest`` show the entry's bytes: a hard link, or a copy across filesystems."""
        return place(self.entry(key), dest)

    def same_file(self, key: str, dest: Path) -> bool:
        try:
            return os.path.samefile(self.entry(key), dest)
        except OSError:
            return False

    # -- maintenance: ls, verify, gc ------------------------------------------------------
    def entries(self) -> Iterator[CacheEntry]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*/*")):
            if path.suffix in (".json", ".part", ".lock") or not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            yield CacheEntry(key, path, path.stat().st_size, self.read_meta(key))

    def verify_entry(self, entry: CacheEntry) -> str | None:
        """None when the entry's bytes match its key, else what is wrong."""
        algorithm, _, name = entry.key.split("/", 2)
        if algorithm == "nochecksum":
            return None
        value, _, size = name.rpartition("-")
        if entry.size != int(size):
            return f"size {entry.size}, expected {size}"
        actual = checksum_file(entry.path, algorithm)
        if actual.value != value:
            return f"checksum {actual}, expected {algorithm}:{value}"
        return None

    def remove(self, key: str) -> None:
        for suffix in ("", ".json", ".part"):
            (self.root / f"{key}{suffix}").unlink(missing_ok=True)

    def stale_parts(self, older_than: float) -> Iterator[Path]:
        now = time.time()
        if self.root.is_dir():
            for part in self.root.glob("*/*/*.part"):
                if now - part.stat().st_mtime > older_than:
                    yield part
