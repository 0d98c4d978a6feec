"""Download one file into the cache: ``.part`` file, streaming verification, retries, resume.

Rules, in order of precedence:

- bytes go to ``<entry>.part``; size and checksum are computed as they arrive;
  the part is renamed into the cache only after both match the record;
- an existing part file is resumed from its end (its bytes are re-hashed first);
- a transient failure (reset, timeout, 5xx, dropped body) is retried with
  exponential backoff and jitter, alternating between the candidate URIs
  (root:// and https:// in ``auto`` mode), up to ``settings.retries`` times;
- a checksum or length mismatch deletes the part and starts again once from
  scratch, then fails naming the file, the expected and the actual value;
- a missing file (404, kXR_NotFound) is not retried on the same URI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odrun.checksum import Hasher, feed_file
from odrun.errors import (
    CancelledError,
    ChecksumError,
    NotFoundError,
    OdrunError,
    TransientError,
    TransportError,
)
from odrun.http import backoff_delay
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer.base import Transport, prefetch
from odrun.transfer.store import FileStore
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
        part = self.store.part(key)
        part.parent.mkdir(parents=True, exist_ok=True)
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
                part.unlink(missing_ok=True)
                if mismatch_restarted:
                    raise
                mismatch_restarted = True
                last = uri  # a corrupt replica: try the other protocol if there is one
            except NotFoundError as exc:
                failed[uri] = exc
            except TransientError as exc:
                failed[uri] = exc
                if len(candidates) > 1:
                    self.demoted.add(_server(uri))
                transient_failures += 1
                if transient_failures > self.settings.retries:
                    raise TransientError(
                        f"{exc.message} (gave up after {transient_failures} attempts)"
                    ) from None
                self.cancelled.wait(backoff_delay(transient_failures, self.settings.retry_backoff))
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
        hasher = Hasher(f.checksum.algorithm if f.checksum else "adler32")
        offset = feed_file(part, hasher) if part.exists() else 0
        if f.size is not None and offset > f.size:
            part.unlink()
            hasher, offset = Hasher(hasher.algorithm), 0
        on_position(offset)
        start = offset
        received = 0
        try:
            with part.open("ab") as out:
                chunks = (
                    iter(())
                    if offset == f.size
                    else prefetch(transport.stream(uri, offset, f.size), digest=hasher.update)
                )
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
        except ChecksumError:
            on_position(0)
            raise
        if f.size is not None and offset < f.size:
            raise TransientError(f"{uri}: transfer ended early at {offset} of {f.size} bytes")
        actual = hasher.checksum()
        if f.checksum is not None and actual != f.checksum:
            on_position(0)
            raise ChecksumError(
                f"{f.path}: checksum {actual} does not match the record's {f.checksum} (from {uri})"
            )
        entry = self.store.commit(part, key, dict(meta, uri=uri, checksum=str(actual)))
        return Transferred(entry, uri, transport.name, received, start)


def _server(uri: str) -> str:
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
