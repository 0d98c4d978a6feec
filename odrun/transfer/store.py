"""The content-addressed file cache shared by every analysis on a machine.

Layout under ``<cache_dir>/files/``::

    adler32/0a/0a1b2c3d-1048576          verified bytes, read-only (0444)
    adler32/0a/0a1b2c3d-1048576.json     where they came from (uri, recid, time)
    adler32/0a/0a1b2c3d-1048576.part     a transfer in progress (resumable)
    adler32/0a/0a1b2c3d-1048576.lock     flock(2) lock held while transferring

A file is keyed by its declared checksum *and* size (adler32 alone is only 32
bits). Files a record declares no checksum for are keyed by URI under
``nochecksum/``, checked by size only and reported as *unverified*. An entry
appears only by rename after verification, so nothing unchecked is ever visible
in the cache. Destinations get hard links to entries (or copies across
filesystems).

Every operation on a key (fetch, ``cache ls``/``verify``/``gc``, removal) holds
the key's lock (``flock`` on ``<key>.lock``). Maintenance never waits for a
transfer: an entry or part whose lock is held is reported busy and left alone.
Bookkeeping (``last_used`` in the ``.json``) is best effort: a full cache never
fails a file that is already in place.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from odrun import untrusted
from odrun._fs import LinkMode, place
from odrun.checksum import checksum_file
from odrun.errors import CancelledError, TransientError
from odrun.records.model import RecordFile
from odrun.transfer.space import disk_full, is_disk_full

EntryStatus = Literal["ok", "unverified", "bad", "busy"]
UNCHECKED = "nochecksum/"
CACHE_HINT = "free space with: odrun cache gc --max-size SIZE, or set ODRUN_CACHE_DIR elsewhere"


def cache_key(f: RecordFile) -> str:
    """Relative cache path of a record file's content."""
    if f.checksum is not None and f.size is not None:
        value = f.checksum.value
        return f"{f.checksum.algorithm}/{value[:2]}/{value}-{f.size}"
    digest = hashlib.sha1(f.uri.encode()).hexdigest()
    return f"nochecksum/{digest[:2]}/{digest}-{f.size if f.size is not None else 'x'}"


def unverified(key: str) -> bool:
    """Whether entry ``key`` has no declared checksum (its size alone was checked)."""
    return key.startswith(UNCHECKED)


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: Path
    size: int
    meta: dict[str, Any]
    mtime: float = 0.0
    #: a fetch held the entry's lock when it was listed
    busy: bool = False

    @property
    def last_used(self) -> float:
        return float(self.meta.get("last_used") or self.mtime)


@dataclass(frozen=True)
class EntryCheck:
    """``cache verify``'s verdict on one entry."""

    key: str
    status: EntryStatus
    problem: str | None = None
    removed: bool = False


