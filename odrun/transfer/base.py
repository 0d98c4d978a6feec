"""The transport protocol: stream a file's bytes from an offset, one module per URI scheme.

A transport only moves bytes. It raises :class:`~odrun.errors.NotFoundError`
for a file that does not exist (never retried), :class:`~odrun.errors.TransientError`
for what a retry may cure, and :class:`~odrun.errors.TransportError` otherwise.
Part files, checksums, retries and caching live in :mod:`odrun.transfer.engine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

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


def skip_prefix(chunks: Iterable[bytes], skip: int) -> Iterator[bytes]:
    """Drop the first ``skip`` bytes of a stream (for sources that cannot seek)."""
    for chunk in chunks:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:] if skip else chunk
        skip = 0
