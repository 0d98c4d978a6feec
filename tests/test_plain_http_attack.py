"""A hostile or broken server against plain http:// (:class:`odrun.transfer.http.PlainHttp`).

Raw sockets on 127.0.0.1 answer with exactly the bytes each test scripts: lengths that
lie, informational answers, framing that two parsers read differently, silence. The
rules: a small file's answer is read no further than the bytes the file can have (never
held whole in memory when the server sends more), a kept connection never carries what
an earlier answer left behind to the next file, and every failure is a typed error.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from odrun.errors import ChecksumError, OdrunError, TransientError, TransportError
from odrun.settings import Settings
from odrun.transfer.http import HttpTransport

from conftest import blob


@dataclass
class Peer:
    """One accepted connection: read requests off it, write raw bytes to it."""

    sock: socket.socket
    number: int
    buffer: bytes = b""

    def request(self) -> str | None:
        """The path of the next request on this connection; None once the client closed it."""
        while b"\r\n\r\n" not in self.buffer:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].split(b" ")[1].decode()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


#: answers one request: (peer, path); False closes the connection
Script = Callable[[Peer, str], bool]


@dataclass
class RawServer:
    script: Script
    sock: socket.socket = field(default_factory=socket.socket)
    #: (connection number, path) of every request, in order
    requests: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._talk, args=(conn, number), daemon=True).start()

    def _talk(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(20)
        peer = Peer(conn, number)
        with conn:
            while (path := peer.request()) is not None:
                with self.lock:
                    self.requests.append((number, path))
                try:
                    if not self.script(peer, path):
                        return
                except OSError:
                    return


@pytest.fixture
def raw() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script) -> RawServer:
        server = RawServer(script)
        server.sock.bind(("127.0.0.1", 0))
        server.sock.listen(16)
        threading.Thread(target=server.serve, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.sock.close()


def _transport(timeout: float = 5) -> HttpTransport:
    return HttpTransport(Settings.load({"timeout": timeout}))


def _ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# -- never read (or hold) more than the file can have ------------------------------------

BIG = 32 * 1024 * 1024
TAIL = 1000


@pytest.mark.parametrize("lie", ["200-ignores-range", "206-long-length", "206-past-the-end"])
def test_a_resumed_small_tail_is_never_read_whole_into_memory(
    raw: Callable[[Script], RawServer], lie: str
) -> None:
    """The last 1000 bytes of a 32 MiB file are asked for (a resume): a server that sends
    the whole file (200, as a server that ignores Range does), or a 206 claiming a longer
    body, is read at most one read's worth at a time; a 206 that disagrees with its own
    Content-Range is a typed error, its bytes never yielded."""
    data = memoryview(blob(7, 1 << 20) * (BIG >> 20))
    offset = BIG - TAIL

    def script(peer: Peer, path: str) -> bool:
        if lie == "200-ignores-range":
            peer.send(f"HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n".encode())
        elif lie == "206-long-length":
            peer.send(
                f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {offset}-{BIG - 1}/{BIG}"
                f"\r\nContent-Length: {BIG}\r\n\r\n".encode()
            )
        else:
            peer.send(
                f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {offset}-"
                f"{offset + BIG - 1}/{BIG}\r\nContent-Length: {BIG}\r\n\r\n".encode()
            )
        for start in range(0, BIG, 1 << 20):
            peer.send(data[start : start + (1 << 20)])
        return False

    server = raw(script)
    transport = _transport()
    received = bytearray()
    failure: OdrunError | None = None
    tracemalloc.start()
    try:
        try:
            for chunk in transport.stream(f"{server.base}/big", offset, BIG):
                received += chunk
                if len(received) > TAIL:
                    break
        except OdrunError as exc:
            failure = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        transport.close()
    if lie == "200-ignores-range":
        assert failure is None
        assert bytes(received) == data[offset:]
    else:  # a 206 at odds with itself: none of it is the file, nothing kept
        assert isinstance(failure, (TransientError, ChecksumError)), failure
        assert not (isinstance(failure, TransientError) and failure.resumable)
        assert not received
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB held for a {TAIL}-byte tail"


# -- what one answer leaves on a kept connection never reaches the next file ------------

SMUGGLED = _ok(b"EVIL!")

#: answers whose end two HTTP parsers read differently (httpx refuses or reads them apart)
AMBIGUOUS = {
    "conflicting-lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 44\r\n\r\nAAAAA"
    ),
    "chunked-and-length": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nAAAAA\r\n"
    ),
    "unknown-transfer-coding": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: x-odd\r\nContent-Length: 5\r\n\r\nAAAAA"
    ),
    "two-transfer-codings": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n5\r\nAAAAA\r\n"
    ),
    "length-not-a-number": b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nAAAAA",
}


@pytest.mark.parametrize("answer", sorted(AMBIGUOUS))
def test_the_next_file_never_gets_what_an_answer_left_on_its_connection(
    raw: Callable[[Script], RawServer], answer: str
) -> None:
    """A's answer frames its body ambiguously; the server then answers the next request
    on that connection with a response of its choice (what a desynchronised connection
    reads as the answer to B). B must come from a connection of its own."""

    def script(peer: Peer, path: str) -> bool:
        if path == "/a":
            peer.send(AMBIGUOUS[answer])
            if peer.request() is not None:  # B on A's connection: smuggle
                peer.send(SMUGGLED)
            return False
        peer.send(_ok(b"BBBBB"))
        return True

    server = raw(script)
    transport = _transport()
    try:
        first: bytes | TransientError
        try:
            first = b"".join(transport.stream(f"{server.base}/a", 0, 5))
        except TransientError as exc:
            first = exc
        # the file, or a typed error that keeps nothing
        assert first == b"AAAAA" or (isinstance(first, TransientError) and not first.resumable)
        assert b"".join(transport.stream(f"{server.base}/b", 0, 5)) == b"BBBBB"
    finally:
        transport.close()
    assert server.requests[-1][0] != server.requests[0][0]  # B on another connection


@pytest.mark.parametrize("status", ["102 Processing", "103 Early Hints", "199 Odd"])
def test_an_informational_answer_before_the_file_is_skipped(
    raw: Callable[[Script], RawServer], status: str
) -> None:
    """1xx answers come before the real one (httpx skips them): not an error, and never
    taken for the file's answer."""
    data = blob(3, 10_000)

    def script(peer: Peer, path: str) -> bool:
        peer.send(f"HTTP/1.1 {status}\r\nLink: </x>; rel=preload\r\n\r\n".encode() + _ok(data))
        return True

    server = raw(script)
    transport = _transport()
    try:
        assert b"".join(transport.stream(f"{server.base}/f", 0, len(data))) == data
        assert b"".join(transport.stream(f"{server.base}/g", 0, len(data))) == data
    finally:
        transport.close()