@dataclass
class GcReport:
    #: part files (paths) and entries (keys) removed
    removed: list[str] = field(default_factory=list)
    #: keys left alone because a fetch held their lock
    skipped: list[str] = field(default_factory=list)
    freed: int = 0


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
        fd = self._lock_fd(key)
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

    @contextlib.contextmanager
    def try_lock(self, key: str) -> Iterator[bool]:
        """The key's lock if it is free now (yields True), else yields False at once.

        In a cache this process may not write (read-only, another user's), the
        existing lock file is locked read-only; without one, nobody can be
        transferring there (a fetch would have had to create it).
        """
        try:
            fd = self._lock_fd(key)
        except OSError:
            try:
                fd = os.open(self.root / f"{key}.lock", os.O_RDONLY)
            except OSError:
                yield True
                return
        held = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                pass
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _lock_fd(self, key: str) -> int:
        path = self.root / f"{key}.lock"
        try:
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the key's folder: made once, not tried per file
                path.parent.mkdir(parents=True, exist_ok=True)
                return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(exc, path, None, "a lock file", hint=CACHE_HINT) from None
            raise

    def commit(
        self, part: Path, key: str, meta: dict[str, Any], written: os.stat_result | None = None
    ) -> Path:
        """Publish a verified part file as the entry ``key``. The caller holds the key's lock.

        ``written`` is the ``fstat`` of the descriptor the bytes were written (and
        hashed) through: the entry must be that very inode, with that size, or
        nothing is published (TransientError, not resumable).
        """
        entry = self.entry(key)
        if written is not None:
            _same_inode(part, written, "before publishing")
        os.chmod(part, 0o444)
        os.replace(part, entry)
        if written is not None:
            try:
                stat = _same_inode(entry, written, "while publishing")
            except TransientError:
                entry.unlink(missing_ok=True)
                raise
        else:
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

    def _write_meta(self, key: str, meta: dict[str, Any]) -> bool:
        """Write an entry's bookkeeping; on a full disk skip it (False): it is advisory."""
        try:
            _replace_locked(self.root / f"{key}.json", json.dumps(meta, sort_keys=True).encode())
        except OSError as exc:
            if is_disk_full(exc):
                return False
            raise
        return True

    def touch(self, key: str) -> None:
        meta = self.read_meta(key)
        meta["last_used"] = time.time()
        self._write_meta(key, meta)

    def read_meta(self, key: str) -> dict[str, Any]:
        try:
            data = untrusted.load_json((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}  # a damaged entry is no metadata

    def link(self, key: str, dest: Path) -> LinkMode:
        """Make ``dest`` show the entry's bytes: a hard link, or a copy across filesystems.

        Nothing is left behind on failure (:func:`odrun._fs.place` removes its temporary
        name), and a full destination is a DiskFullError naming its filesystem.
        """
        try:
            return place(self.entry(key), dest)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(
                    exc, dest, self._size(key), f"a copy of {dest.name}",
                    hint=f"free space there or fetch to another --dest than {dest.parent}",
                ) from None  # fmt: skip
            raise

    def _size(self, key: str) -> int | None:
        try:
            return self.entry(key).stat().st_size
        except OSError:
            return None

    def same_file(self, key: str, dest: Path) -> bool:
        try:
            return os.path.samefile(self.entry(key), dest)
        except OSError:
            return False

    # -- maintenance: ls, verify, gc (each key under its lock; busy keys are left alone) -------
    def _candidates(self) -> Iterator[tuple[str, Path]]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/*/*")):
            if path.suffix in (".json", ".part", ".lock", ".ranges") or path.name.startswith("."):
                continue
            yield path.relative_to(self.root).as_posix(), path

    def _read_entry(self, key: str, path: Path, busy: bool = False) -> CacheEntry | None:
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed since it was listed
            return None
        if not os.path.isfile(path):
            return None
        return CacheEntry(key, path, stat.st_size, self.read_meta(key), stat.st_mtime, busy)

    def entries(self) -> Iterator[CacheEntry]:
        """Every entry, each read under its lock (or marked busy when a fetch holds it)."""
        for key, path in self._candidates():
            with self.try_lock(key) as held:
                entry = self._read_entry(key, path, busy=not held)
            if entry is not None:
                yield entry

    def verify_entry(self, entry: CacheEntry) -> str | None:
        """None when the entry's bytes match its key (its size, for unverified keys)."""
        algorithm, _, name = entry.key.split("/", 2)
        value, _, size = name.rpartition("-")
        if size.isdigit() and entry.size != int(size):
            return f"size {entry.size}, expected {size}"
        if algorithm == UNCHECKED.rstrip("/"):
            return None
        actual = checksum_file(entry.path, algorithm)
        if actual.value != value:
            return f"checksum {actual}, expected {algorithm}:{value}"
        return None

    def verify(self, *, remove_bad: bool = False) -> Iterator[EntryCheck]:
        """Re-hash every entry against its key, under its lock."""
        for key, path in self._candidates():
            with self.try_lock(key) as held:
                if not held:
                    yield EntryCheck(key, "busy", "in use by a running fetch: not checked")
                    continue
                entry = self._read_entry(key, path)
                if entry is None:
                    continue
                problem = self.verify_entry(entry)
                if problem:
                    if remove_bad:
                        self.remove(key)
                    yield EntryCheck(key, "bad", problem, removed=remove_bad)
                elif unverified(key):
                    yield EntryCheck(key, "unverified", "unverified (no checksum declared)")
                else:
                    yield EntryCheck(key, "ok")

    def remove(self, key: str) -> None:
        """Delete an entry, its bookkeeping and its part. The caller holds the key's lock."""
        for suffix in ("", ".json", ".part", ".part.ranges"):
            (self.root / f"{key}{suffix}").unlink(missing_ok=True)

    def gc(self, *, parts_older_than: float, max_size: int | None = None) -> GcReport:
        """Remove part files older than ``parts_older_than`` seconds, then, with ``max_size``,
        least recently used entries until the cache holds at most that many bytes."""
        report = GcReport()
        now = time.time()
        parts = sorted(self.root.glob("*/*/*.part")) if self.root.is_dir() else []
        for part in parts:
            cutoff = now - parts_older_than
            if part.name.startswith("."):  # a crashed metadata write's temp file: no key
                if _stale_size(part, cutoff) is not None:
                    part.unlink(missing_ok=True)
                    report.removed.append(str(part))
                continue
            key = part.relative_to(self.root).as_posix().removesuffix(".part")
            if _stale_size(part, cutoff) is None:
                continue
            with self.try_lock(key) as held:
                if not held:  # a fetch is resuming it
                    report.skipped.append(key)
                    continue
                size = _stale_size(part, cutoff)  # again, under the lock: it may have resumed
                if size is not None:
                    part.unlink(missing_ok=True)
                    part.with_name(part.name + ".ranges").unlink(missing_ok=True)
                    report.removed.append(str(part))
                    report.freed += size
        if max_size is not None:
            entries = sorted(self.entries(), key=lambda e: e.last_used)
            total = sum(e.size for e in entries)
            for entry in entries:
                if total <= max_size:
                    break
                with self.try_lock(entry.key) as held:
                    if not held:
                        report.skipped.append(entry.key)
                        continue
                    self.remove(entry.key)
                total -= entry.size
                report.removed.append(entry.key)
                report.freed += entry.size
        return report


def _replace_locked(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by rename, readers see the old or the new file: the
    cheap form of :func:`odrun._fs.atomic_write` for a file of one key, whose lock the
    caller holds (a fetch writes one per file).

    The temporary name is fixed (``.<name>.part``: no other writer can hold the lock;
    ``cache gc`` removes one a crash left). It is created, never opened through: a
    leftover (or a link planted there) is removed first.
    """
    tmp = path.with_name(f".{path.name}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileExistsError:
        tmp.unlink()
        fd = os.open(tmp, flags, 0o644)
    try:
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: cache metadata is shareable
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _stale_size(path: Path, cutoff: float) -> int | None:
    """The file's size when it was last modified before ``cutoff``; None if newer or gone."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size if stat.st_mtime < cutoff else None


def _same_inode(path: Path, written: os.stat_result, when: str) -> os.stat_result:
    """``path``'s stat; raise unless it is the inode of ``written`` with its size (the bytes
    hashed)."""
    try:
        now = path.stat()
    except FileNotFoundError:
        now = None
    if (
        now is None
        or (now.st_dev, now.st_ino) != (written.st_dev, written.st_ino)
        or now.st_size != written.st_size
    ):
        raise TransientError(
            f"{path}: the part file was removed or replaced {when} (another process "
            "ignoring the cache lock?); starting this file again",
            resumable=False,
        )
    return now
