"""odrun's HTTP clients build their TLS context when the first https request is made.

Loading the CA bundle (``ssl.create_default_context``) costs 20-150 ms per client on a
loaded machine, in every process that makes one: a fetch over root:// or from a portal on
http://localhost never needs it. Lazy is not weaker: an https request still verifies the
server against the CA bundle (``SSL_CERT_FILE`` honoured), as httpx's default does.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from odrun import http
from odrun.errors import TransportError
from odrun.settings import Settings

import reana_server


class _Hello(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


def _serve(context: ssl.SSLContext | None) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if context else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def plain_url() -> Iterator[str]:
    server, url = _serve(None)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl)."""
    return reana_server.self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server, url = _serve(context)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def contexts_made(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every CA-loading TLS context made from now on (what httpx's verify=True makes)."""
    made: list[object] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        made.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    return made


def test_a_client_for_plain_http_loads_no_ca_bundle(
    plain_url: str, contexts_made: list[object]
) -> None:
    settings = Settings(retries=0)
    with http.make_client(settings) as client:
        assert http.get_bytes(client, plain_url, settings, max_bytes=100) == b"hello"
        assert http.get(client, plain_url, settings).content == b"hello"
    assert contexts_made == []


def test_the_first_https_request_loads_it_once(
    plain_url: str, tls_url: str, contexts_made: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control, and lazy is not weaker: an unknown certificate is refused."""
    settings = Settings(retries=0)
    with http.make_client(settings) as client:
        http.get(client, plain_url, settings)
        assert contexts_made == []
        for _ in range(2):
            with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
                http.get(client, tls_url, settings)
        assert len(contexts_made) == 1  # one context for the client, not one per request


def test_https_still_trusts_ssl_cert_file(
    tls_url: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CA bundle of the environment (``SSL_CERT_FILE``, httpx's trust_env) is used."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    settings = Settings(retries=0)
    with http.make_client(settings) as client:
        assert http.get(client, tls_url, settings).content == b"hello"


def test_threads_share_one_tls_pool(tls_url: str, certificate: tuple[Path, Path],
                                    monkeypatch: pytest.MonkeyPatch,
                                    contexts_made: list[object]) -> None:  # fmt: skip
    """Eight fetch threads making their first https request at once build one context."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    settings = Settings(retries=0)
    start = threading.Barrier(8)
    bodies: list[bytes] = []

    def one() -> None:
        start.wait(timeout=30)
        bodies.append(http.get(client, tls_url, settings).content)

    with http.make_client(settings) as client:
        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert bodies == [b"hello"] * 8
    assert len(contexts_made) == 1


def test_proxies_of_the_environment_are_still_used(
    plain_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY`` / ``HTTPS_PROXY`` (httpx's trust_env) still route requests."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", plain_url)  # the proxy answers hello to every GET
    settings = Settings(retries=0)
    with http.make_client(settings) as client:
        assert http.get(client, "http://odrun-proxy-test.invalid/x", settings).content == b"hello"
