"""One large file in several byte ranges at once, into one ``.part``, resumable range by range.

The file is cut into pieces of :func:`piece_size` bytes; ``streams`` worker
threads each take the next missing piece, ask the transport for exactly that
range (:meth:`RangeReader.read_range`: over HTTP a ``206`` whose Content-Range
names that range and the declared total, over XRootD reads at offsets) and
``pwrite`` its bytes at their offset in the part file, hashing them with
adler32 as they arrive. A stream keeps what it reads through between its ranges
(XRootD: the open file, as an open and a close are a round trip each); a reader
with a ``release(uri)`` method is told when a stream ends. The whole file's
adler32 is then combined in order from the pieces'
(:func:`odrun.checksum.adler32_combine`); other algorithms hash the part from
disk, in order, once every piece is there.

Which pieces are complete (and their adler32) is kept next to the part in
``<key>.part.ranges`` (JSON, replaced atomically after every piece), so an
interrupted multi-stream transfer re-fetches only missing pieces. On resume
every recorded piece is hashed again from disk and dropped if it no longer
matches its record. A part without a record is a single-stream prefix: the
pieces it covers are kept the same way.

One stream failing stops the others from taking new pieces (the pieces in
flight finish and are recorded), then the error goes to the engine, whose retry
resumes the missing pieces. A server that answers a range request with ``200``
(RangeUnsupportedError) makes the engine fetch the file in one stream:
:func:`flatten` first turns the part into the plain prefix that path expects.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from odrun._fs import atomic_write
from odrun.checksum import Checksum, Hasher, adler32, adler32_combine, feed_fd
from odrun.errors import CancelledError, ChecksumError, TransientError

MIB = 1024 * 1024
#: bounds of one piece: small enough to spread over the streams, large enough that
#: a request's round trip (50 ms on a WAN) is small next to its transfer
MIN_PIECE = 8 * MIB
MAX_PIECE = 64 * MIB


@runtime_checkable
class RangeReader(Protocol):
    """A transport that can read one byte range of a file (multi-stream capable)."""

    name: str

    def read_range(self, uri: str, start: int, stop: int, size: int) -> Iterator[bytes]:
        """Yield exactly bytes ``start..stop-1`` of ``uri`` (a file of ``size`` bytes)."""
        ...


def piece_size(size: int, streams: int) -> int:
    """About four pieces per stream, in 64 KiB units, within [MIN_PIECE, MAX_PIECE]."""
    target = -(-size // (streams * 4))
    target = -(-target // (64 * 1024)) * 64 * 1024
    return max(MIN_PIECE, min(MAX_PIECE, target))


def ledger_path(part: Path) -> Path:
    return part.with_name(part.name + ".ranges")


@dataclass
class Ledger:
    """Which pieces of the part file hold their bytes: piece index -> adler32."""

    size: int
    piece: int
    done: dict[int, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return -(-self.size // self.piece) if self.size else 0

    def bounds(self, index: int) -> tuple[int, int]:
        start = index * self.piece
        return start, min(self.size, start + self.piece)

    def held(self) -> int:
        return sum(b - a for a, b in map(self.bounds, self.done))

    def prefix(self) -> int:
        """Bytes held contiguously from the start (what a single-stream resume may keep)."""
        index = 0
        while index in self.done:
            index += 1
        return min(self.size, index * self.piece)

    def combined(self) -> int:
        value = 1
        for index in range(self.count):
            start, stop = self.bounds(index)
            value = adler32_combine(value, self.done[index], stop - start)
        return value

    def save(self, path: Path) -> None:
        data = {"size": self.size, "piece": self.piece, "done": self.done}
        atomic_write(path, json.dumps(data, sort_keys=True).encode())

    @classmethod
    def load(cls, path: Path, size: int) -> Ledger | None:
        """The record for a ``size``-byte file; None when missing, unreadable or another size."""
        try:
            data = json.loads(path.read_text())
            ledger = cls(int(data["size"]), int(data["piece"]))
            ledger.done = {int(k): int(v) for k, v in dict(data["done"]).items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None
        if ledger.size != size or ledger.piece < 1:
            return None
        ledger.done = {i: v for i, v in ledger.done.items() if 0 <= i < ledger.count}
        return ledger


def flatten(part: Path, size: int | None) -> None:
    """Make a multi-stream part a single-stream one: keep its contiguous prefix, drop the record.

    A part with no record is left alone (it already is a prefix).
    """
    record = ledger_path(part)
    if not record.exists():
        return
    ledger = Ledger.load(record, size) if size is not None else None
    keep = ledger.prefix() if ledger else 0
    if part.exists():
        with part.open("r+b") as fh:
            fh.truncate(min(keep, os.fstat(fh.fileno()).st_size))
    record.unlink(missing_ok=True)


def discard(part: Path) -> None:
    """Remove a part file and its record."""
    part.unlink(missing_ok=True)
    ledger_path(part).unlink(missing_ok=True)


@dataclass(frozen=True)
class Ranged:
    """A part file complete to its declared size, hashed, ready for the engine's checks."""

    written: os.stat_result
    checksum: Checksum
    received: int
    resumed_from: int


