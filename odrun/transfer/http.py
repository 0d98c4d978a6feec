"""``http(s)://`` transport through httpx, with Range requests for resume; files of one
read over plain ``http://`` through ``http.client`` (:class:`PlainHttp`).

What an answer must show before its bytes are used: :mod:`odrun.transfer.answer`.
"""

from __future__ import annotations

import select
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from odrun import http as odrun_http
from odrun.errors import (
    OdrunError,
    RangeUnsupportedError,
    TransientError,
    TransportError,
)
from odrun.settings import Settings
from odrun.transfer.answer import check_length, check_range, check_status, content_length
from odrun.transfer.base import CHUNK, skip_prefix
from odrun.untrusted import count

if TYPE_CHECKING:
    import http.client

    import httpx


class HttpTransport:
    name = "https"
    schemes = frozenset({"http", "https"})

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        #: files of one read over plain http:// (see PlainHttp)
        self._plain = PlainHttp(settings)

    @property
    def client(self) -> httpx.Client:
        """One connection pool shared by all worker threads, made on first use."""
        with self._lock:
            if self._client is None:
                _widen_reads()
                self._client = odrun_http.make_client(self.settings)
            return self._client

    def close(self) -> None:
        self._plain.close()
        if self._client is not None:
            self._client.close()

    def available(self) -> bool:
        return True

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        if size is not None and 0 <= size - offset <= CHUNK and offset < size:
            plain = self._plain.target(uri)
            if plain is not None:
                return self._plain.get(plain, uri, offset, size, self._stream)
        return self._stream(uri, offset, size)

    def _stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
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
                check_status(response, uri, offset)
                # a server that ignores Range sends everything: drop what we have
                skip, vouched = check_length(response, uri, offset, size)
                # chunks as they arrive: a dropped connection loses nothing received
                coding = response.headers.get("content-encoding", "identity")
                chunks = response.iter_raw()
                if coding.strip().lower() != "identity":
                    chunks = _decoded(chunks, coding, uri)
                yield from skip_prefix(chunks, skip)
        except httpx.TimeoutException:
            raise TransientError(
                f"{uri}: timed out after {self.settings.timeout:g} s without data",
                resumable=vouched,
            ) from None
        except httpx.UnsupportedProtocol as exc:  # a redirect to file:, ftp: ...: never better
            raise TransportError(f"{uri}: {type(exc).__name__}: {exc}") from None
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
                check_status(response, uri, start)
                if response.status_code != 206:
                    raise RangeUnsupportedError(f"{uri}: server ignored a byte-range request")
                check_range(response, uri, start, stop, size)
                vouched = True
                yield from response.iter_raw()
        except httpx.TimeoutException:
            raise TransientError(
                f"{uri}: timed out after {self.settings.timeout:g} s without data",
                resumable=vouched,
            ) from None
        except httpx.UnsupportedProtocol as exc:  # a redirect to file:, ftp: ...: never better
            raise TransportError(f"{uri}: {type(exc).__name__}: {exc}") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{uri}: {type(exc).__name__}: {exc}", resumable=vouched) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(f"{uri}: {type(exc).__name__}: {exc}") from None

    def _length(self, uri: str) -> int:
        response = self.client.head(uri)
        check_status(response, uri, 0)
        length = content_length(response)
        if length is None:
            raise TransientError(f"{uri}: server did not say the file's length")
        return length


@dataclass(frozen=True)
class _Head:
    """An ``http.client`` response's status and headers (names in lower case)."""

    status_code: int
    headers: dict[str, str]

    @classmethod
    def of(cls, response: http.client.HTTPResponse) -> _Head:
        headers: dict[str, str] = {}
        for name, value in response.getheaders():
            key = name.lower()  # a repeated header is joined, as httpx does
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return cls(response.status, headers)

    def framing(self, uri: str) -> bool:
        """Raise for a body whose end two HTTP parsers could read differently (httpx's
        h11 refuses these too): Content-Lengths that disagree or are no number, a
        transfer coding other than one ``chunked``. Return whether the connection may
        carry another request after this answer: not after ``chunked`` with a
        Content-Length (a sign of a smuggled answer, RFC 9112 6.3). Same-valued
        Content-Lengths are made one, as h11 does."""
        declared = self.headers.get("content-length")
        coding = self.headers.get("transfer-encoding")
        if declared is not None:
            values = {value.strip() for value in declared.split(",")}
            value = values.pop()
            if values or count(value) is None:
                raise TransientError(
                    f"{uri}: Content-Length {declared[:100]!r} is not one length",
                    resumable=False,
                )
            self.headers["content-length"] = value
        if coding is not None and coding.strip().lower() != "chunked":
            raise TransientError(
                f"{uri}: Transfer-Encoding {coding[:100]!r}: only one 'chunked' is understood",
                resumable=False,
            )
        return declared is None or coding is None


