"""``http(s)://`` transport through httpx, with Range requests for resume.

What a response must show before its bytes are used (``size`` is the declared size):

- ``200``: a Content-Length equal to ``size``; without one, the body is used only
  if it delivers exactly ``size`` bytes (on a failure or a short end it is dropped,
  never resumed from: ``TransientError.resumable`` is False);
- ``206`` (a resume): ``Content-Range: bytes <offset>-<last>/<size>``, the start
  we asked for AND the declared total length;
- a ``200`` to a Range request (the server ignores Range) must carry the full
  declared Content-Length; its first ``offset`` bytes are dropped.

Anything else (another length, another range, an unknown total) is not this file:
a longer one is a ChecksumError, a shorter or unclear one a TransientError whose
bytes are not kept.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from odrun import http as odrun_http
from odrun.errors import NotFoundError, RangeUnsupportedError, TransientError, TransportError
from odrun.settings import Settings
from odrun.transfer.base import length_mismatch, skip_prefix
from odrun.untrusted import count

if TYPE_CHECKING:
    import httpx

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class HttpTransport:
    name = "https"
    schemes = frozenset({"http", "https"})

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """One connection pool shared by all worker threads, made on first use."""
        with self._lock:
            if self._client is None:
                _widen_reads()
                self._client = odrun_http.make_client(self.settings)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def available(self) -> bool:
        return True

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        import httpx  # noqa: PLC0415 - lazy: costs ~0.1 s

        # identity: the bytes on the wire are the file's bytes (raw reads, no decoding)
        headers = {"Accept-Encoding": "identity"}
        vouched = False  # whether the response vouched for the declared length
        try:
            if offset:
                # explicit ranges: XrdHttp 5.5 answers an open-ended "bytes=N-" with no body
                if size is None:
                    size = self._length(uri)
                if offset >= size:
                    return
                headers["Range"] = f"bytes={offset}-{size - 1}"
            with self.client.stream("GET", uri, headers=headers) as response:
                _check_status(response, uri, offset)
                # a server that ignores Range sends everything: drop what we have
                skip, vouched = _check_length(response, uri, offset, size)
                # chunks as they arrive: a dropped connection loses nothing received
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                chunks = response.iter_bytes() if encoded else response.iter_raw()
                yield from skip_prefix(chunks, skip)
        except httpx.TimeoutException:
            raise TransientError(
                f"{uri}: timed out after {self.settings.timeout:g} s without data",
                resumable=vouched,
            ) from None
        except httpx.TransportError as exc:
            raise TransientError(f"{uri}: {type(exc).__name__}: {exc}", resumable=vouched) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(f"{uri}: {type(exc).__name__}: {exc}") from None

    def read_range(self, uri: str, start: int, stop: int, size: int) -> Iterator[bytes]:
        """Yield bytes ``start..stop-1`` of ``uri``, a file of ``size`` bytes (multi-stream).

        Only a ``206`` whose Content-Range is exactly ``start-(stop-1)/size`` is used;
        a ``200`` (the server ignores Range) is a RangeUnsupportedError, read no further.
        """
        import httpx  # noqa: PLC0415 - lazy: costs ~0.1 s

        headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{stop - 1}"}
        vouched = False
        try:
            with self.client.stream("GET", uri, headers=headers) as response:
                _check_status(response, uri, start)
                if response.status_code != 206:
                    raise RangeUnsupportedError(f"{uri}: server ignored a byte-range request")
                _check_range(response, uri, start, stop, size)
                vouched = True
                yield from response.iter_raw()
        except httpx.TimeoutException:
            raise TransientError(
                f"{uri}: timed out after {self.settings.timeout:g} s without data",
                resumable=vouched,
            ) from None
        except httpx.TransportError as exc:
            raise TransientError(f"{uri}: {type(exc).__name__}: {exc}", resumable=vouched) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(f"{uri}: {type(exc).__name__}: {exc}") from None

    def _length(self, uri: str) -> int:
        response = self.client.head(uri)
        _check_status(response, uri, 0)
        length = _content_length(response)
        if length is None:
            raise TransientError(f"{uri}: server did not say the file's length")
        return length


def _check_status(response: httpx.Response, uri: str, offset: int) -> None:
    """Raise for a status that is not a file's bytes."""
    status = response.status_code
    if status in (404, 410):
        raise NotFoundError(f"{uri}: HTTP {status}, no such file")
    if status in odrun_http.RETRY_STATUS:
        raise TransientError(f"{uri}: HTTP {status}")
    if status == 416 and offset:
        raise TransientError(
            f"{uri}: HTTP 416, nothing from byte {offset} on: the file there is shorter "
            "than the record declares"
        )
    if status >= 400:
        raise TransportError(f"{uri}: HTTP {status}", hint="check access rights and the URL")
    if status not in (200, 206):
        raise TransportError(f"{uri}: HTTP {status}, expected 200 or 206 with the file's bytes")