# -- proxies: a small file goes where a big one goes ------------------------------------


@pytest.mark.parametrize("no_proxy", ["", ".127.0.0.1", "127.0.0.1", "*", "127.0.0.1:1"])
def test_a_small_file_goes_where_a_big_one_goes_whatever_the_proxy_settings(
    raw: Callable[[Script], RawServer], monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    """With http_proxy and no_proxy set, a file of one read (the plain path) and a bigger
    one (httpx) reach the same server: one reading of no_proxy decides for both."""
    big = 5 * 1024 * 1024  # more than one read: httpx's path

    def serving(tag: bytes) -> Script:
        def script(peer: Peer, path: str) -> bool:
            peer.send(_ok(tag * (big // 5) if path.endswith("/big") else tag))
            return True

        return script

    origin, proxy = raw(serving(b"ORIGN")), raw(serving(b"PROXY"))
    monkeypatch.setenv("http_proxy", proxy.base)
    monkeypatch.setenv("no_proxy", no_proxy)
    transport = _transport()
    try:
        small = b"".join(transport.stream(f"{origin.base}/small", 0, 5))
        large = b"".join(transport.stream(f"{origin.base}/big", 0, big))
    finally:
        transport.close()
    assert small == large[:5]


# -- malformed, silent and endless answers: typed errors, nothing taken for the file ----

BODY = b"AAAAAAAAAA\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        # a negative chunk size: http.client reads the framing after it as the body
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n" + BODY,
        BODY,  # HTTP/0.9: no status line, the bytes alone
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 100_000 + b"\r\n\r\n" + BODY,
        b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * 200 + b"\r\n" + BODY,
        b"HTTP/2 200 OK\r\nContent-Length: 17\r\n\r\n" + BODY,
    ],
    ids=["negative-chunk", "http-0.9", "long-header", "many-headers", "h2"],
)
def test_a_malformed_answer_is_a_typed_error_never_the_file(
    raw: Callable[[Script], RawServer], answer: bytes
) -> None:
    """Each answer's raw bytes (framing included) are exactly as long as the file: none of
    them may come out as the file's bytes."""

    def script(peer: Peer, path: str) -> bool:
        peer.send(answer)
        return False

    server = raw(script)
    transport = _transport()
    try:
        with pytest.raises(TransientError) as caught:
            b"".join(transport.stream(f"{server.base}/f", 0, len(BODY)))
    finally:
        transport.close()
    assert not caught.value.resumable


def test_a_silent_server_times_out(raw: Callable[[Script], RawServer]) -> None:
    """No byte of an answer: the timeout holds (a TransientError, retried by the engine)."""
    release = threading.Event()

    def script(peer: Peer, path: str) -> bool:
        release.wait(20)
        return False

    server = raw(script)
    transport = _transport(timeout=0.5)
    start = time.monotonic()
    try:
        with pytest.raises(TransientError, match="timed out"):
            b"".join(transport.stream(f"{server.base}/f", 0, 5))
    finally:
        release.set()
        transport.close()
    assert time.monotonic() - start < 10


# -- connections do not outlive their use ------------------------------------------------


def test_fetches_from_one_short_lived_thread_after_another_share_connections(
    raw: Callable[[Script], RawServer],
) -> None:
    """A fetch's threads end with it (one thread pool per fetch_files call): a transport
    that lives on must not keep a connection open for every thread that ever used it."""
    data = blob(9, 20_000)

    def script(peer: Peer, path: str) -> bool:
        peer.send(_ok(data))
        return True

    server = raw(script)
    transport = _transport()
    got: list[bytes] = []
    try:
        for i in range(30):
            thread = threading.Thread(
                target=lambda i=i: got.append(
                    b"".join(transport.stream(f"{server.base}/f{i}", 0, len(data)))
                )
            )
            thread.start()
            thread.join()
    finally:
        transport.close()
    assert got == [data] * 30
    assert server.connections <= 2, f"{server.connections} connections for 30 sequential files"


# -- redirects --------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["file:///etc/passwd", "gopher://127.0.0.1/x", "ftp://x/y"])
def test_a_redirect_to_a_scheme_no_transport_reads_is_not_retried(
    raw: Callable[[Script], RawServer], location: str
) -> None:
    """A redirect away from http(s) never gets better: a TransportError (exit 5 at once),
    not a TransientError retried with backoff."""

    def script(peer: Peer, path: str) -> bool:
        peer.send(
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        return True

    server = raw(script)
    transport = _transport()
    try:
        with pytest.raises(TransportError) as caught:
            b"".join(transport.stream(f"{server.base}/f", 0, 5))
    finally:
        transport.close()
    assert not isinstance(caught.value, TransientError), caught.value


# -- encoded bodies (sent though identity was asked) -------------------------------------


def test_a_compressed_body_is_decoded_a_read_at_a_time(
    raw: Callable[[Script], RawServer],
) -> None:
    """A gzip body of a few hundred kB that inflates to 256 MiB, its Content-Length the
    record's size: never inflated whole in memory (the engine stops at the size + 1)."""
    bomb = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    body = b"".join(bomb.compress(bytes(1 << 20)) for _ in range(256)) + bomb.flush()

    def script(peer: Peer, path: str) -> bool:
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n"
        peer.send(head.encode() + b"\r\n" + body)
        return False

    server = raw(script)
    transport = _transport()
    read = 0
    tracemalloc.start()
    try:
        for chunk in transport.stream(f"{server.base}/bomb", 0, len(body)):
            read += len(chunk)
            if read > len(body):
                break  # what the engine does: more bytes than the record declares
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        transport.close()
    assert read > len(body)
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB held for one chunk"


@pytest.mark.parametrize("coding", ["gzip, gzip", "br", "compress", "x-odd"])
def test_a_body_in_a_coding_not_read_a_step_at_a_time_is_refused(
    raw: Callable[[Script], RawServer], coding: str
) -> None:
    data = b"AAAAA"

    def script(peer: Peer, path: str) -> bool:
        peer.send(_ok(data, f"Content-Encoding: {coding}"))
        return True

    server = raw(script)
    transport = _transport()
    try:
        with pytest.raises(TransportError, match="encoded"):
            b"".join(transport.stream(f"{server.base}/f", 0, len(data)))
    finally:
        transport.close()
