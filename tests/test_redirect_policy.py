"""Redirects on every HTTP client odrun makes: an https request is never followed to plain
http (a downgrade: the answer could come from anyone on the path), and no request is
followed to a scheme that is not http(s). Both are a TransportError (exit 5) naming the
redirect, raised before anything is asked of the new location.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from odrun import http
from odrun.errors import TransportError
from odrun.settings import Settings
from odrun.transfer.http import HttpTransport

import reana_server
from portal_server import in_thread, wrap_tls

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@dataclass
class Server:
    url: str = ""
    #: where to redirect every request (path appended), or None to answer 200
    location: str | None = None
    status: int = 302
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: Server

    def do_GET(self) -> None:
        with self.state.lock:
            self.state.requests.append(self.path)
        if self.state.location is not None:
            self.send_response(self.state.status)
            self.send_header("Location", self.state.location + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve(tls: tuple[Path, Path] | None = None) -> Iterator[Server]:
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    httpd.daemon_threads = True
    scheme = wrap_tls(httpd, tls)
    state.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    with in_thread(httpd):
        yield state


@pytest.fixture
def servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Server, Server, Server]]:
    """(https, a second https, plain http) on 127.0.0.1; the https ones are trusted."""
    cert, key = reana_server.self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with serve((cert, key)) as tls, serve((cert, key)) as tls2, serve() as plain:
        yield tls, tls2, plain


def _settings() -> Settings:
    return Settings.load({"retries": 2, "timeout": 10, "retry_backoff": 0})


STATUSES = (301, 302, 303, 307, 308)


@needs_openssl
@pytest.mark.parametrize("status", STATUSES)
def test_no_client_follows_https_to_plain_http(
    servers: tuple[Server, Server, Server], status: int
) -> None:
    tls, _, plain = servers
    tls.status, tls.location = status, plain.url
    # the client of portal metadata and file indices, as the resolver makes it
    with http.make_client(_settings()) as client:
        with pytest.raises(TransportError) as info:
            http.get(client, tls.url + "/api/records/1", _settings(), what="record 1")
        assert "redirect" in info.value.message
        assert plain.url in info.value.message
        with pytest.raises(TransportError, match="redirect"):
            http.get_bytes(client, tls.url + "/index.json", _settings(), max_bytes=1000)
    # the file transport
    transport = HttpTransport(_settings())
    try:
        with pytest.raises(TransportError, match="redirect"):
            b"".join(transport.stream(tls.url + "/eos/f.root"))
    finally:
        transport.close()
    assert plain.requests == [], "the plain http server was asked"
    assert len(tls.requests) == 3, "a refused redirect was retried"


@needs_openssl
@pytest.mark.parametrize("target", ["ftp://127.0.0.1:1", "file:///etc", "gopher://x"])
def test_no_client_follows_a_redirect_to_another_scheme(
    servers: tuple[Server, Server, Server], target: str
) -> None:
    tls, _, plain = servers
    for origin in (tls, plain):
        origin.location = target
        with http.make_client(_settings()) as client, pytest.raises(TransportError) as info:
            http.get(client, origin.url + "/api/records/1", _settings(), what="record 1")
        assert "redirect" in info.value.message, info.value.message
        assert len(origin.requests) == 1, "a refused redirect was retried"


@needs_openssl
def test_https_to_https_and_http_to_https_are_followed(
    servers: tuple[Server, Server, Server],
) -> None:
    tls, tls2, plain = servers
    tls.location = tls2.url
    plain.location = tls2.url
    with http.make_client(_settings()) as client:
        assert http.get(client, tls.url + "/a", _settings()).json() == {"ok": True}
        assert http.get(client, plain.url + "/b", _settings()).json() == {"ok": True}
    assert tls2.requests == ["/a", "/b"]


@needs_openssl
def test_the_cli_refuses_a_portal_redirected_to_plain_http(
    odrun, servers: tuple[Server, Server, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    tls, _, plain = servers
    tls.location = plain.url
    monkeypatch.setenv("ODRUN_PORTAL_URL", tls.url)
    res = odrun("info", "5500")
    assert res.code == 5, (res.code, res.err)
    assert "redirect" in res.err
    assert "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) <= 2, res.err
    assert plain.requests == []