def _check_length(
    response: httpx.Response, uri: str, offset: int, size: int | None
) -> tuple[int, bool]:
    """Check a 200/206 against the declared size: (leading bytes to drop, vouched)."""
    length = _content_length(response)
    if response.status_code == 206:
        _content_range(response, uri, offset, None, size)
        return 0, True
    if length is not None and size is not None and length != size:
        raise length_mismatch(uri, length, size)
    vouched = length is not None
    if offset and not vouched:
        raise TransientError(
            f"{uri}: server ignored the Range request and did not say the length",
            resumable=False,
        )
    return offset, vouched


def _content_range(
    response: httpx.Response, uri: str, start: int, last: int | None, size: int | None
) -> None:
    """A 206 must say ``bytes start-last/size`` (``last`` None: any end; ``size`` None: any
    total but a number): the bytes asked for, of a file of the declared length."""
    header = response.headers.get("content-range", "").strip()
    match = _CONTENT_RANGE.fullmatch(header)
    wrong_end = last is not None and match is not None and count(match.group(2)) != last
    if not match or count(match.group(1)) != start or wrong_end:
        asked = f"bytes {start}-{last}" if last is not None else f"bytes from {start}"
        raise TransientError(
            f"{uri}: server answered a different byte range ({header!r} for {asked})",
            resumable=False,
        )
    total = count(match.group(3))
    if total is None:
        raise TransientError(
            f"{uri}: server's Content-Range does not say the file's length", resumable=False
        )
    if size is not None and total != size:
        raise length_mismatch(uri, total, size)


def _check_range(response: httpx.Response, uri: str, start: int, stop: int, size: int) -> None:
    """A 206 to ``bytes=start-(stop-1)`` must say exactly that range of a ``size``-byte file."""
    _content_range(response, uri, start, stop - 1, size)
    length = _content_length(response)
    if length is not None and length != stop - start:
        raise TransientError(
            f"{uri}: Content-Length {length} for a range of {stop - start} bytes",
            resumable=False,
        )


def _content_length(response: httpx.Response) -> int | None:
    return count(response.headers.get("content-length"))


def _widen_reads() -> None:
    """Let httpcore read 1 MiB per recv() instead of 64 KiB.

    Measured on loopback (benchmarks/fetch.py): 64 KiB reads cap a download at
    about 400 MB/s, a quarter of what curl or http.client reach; 1 MiB reads
    match them. The attribute is httpcore's own knob; if a release drops it,
    nothing breaks, downloads are only slower.
    """
    try:
        from httpcore._sync import http11  # noqa: PLC0415 - only when downloading
    except ImportError:  # pragma: no cover
        return
    if getattr(http11.HTTP11Connection, "READ_NUM_BYTES", 0) < CHUNK_READ:
        http11.HTTP11Connection.READ_NUM_BYTES = CHUNK_READ


CHUNK_READ = 1 << 20
