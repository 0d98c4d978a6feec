"""Download one file into the cache: ``.part`` file, streaming verification, retries, resume.

Rules, in order of precedence:

- bytes go to ``<entry>.part`` through one descriptor, opened once: the part's
  existing bytes are re-hashed through it, new bytes are hashed as they are
  appended through it; before the rename into the cache, ``fstat`` of that
  descriptor must show the declared size and the path must still name that
  inode (a part removed, replaced or truncated behind the fetch is never
  published: the file starts again);
- a part is only ever resumed from bytes of responses that vouched for the
  declared size (see :mod:`odrun.transfer.http`); a response that disagrees,
  or a body that ends short without an error, is dropped with the part
  (``TransientError.resumable`` is False);
- files the record declares no checksum for are checked by size only and
  reported *unverified*;
- a full disk (ENOSPC, EDQUOT) is a DiskFullError naming the filesystem; the
  part is kept (it resumes once there is room) unless it is empty;
- a transient failure (reset, timeout, 5xx, dropped body) is retried with
  exponential backoff and jitter, alternating between the candidate URIs
  (root:// and https:// in ``auto`` mode), up to ``settings.retries`` times
  (the budget and the interruptible wait come from :class:`odrun._retry.RetryPolicy`;
  the loop is its own because it alternates URIs, demotes servers and counts only
  transient failures);
- a checksum or length mismatch deletes the part and starts again once from
  scratch, then fails naming the file, the expected and the actual value;
- a missing file (404, kXR_NotFound) is not retried on the same URI.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from odrun._retry import RetryPolicy
from odrun.checksum import Hasher, feed_fd
from odrun.errors import (
    CancelledError,
    ChecksumError,
    DiskFullError,
    NotFoundError,
    OdrunError,
    RangeUnsupportedError,
    TransientError,
    TransportError,
)
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer.base import CHUNK, Transport, hashed, prefetch
from odrun.transfer.multistream import (
    Ledger,
    RangeReader,
    discard,
    fetch_ranges,
    flatten,
    ledger_path,
)
from odrun.transfer.space import disk_full, is_disk_full
from odrun.transfer.store import CACHE_HINT, FileStore
from odrun.urls import scheme_of

#: called with how many bytes of the file the part file holds now
PositionCallback = Callable[[int], None]


@dataclass(frozen=True)
class Transferred:
    entry: Path
    uri: str
    transport: str
    bytes: int
    resumed_from: int


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: FileStore,
        transports: Sequence[Transport],
    ) -> None:
        self.settings = settings
        self.store = store
        self.transports = [t for t in transports if t.available()]
        #: servers (scheme://host:port) that failed transiently: tried last from then on
        self.demoted: set[str] = set()
        #: set on Ctrl-C: transfers stop at the next chunk, keeping their part files
        self.cancelled = threading.Event()
        #: servers that answered a byte-range request with the whole file: one stream there
        self.no_ranges: set[str] = set()

    def transport_for(self, uri: str) -> Transport:
        scheme = scheme_of(uri)
        for transport in self.transports:
            if scheme in transport.schemes:
                return transport
        raise TransportError(
            f"{uri}: no transport for {scheme or 'this'}:// here",
            hint="pip install 'odrun[xrootd]' for root://, or use --protocol https",
        )

    def download(
        self,
        f: RecordFile,
        key: str,
        candidates: Sequence[str],
        meta: dict[str, Any],
        on_position: PositionCallback,
    ) -> Transferred:
        """Bring ``f`` into the cache as ``key``. The caller holds the key's lock."""
        part = self.store.part(key)  # its folder exists: it holds the key's lock file
        # the loop alternates URIs and retries only transient failures: it takes the
        # policy's budget and interruptible backoff wait, not its run() (see odrun._retry)
        policy = RetryPolicy.from_settings(self.settings, cancelled=self.cancelled)
        transient_failures = 0
        mismatch_restarted = False
        failed: dict[str, OdrunError] = {}
        last: str | None = None
        while True:
            if self.cancelled.is_set():
                raise CancelledError(f"{f.path}: interrupted")
            live = [u for u in candidates if not isinstance(failed.get(u), NotFoundError)]
            live.sort(key=lambda u: _server(u) in self.demoted)  # stable: order kept otherwise
            if not live:
                raise next(iter(failed.values()))
            # alternate: never the URI that just failed when there is another
            uri = next((u for u in live if u != last), live[0])
            last = None
            try:
                return self._attempt(f, uri, part, on_position, meta, key)
            except CancelledError:
                raise
            except ChecksumError:
                discard(part)
                if mismatch_restarted:
                    raise
                mismatch_restarted = True
                last = uri  # a corrupt replica: try the other protocol if there is one
            except NotFoundError as exc:
                failed[uri] = exc
            except TransientError as exc:
                if not exc.resumable:
                    discard(part)
                failed[uri] = exc
                if len(candidates) > 1:
                    self.demoted.add(_server(uri))
                transient_failures += 1
                if transient_failures >= policy.attempts:
                    raise TransientError(
                        f"{exc.message} (gave up after {transient_failures} attempts)"
                    ) from None
                policy.wait(transient_failures)  # a cancellation is raised at the loop's top
                last = uri
            except TransportError as exc:
                failed[uri] = exc
                if all(u in failed for u in candidates):
                    raise
                last = uri

    def _attempt(
        self,
        f: RecordFile,
        uri: str,
        part: Path,
        on_position: PositionCallback,
        meta: dict[str, Any],
        key: str,
    ) -> Transferred:
        transport = self.transport_for(uri)
        if self._multistream(f, transport, uri):
            try:
                return self._attempt_ranges(f, uri, transport, part, on_position, meta, key)
            except RangeUnsupportedError:
                self.no_ranges.add(_server(uri))
        flatten(part, f.size)  # a multi-stream part becomes its contiguous prefix
        try:
            # O_APPEND: a part truncated behind our back shows in its size, never as a hole
            out = _open_part(part)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise self._full(exc, part, f, 0) from None
        with out:
            hasher, offset = self._resume_point(f, out)
            on_position(offset)
            start = offset
            received = 0
            try:
                chunks: Iterator[bytes]
                if offset == f.size:
                    chunks = iter(())
                elif f.size is not None and f.size - offset <= CHUNK:
                    # one read's worth: a reader thread would only add hand-offs
                    chunks = hashed(transport.stream(uri, offset, f.size), hasher.update)
                else:
                    chunks = prefetch(transport.stream(uri, offset, f.size), digest=hasher.update)
                for chunk in chunks:
                    if self.cancelled.is_set():
                        raise CancelledError(f"{f.path}: interrupted at {offset} bytes")
                    out.write(chunk)  # already hashed by the reader thread
                    offset += len(chunk)
                    received += len(chunk)
                    on_position(offset)
                    if f.size is not None and offset > f.size:
                        raise ChecksumError(
                            f"{f.path}: more bytes than the record declares "
                            f"({offset} > {f.size}) from {uri}"
                        )
                out.flush()
                written = os.fstat(out.fileno())
            except ChecksumError:
                on_position(0)
                raise
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                raise self._full(exc, part, f, os.fstat(out.fileno()).st_size) from None
        if f.size is not None and offset < f.size:
            # the response ended without an error: the server's file is shorter than declared
            raise TransientError(
                f"{uri}: transfer ended early at {offset} of {f.size} bytes", resumable=False
            )
        if written.st_size != offset or (f.size is not None and written.st_size != f.size):
            raise TransientError(
                f"{part}: holds {written.st_size} bytes after writing {offset} (changed by "
                "another process?); starting this file again",
                resumable=False,
            )
        actual = hasher.checksum()
        if f.checksum is not None and actual != f.checksum:
            on_position(0)
            raise ChecksumError(
                f"{f.path}: checksum {actual} does not match the record's {f.checksum} (from {uri})"
            )
        entry = self.store.commit(part, key, dict(meta, uri=uri, checksum=str(actual)), written)
        return Transferred(entry, uri, transport.name, received, start)

    def _multistream(self, f: RecordFile, transport: Transport, uri: str) -> bool:
        """Whether ``f`` goes in several concurrent byte ranges (:func:`streams_for`)."""
        return (
            streams_for(self.settings, uri) > 1
            and f.size is not None
            and f.size > 0
            and f.size >= self.settings.streams_min_size
            and isinstance(transport, RangeReader)
            and _server(uri) not in self.no_ranges
        )

    def _attempt_ranges(
        self,
        f: RecordFile,
        uri: str,
        transport: Transport,
        part: Path,
        on_position: PositionCallback,
        meta: dict[str, Any],
        key: str,
    ) -> Transferred:
        assert f.size is not None
        assert isinstance(transport, RangeReader)
        algorithm = f.checksum.algorithm if f.checksum else "adler32"
        try:
            done = fetch_ranges(
                transport,
                uri,
                part,
                f.size,
                algorithm,
                streams_for(self.settings, uri),
                self.cancelled,
                on_position,
            )
        except ChecksumError:
            on_position(0)
            raise
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            ledger = Ledger.load(ledger_path(part), f.size)
            raise self._full(exc, part, f, ledger.held() if ledger else 0) from None
        if done.written.st_size != f.size:
            raise TransientError(
                f"{part}: holds {done.written.st_size} bytes after a multi-stream transfer of "
                f"{f.size} (changed by another process?); starting this file again",
                resumable=False,
            )
        if f.checksum is not None and done.checksum != f.checksum:
            on_position(0)
            raise ChecksumError(
                f"{f.path}: checksum {done.checksum} does not match the record's "
                f"{f.checksum} (from {uri}, {streams_for(self.settings, uri)} streams)"
            )
        entry = self.store.commit(
            part, key, dict(meta, uri=uri, checksum=str(done.checksum)), done.written
        )
        ledger_path(part).unlink(missing_ok=True)
        return Transferred(entry, uri, transport.name, done.received, done.resumed_from)

    @staticmethod
    def _resume_point(f: RecordFile, out: IO[bytes]) -> tuple[Hasher, int]:
        """Hash what the part holds, through the descriptor the new bytes will go to."""
        algorithm = f.checksum.algorithm if f.checksum else "adler32"
        hasher = Hasher(algorithm)
        offset = feed_fd(out.fileno(), hasher)
        if f.size is not None and offset > f.size:
            out.truncate(0)
            hasher, offset = Hasher(algorithm), 0
        return hasher, offset

    @staticmethod
    def _full(exc: OSError, part: Path, f: RecordFile, have: int) -> DiskFullError:
        """A full cache: keep a part that can resume once there is room, drop an empty one."""
        if have == 0:
            part.unlink(missing_ok=True)
        needed = f.size - have if f.size is not None else None
        return disk_full(exc, part, needed, f"{f.path} into the cache", hint=CACHE_HINT)


#: byte-range streams for one large file when ``settings.streams`` is 0 (automatic)
AUTO_STREAMS = 4


def streams_for(settings: Settings, uri: str) -> int:
    """How many byte ranges of one large file from ``uri`` to fetch at once.

    An explicit ``settings.streams`` (``--streams``, ``ODRUN_STREAMS``, config) as it
    is; automatic (0): :data:`AUTO_STREAMS`, but one from a server on this machine
    (a loopback address, ``localhost``, ``file://``): there no link caps a connection,
    so more streams only add CPU work (on a busy 2-core machine 512 MiB took longer in
    4 streams than in one). The host is not looked up: a name is a network host.
    """
    if settings.streams:
        return settings.streams
    return 1 if _on_this_machine(uri) else AUTO_STREAMS


def _on_this_machine(uri: str) -> bool:
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return False
    if scheme == "file":
        return True
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _open_part(part: Path) -> IO[bytes]:
    """The part file for appending; its folder is made again if it was removed meanwhile."""
    try:
        return part.open("a+b")
    except FileNotFoundError:
        part.parent.mkdir(parents=True, exist_ok=True)
        return part.open("a+b")


def _server(uri: str) -> str:
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