def _recover(fd: int, ledger: Ledger, claimed: dict[int, int]) -> None:
    """Keep the pieces in ``claimed`` whose bytes on disk still hash to their value."""
    have = os.fstat(fd).st_size
    for index, value in sorted(claimed.items()):
        start, stop = ledger.bounds(index)
        if stop > have:
            continue
        if _hash_range(fd, start, stop) == value:
            ledger.done[index] = value


def _hash_range(fd: int, start: int, stop: int) -> int:
    value = 1
    pos = start
    while pos < stop:
        data = os.pread(fd, min(4 * MIB, stop - pos), pos)
        if not data:
            return -1
        value = adler32(data, value)
        pos += len(data)
    return value


def _pwrite_all(fd: int, data: bytes, pos: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, pos)
        view = view[written:]
        pos += written


class _Run:
    """The shared state of one multi-stream attempt."""

    def __init__(self, ledger: Ledger, record: Path, on_position: Callable[[int], None]) -> None:
        self.ledger = ledger
        self.record = record
        self.on_position = on_position
        self.lock = threading.Lock()
        self.held = ledger.held()
        self.received = 0
        self.error: BaseException | None = None
        self.draining = threading.Event()  # a stream failed: take no new pieces

    def advance(self, n: int) -> None:
        with self.lock:  # under the lock: positions reach the caller in order
            self.held += n
            self.received += n
            self.on_position(self.held)

    def complete(self, index: int, value: int) -> None:
        with self.lock:
            self.ledger.done[index] = value
            self.ledger.save(self.record)

    def lose(self, n: int) -> None:
        """A piece in flight failed: its bytes do not count as held."""
        with self.lock:
            self.held -= n
            self.on_position(self.held)

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None or isinstance(exc, CancelledError):
                self.error = exc
        self.draining.set()


def fetch_ranges(
    reader: RangeReader,
    uri: str,
    part: Path,
    size: int,
    algorithm: str,
    streams: int,
    cancelled: threading.Event,
    on_position: Callable[[int], None],
) -> Ranged:
    """Fill ``part`` with the ``size`` bytes of ``uri`` in up to ``streams`` concurrent ranges.

    Raises the first stream's error after the other streams finished their
    pieces; pieces done so far are recorded for the next attempt.
    """
    record = ledger_path(part)
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size > size:
            os.ftruncate(fd, 0)
            record.unlink(missing_ok=True)
        old = Ledger.load(record, size)
        ledger = Ledger(size, old.piece if old else piece_size(size, streams))
        if old is not None:
            _recover(fd, ledger, old.done)
        else:  # a single-stream prefix: the whole pieces it covers
            have = os.fstat(fd).st_size
            claimed = {
                i: _hash_range(fd, *ledger.bounds(i))
                for i in range(ledger.count)
                if ledger.bounds(i)[1] <= have
            }
            ledger.done.update(claimed)
        ledger.save(record)  # before any byte lands past the prefix
        resumed_from = ledger.held()
        on_position(resumed_from)
        run = _Run(ledger, record, on_position)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        missing = [i for i in range(ledger.count) if i not in ledger.done]
        for index in missing:
            todo.put(index)

        def worker() -> None:
            try:
                while not run.draining.is_set():
                    try:
                        index = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        _fetch_piece(reader, uri, fd, ledger, index, run, cancelled)
                    except BaseException as exc:  # handed to the caller once all streams stop
                        run.fail(exc)
                        return
            finally:
                _release(reader, uri)

        threads = [
            threading.Thread(target=worker, name=f"odrun-range-{n}", daemon=True)
            for n in range(max(1, min(streams, len(missing))))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if run.error is not None:
            raise run.error
        if len(ledger.done) != ledger.count:  # pragma: no cover - every piece ran or failed
            raise TransientError(f"{uri}: {ledger.count - len(ledger.done)} ranges missing")
        if algorithm == "adler32":
            checksum = Checksum("adler32", f"{ledger.combined() & 0xFFFFFFFF:08x}")
        else:
            hasher = Hasher(algorithm)
            feed_fd(fd, hasher)
            checksum = hasher.checksum()
        return Ranged(os.fstat(fd), checksum, run.received, resumed_from)
    finally:
        os.close(fd)


def _release(reader: RangeReader, uri: str) -> None:
    """A stream ends: let the reader close what it kept open for its ranges (optional hook)."""
    release = getattr(reader, "release", None)
    if release is not None:
        release(uri)


def _fetch_piece(
    reader: RangeReader,
    uri: str,
    fd: int,
    ledger: Ledger,
    index: int,
    run: _Run,
    cancelled: threading.Event,
) -> None:
    start, stop = ledger.bounds(index)
    pos, value = start, 1
    try:
        chunks = reader.read_range(uri, start, stop, ledger.size)
        try:
            for chunk in chunks:
                if cancelled.is_set():
                    raise CancelledError(f"{uri}: interrupted at a range from byte {start}")
                if pos + len(chunk) > stop:
                    raise ChecksumError(
                        f"{uri}: more bytes than asked for in range {start}-{stop - 1}"
                    )
                _pwrite_all(fd, chunk, pos)
                value = adler32(chunk, value)
                pos += len(chunk)
                run.advance(len(chunk))
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        if pos != stop:
            raise TransientError(f"{uri}: range {start}-{stop - 1} ended early at byte {pos}")
    except BaseException:
        run.lose(pos - start)
        raise
    run.complete(index, value)