#: idle kept connections :class:`PlainHttp` holds per server (more are closed)
MAX_IDLE = 32
#: what the httpx path does for a request :class:`PlainHttp` leaves to it
Fallback = Callable[[str, int, "int | None"], Iterator[bytes]]
#: characters a request path keeps as they are (httpx's set): others are %-encoded
_PATH_SAFE = "/%!$&'()*+,;=:@~"


class PlainHttp:
    """GET a file of at most one read (:data:`~odrun.transfer.base.CHUNK`) from a plain
    ``http://`` server through ``http.client``, on kept-alive connections the fetch
    threads share: a request takes an idle one (or opens one), gives it back once its
    answer was read whole, at most :data:`MAX_IDLE` idle per server (a connection
    never outlives its use with the thread that made it).

    For many small files httpx's request path (its pool and its lock, shared by the
    fetch threads, and its objects per request) cost more CPU than the bytes: 300 x
    1 MiB over loopback took 3.5 CPU s, ``aria2c -j 8`` 1.3. The answer gets the same
    checks as on the httpx path (:func:`check_status`, :func:`check_length`) and
    raises the same errors; bytes are yielded once the body is complete, or, when it
    fails midway, what arrived is yielded before the error (the part keeps it for a
    resume). A redirect or an encoded body is handed to httpx (``fallback``), and so
    is any URI with a login, ``https://``, or any URI while an ``http`` proxy is set
    (httpx then decides which hosts bypass it, for every file alike).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        #: idle kept connections per (host, port), the last given back on top
        self._idle: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}
        self._proxies: dict[str, str] | None = None

    def target(self, uri: str) -> tuple[str, int, str] | None:
        """(host, port, request path) when ``uri`` is one for this path, else None."""
        if not uri.startswith("http://"):
            return None
        try:
            parts = urlsplit(uri)
            host, port = parts.hostname, parts.port or 80
        except ValueError:  # a port that is no number: httpx says so
            return None
        if not host or "@" in parts.netloc or self._proxied():
            return None
        path = quote(parts.path or "/", safe=_PATH_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
        return host, port, path

    def _proxied(self) -> bool:
        import urllib.request  # noqa: PLC0415 - only when fetching over http://

        if self._proxies is None:
            self._proxies = urllib.request.getproxies()
        # with an http proxy set, httpx alone reads no_proxy: urllib's proxy_bypass reads
        # it otherwise (".cern.ch" matches cern.ch there, not in httpx), and a small file
        # must go where a big one goes
        return bool({"http", "all"} & set(self._proxies))

    def _take(self, host: str, port: int) -> http.client.HTTPConnection:
        """An idle kept connection to ``host:port`` that can carry a request, or a new one."""
        import http.client  # noqa: PLC0415 - only when fetching over http://

        with self._lock:
            idle = self._idle.get((host, port))
            conn = idle.pop() if idle else None
        if conn is None:
            return http.client.HTTPConnection(host, port, timeout=self.settings.timeout)
        if conn.sock is not None and not _idle(conn.sock):
            conn.close()  # the server closed it (or sent what nobody asked for): a new one
        return conn

    def _give_back(self, host: str, port: int, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault((host, port), [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def get(
        self, target: tuple[str, int, str], uri: str, offset: int, size: int, fallback: Fallback
    ) -> Iterator[bytes]:
        """Yield bytes ``offset..size-1`` of ``uri`` (``size - offset`` <= one read)."""
        import http.client  # noqa: PLC0415 - only when fetching over http://

        host, port, path = target
        headers = {
            "User-Agent": odrun_http.USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",  # the bytes on the wire are the file's
        }
        if offset:
            headers["Range"] = f"bytes={offset}-{size - 1}"
        conn = self._take(host, port)
        vouched = kept = handed = False
        skip = 0
        received: list[bytes] = []
        error: OdrunError | None = None
        response: http.client.HTTPResponse | None = None
        try:
            response = _send(conn, path, headers)
            head = _Head.of(response)
            encoded = head.headers.get("content-encoding", "identity") != "identity"
            # 1xx before the answer (http.client skips only 100): httpx skips them all
            handed = head.status_code < 200 or 300 <= head.status_code < 400 or encoded
            if not handed:
                reusable = head.framing(uri)
                check_status(head, uri, offset)
                skip, vouched = check_length(head, uri, offset, size)
                length = count(head.headers.get("content-length"))
                # never more than the file's bytes from the offset and one more (which
                # shows a longer file), whatever the server declares or sends; the
                # bytes before the offset (a 200 to a resume) are dropped as they come
                limit = skip + size - offset + 1
                left = min(length, limit) if length is not None else limit
                got = _read_body(response, left, skip, received)
                if length is not None and got < left:
                    raise http.client.IncompleteRead(b"", length - got)
                # the whole answer read as http.client frames it (the length it counts
                # down, or the chunked body's end): the connection carries the next request
                kept = reusable and (response.length == 0 or response.isclosed())
        except TimeoutError:
            error = TransientError(
                f"{uri}: timed out after {self.settings.timeout:g} s without data",
                resumable=vouched,
            )
        except http.client.InvalidURL as exc:
            error = TransportError(f"{uri}: InvalidURL: {exc}")
        except (OSError, http.client.HTTPException) as exc:
            error = TransientError(f"{uri}: {type(exc).__name__}: {exc}", resumable=vouched)
        finally:
            if response is not None:
                response.close()  # its file object holds the socket open otherwise
            if kept:
                self._give_back(host, port, conn)
            else:
                conn.close()
        if received:  # even before an error: what arrived goes to the part
            yield b"".join(received)
        if error is not None:
            raise error
        if handed:
            yield from fallback(uri, offset, size)


def _decoded(chunks: Iterator[bytes], coding: str, uri: str) -> Iterator[bytes]:
    """The bytes of a body sent gzip- or deflate-encoded (though identity was asked),
    inflated at most :data:`CHUNK_READ` at a time: a consumer that stops (the engine, one
    byte past the declared size) stops the inflation (httpx inflates each chunk it reads
    whole: a few hundred kB became 256 MiB at once). Other codings are refused."""
    name = coding.strip().lower()
    if name not in ("gzip", "x-gzip", "deflate"):
        raise TransportError(
            f"{uri}: body encoded as {coding[:60]!r} though identity was asked: not read",
            hint="only gzip or deflate bodies are decoded; report it to the server's operators",
        )
    # gzip, or deflate with its zlib header (32: either, detected)
    decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)
    try:
        for chunk in chunks:
            data = chunk
            while data:
                out = decoder.decompress(data, CHUNK_READ)
                data = decoder.unconsumed_tail
                if out:
                    yield out
        yield decoder.flush()
    except zlib.error as exc:
        raise TransientError(
            f"{uri}: {name} body cannot be decoded: {exc}", resumable=False
        ) from None


def _read_body(response: http.client.HTTPResponse, left: int, skip: int, into: list[bytes]) -> int:
    """Read at most ``left`` bytes of ``response``, a read of at most :data:`CHUNK_READ` at
    a time; drop the first ``skip``, append the others to ``into`` as they arrive (an error
    midway keeps them). The count read, dropped bytes included."""
    got = 0
    while got < left:
        data = response.read1(min(left - got, CHUNK_READ))
        if not data:
            break
        got += len(data)
        if skip:
            drop = min(skip, len(data))
            skip -= drop
            data = data[drop:]
        if data:
            into.append(data)
    return got


def _send(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str]
) -> http.client.HTTPResponse:
    """GET ``path``; on a kept connection the server closed as the request went out, once
    more on a new connection (nothing of an answer was received: a GET can be sent again)."""
    import http.client  # noqa: PLC0415 - only when fetching over http://

    kept = conn.sock is not None
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        if not kept:
            raise
        conn.close()
    conn.request("GET", path, headers=headers)
    return conn.getresponse()


def _idle(sock: socket.socket) -> bool:
    """Whether a kept connection can carry a request: nothing to read on it, not even its
    end (a server that closed it, or sent what nobody asked for, makes it readable)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)


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
