"""An HTTP file server of the tests' own that misbehaves on request (127.0.0.1 only).

Each path serves bytes with Range support; a ``Fault`` attached to a path makes
it drop the connection mid-body, answer 503 a number of times, stall, send wrong
bytes or a wrong length, or trickle slowly (for interrupt-and-resume tests).
Every GET is counted per path.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from portal_server import in_thread


@dataclass
class Fault:
    #: answer 503 this many times first
    unavailable: int = 0
    #: close the connection after this many body bytes, this many times
    drop_after: int | None = None
    drops: int = 1
    #: stop sending after this many bytes until released (client times out)
    stall_after: int | None = None
    stalls: int = 1
    #: serve these bytes instead of the real ones
    wrong_bytes: bytes | None = None
    #: ignore Range requests (always 200 from byte 0)
    ignore_range: bool = False
    #: bytes per second, for slow transfers
    rate: int | None = None
    #: answer this many times with ``200`` and a short HTML error page (a proxy's error)
    html_page: int = 0
    #: send the HTML page without Content-Length (delimited by closing the connection)
    html_without_length: bool = False
    #: a 206 that lies: Content-Range total length / first byte shifted by these
    range_total_delta: int = 0
    range_start_delta: int = 0


HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1><p>The proxy could not reach the storage.</p>"
    b"</body></html>\n"
)


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, Fault] = {}
        self.gets: Counter[str] = Counter()
        #: every Range header answered with 206
        self.ranges: list[str] = []
        self.lock = threading.Lock()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-body is what these tests do: no traceback on stderr for it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def add(self, path: str, data: bytes, fault: Fault | None = None) -> str:
        self.files[path] = data
        if fault:
            self.faults[path] = fault
        return f"{self.url}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        path = self.path.split("?")[0]
        with srv.lock:
            srv.gets[path] += 1
            fault = srv.faults.get(path, Fault())
            data = srv.files.get(path)
            unavailable = fault.unavailable > 0
            if unavailable:
                fault.unavailable -= 1
            html = fault.html_page > 0 and not unavailable
            if html:
                fault.html_page -= 1
        if data is None:
            return self._status(404)
        if unavailable:
            return self._status(503)
        if html:
            return self._html_page(fault.html_without_length)
        body = fault.wrong_bytes if fault.wrong_bytes is not None else data
        start = 0
        end = len(body)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match and not fault.ignore_range:
            start = int(match.group(1))
            if match.group(2):
                end = min(end, int(match.group(2)) + 1)
            if start >= len(body) or start >= end:
                return self._status(416)
            with srv.lock:
                srv.ranges.append(self.headers["Range"])
            self.send_response(206)
            first, total = start + fault.range_start_delta, len(body) + fault.range_total_delta
            self.send_header("Content-Range", f"bytes {first}-{end - 1}/{total}")
        else:
            self.send_response(200)
        body = body[:end]
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._body(body, start, fault)

    def do_HEAD(self) -> None:
        data = self.server.files.get(self.path.split("?")[0])
        if data is None:
            return self._status(404)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def _body(self, body: bytes, start: int, fault: Fault) -> None:
        sent = 0
        pos = start
        step = 64 * 1024
        while pos < len(body):
            with self.server.lock:
                drop = fault.drop_after is not None and fault.drops > 0 and sent >= fault.drop_after
                if drop:
                    fault.drops -= 1
                stall = (
                    fault.stall_after is not None and fault.stalls > 0 and sent >= fault.stall_after
                )
                if stall:
                    fault.stalls -= 1
            if drop:
                self.close_connection = True
                return
            if stall:
                self.server.release.wait(30)
                self.close_connection = True
                return
            chunk = body[pos : pos + step]
            try:
                self.wfile.write(chunk)
                self.wfile.flush()
            except OSError:
                return
            pos += len(chunk)
            sent += len(chunk)
            if fault.rate:
                time.sleep(len(chunk) / fault.rate)  # throttling the server side

    def _html_page(self, without_length: bool) -> None:
        page = HTML_PAGE
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if without_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def serve() -> Iterator[FaultServer]:
    server = FaultServer()
    with in_thread(server):
        try:
            yield server
        finally:
            server.release.set()  # let stalled handlers finish before the shutdown
