"""The transport protocol: stream a file's bytes from an offset, one module per URI scheme.

A transport only moves bytes. It raises :class:`~odrun.errors.NotFoundError`
for a file that does not exist (never retried), :class:`~odrun.errors.TransientError`
for what a retry may cure, and :class:`~odrun.errors.TransportError` otherwise.
Part files, checksums, retries and caching live in :mod:`odrun.transfer.engine`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from odrun.errors import ChecksumError, OdrunError, TransientError

#: bytes per chunk a transport yields (and the engine writes)
CHUNK = 4 * 1024 * 1024


class Transport(Protocol):
    #: short name shown to users ("https", "xrootd", "xrdcp", "file")
    name: str
    #: URI schemes this transport reads
    schemes: frozenset[str]

    def available(self) -> bool:
        """Whether this transport can run here (bindings or binaries present)."""
        ...

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        """Yield the bytes of ``uri`` from ``offset`` to the end, in chunks.

        ``size`` is the file's declared size when known; a transport may use it
        to ask for an explicit byte range.
        """
        ...


def length_mismatch(uri: str, actual: int, declared: int) -> OdrunError:
    """The server says its copy has ``actual`` bytes, the record ``declared``: another file.

    Longer is a mismatch (as a body running past the declared size is); shorter may
    be a truncated replica (worth another source). Neither response is ever kept.
    """
    if actual > declared:
        return ChecksumError(
            f"{uri}: the server's copy has {actual} bytes: more bytes than the record declares "
            f"({declared})"
        )
    return TransientError(
        f"{uri}: the server's copy has {actual} bytes, nothing from byte {actual} on: "
        f"the file there is shorter than the record declares ({declared})",
        resumable=False,
    )


def skip_prefix(chunks: Iterable[bytes], skip: int) -> Iterator[bytes]:
    """Drop the first ``skip`` bytes of a stream (for sources that cannot seek)."""
    for chunk in chunks:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:] if skip else chunk
        skip = 0


def hashed(chunks: Iterator[bytes], digest: Callable[[bytes], None]) -> Iterator[bytes]:
    """``chunks`` with ``digest`` fed each one before it is yielded, in the calling thread.

    For a file of one chunk, where :func:`prefetch`'s reader thread has nothing to
    overlap. The source is closed when the consumer stops, as :func:`prefetch` does.
    """
    try:
        for chunk in chunks:
            digest(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()


_DONE = object()


def prefetch(
    chunks: Iterator[bytes],
    depth: int = 4,
    coalesce: int = 256 * 1024,
    digest: Callable[[bytes], None] | None = None,
) -> Iterator[bytes]:
    """Read ``chunks`` in a background thread, so network reads overlap disk writes.

    Small chunks are joined up to ``coalesce`` bytes. ``digest`` (a hasher's
    ``update``) sees every chunk, in order, in the reader thread, before the
    consumer does: checksumming then costs the writer nothing. Errors from the
    source are re-raised here, in order; closing this generator stops the reader.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        if digest is not None and isinstance(item, bytes):
            digest(item)
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        pending: list[bytes] = []
        size = 0
        try:
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= coalesce:
                    if not put(b"".join(pending)):
                        return
                    pending, size = [], 0
            if pending and not put(b"".join(pending)):
                return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            if pending:
                put(b"".join(pending))
            put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    thread = threading.Thread(target=reader, name="odrun-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=30)
