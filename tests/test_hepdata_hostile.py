"""A hostile HEPData server: answers that must never reach the cache, a pin or a verdict.

The server is untrusted (docs/security.md): it may redirect a table download to plain
http (where anyone on the path can change the reference a run is judged against), or
answer with a body of any size. Every test here talks to 127.0.0.1 only: the
"non-loopback" host of a redirect is 0.0.0.0, which odrun's rule does not count as
loopback, so a client that follows the redirect shows it by asking the server again.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import hepdata_server
import pytest
from test_hepdata import DATA, analysis

import odrun.hepdata.client as client_mod
from odrun.errors import HepdataError, OdrunError
from odrun.hepdata import HepdataClient, parse_ref, parse_table
from odrun.settings import Settings

TABLE = (Path(__file__).parent / "data" / "hepdata" / "data3.yaml").read_bytes()
RECORD = b'{"version": 1}'

Answer = Callable[[BaseHTTPRequestHandler, int], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    answer: Answer
    paths: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.server.answer(self, self.server.server_address[1])


def send(handler: BaseHTTPRequestHandler, body: bytes, *, length: bool = True) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def hostile(answer: Answer) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.answer, server.paths = answer, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def settings_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[_Server], Settings]:
    def make(server: _Server) -> Settings:
        monkeypatch.setenv("ODRUN_HEPDATA_URL", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("ODRUN_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("ODRUN_RETRIES", "0")
        return Settings.load()

    return make


def _cache_is_empty(settings: Settings) -> bool:
    root = settings.cache_dir / "hepdata"
    return not any(p.suffix == ".yaml" for p in root.rglob("*")) if root.exists() else True


@pytest.mark.parametrize("which", ["table", "record"])
def test_a_redirect_to_plain_http_elsewhere_is_refused(
    settings_for: Callable[[_Server], Settings], which: str
) -> None:
    """https (or loopback http) is the rule for ODRUN_HEPDATA_URL; a redirect must not
    downgrade it: the table would be taken, cached and pinned from plain http."""

    def answer(handler: BaseHTTPRequestHandler, port: int) -> None:
        if handler.path.startswith("/elsewhere"):
            send(handler, RECORD if "record" in handler.path else TABLE)
            return
        if which == "record" and handler.path.startswith("/record/"):
            target = f"http://0.0.0.0:{port}/elsewhere/record"
        elif which == "table" and handler.path.startswith("/download/"):
            target = f"http://0.0.0.0:{port}/elsewhere/table"
        else:
            send(handler, RECORD)
            return
        handler.send_response(302)
        handler.send_header("Location", target)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with hostile(answer) as server:
        settings = settings_for(server)
        with HepdataClient(settings) as client, pytest.raises(OdrunError) as caught:
            client.fetch(parse_ref("ins1/Table 3"))
        assert "http://0.0.0.0" in caught.value.message
        assert "plain http" in caught.value.message
        assert not any(p.startswith("/elsewhere") for p in server.paths), server.paths
    assert _cache_is_empty(settings)


def test_a_redirect_on_the_same_loopback_server_is_followed(
    settings_for: Callable[[_Server], Settings],
) -> None:
    def answer(handler: BaseHTTPRequestHandler, port: int) -> None:
        if handler.path.startswith("/download/"):
            handler.send_response(302)
            handler.send_header("Location", f"http://127.0.0.1:{port}/moved")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        else:
            send(handler, TABLE if handler.path == "/moved" else RECORD)

    with hostile(answer) as server, HepdataClient(settings_for(server)) as client:
        assert client.fetch(parse_ref("ins1/Table 3@1")).data == TABLE


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
@pytest.mark.parametrize("which", ["table", "record"])
def test_a_body_larger_than_the_limit_is_refused_while_it_is_read(
    settings_for: Callable[[_Server], Settings],
    monkeypatch: pytest.MonkeyPatch,
    declared: bool,
    which: str,
) -> None:
    """A huge answer (a table or a record document) is refused after the limit, not read
    into memory; with or without a Content-Length."""
    monkeypatch.setattr(client_mod, "MAX_DOWNLOAD_BYTES", len(TABLE) - 1, raising=False)
    huge = b'{"version": 1, "pad": "' + b"x" * len(TABLE) + b'"}'

    def answer(handler: BaseHTTPRequestHandler, port: int) -> None:
        if handler.path.startswith("/record/"):
            send(handler, huge if which == "record" else RECORD, length=declared)
        else:
            send(handler, TABLE, length=declared)

    with hostile(answer) as server:
        settings = settings_for(server)
        with HepdataClient(settings) as client, pytest.raises(OdrunError) as caught:
            client.fetch(parse_ref("ins1/Table 3"))
    assert f"larger than {len(TABLE) - 1} bytes" in caught.value.message
    assert _cache_is_empty(settings)


def test_a_table_within_the_limit_is_read_without_a_content_length(
    settings_for: Callable[[_Server], Settings],
) -> None:
    def answer(handler: BaseHTTPRequestHandler, port: int) -> None:
        send(handler, RECORD if handler.path.startswith("/record/") else TABLE, length=False)

    with hostile(answer) as server, HepdataClient(settings_for(server)) as client:
        assert client.fetch(parse_ref("ins1/Table 3")).data == TABLE


# --- a published version whose bytes change: the lock's sha256 is what counts ----------


@pytest.fixture
def hepdata(monkeypatch: pytest.MonkeyPatch) -> Iterator[hepdata_server.HepdataServer]:
    with hepdata_server.serve() as server:
        monkeypatch.setenv("ODRUN_HEPDATA_URL", server.url)
        yield server


def test_a_table_version_changed_in_place_does_not_judge_a_locked_run(
    odrun: Any, hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    """The run pinned version 1 of the table with its sha256. The server later answers
    other bytes for that same version (a compromised or confused server, a cache
    elsewhere): verifying the run must not judge it against them. Here the new bytes
    are exactly what the wrong output needs to pass."""
    doubled = (DATA / "data3.yaml").read_bytes()
    for old, new in ((b"7000\n", b"14000\n"), (b"9800", b"19600"), (b"1600\n", b"3200\n")):
        doubled = doubled.replace(b"value: " + old, b"value: " + new)
    wrong = "[14000, 19600, 3200, 80]"
    root = analysis(tmp_path / "a", "hepdata:ins1000001/Table 3", counts=wrong)
    assert odrun("run", str(root), "--runtime", "host", "--verify").code == 10
    (run_dir,) = sorted((root / ".odrun" / "runs").iterdir())
    with hepdata.lock:
        hepdata.versions["ins1000001"][0]["Table 3"] = doubled  # same version, new bytes
    shutil.rmtree(Settings.load().cache_dir / "hepdata")  # e.g. verified on another machine
    verdict = odrun("verify", str(run_dir))
    assert verdict.code != 0, verdict.out
    assert "sha256" in verdict.out + verdict.err
    assert any("/download/table/" in p for p in hepdata.requests)  # it was asked again


def test_the_pinned_bytes_still_judge_the_run(
    odrun: Any, hepdata: hepdata_server.HepdataServer, tmp_path: Path
) -> None:
    root = analysis(tmp_path / "a", "hepdata:ins1000001/Table 3")
    assert odrun("run", str(root), "--runtime", "host", "--verify").code == 0
    (run_dir,) = sorted((root / ".odrun" / "runs").iterdir())
    shutil.rmtree(Settings.load().cache_dir / "hepdata")
    verdict = odrun("verify", str(run_dir))
    assert verdict.code == 0, verdict.out + verdict.err


@pytest.mark.parametrize("name", ["..", ".", "..."])
def test_a_table_named_with_dots_stays_in_its_own_url_segment(
    settings_for: Callable[[_Server], Settings], name: str
) -> None:
    """``hepdata:ins1/..`` must ask for the table named "..", not climb out of the
    download path (httpx removes dot segments: /download/table/ins1/../1/yaml would be
    /download/table/1/yaml, another resource, cached as this table)."""

    def answer(handler: BaseHTTPRequestHandler, port: int) -> None:
        send(handler, TABLE)

    with hostile(answer) as server, HepdataClient(settings_for(server)) as client:
        client.fetch(parse_ref(f"ins1/{name}@1"))
        (path,) = server.paths
    assert path.startswith("/download/table/ins1/"), path
    assert unquote(path.split("/")[4]) == name, path


@pytest.mark.parametrize("x_count", [2, 10**9, 2**62, 2**63 - 1])
def test_a_rendered_table_claiming_more_columns_than_its_rows_hold_is_refused(
    x_count: int,
) -> None:
    """HEPData's rendered JSON says how many columns are independent (``x_count``); a
    count beyond what the rows hold allocated that many column names first (8 bytes
    each: MemoryError, or gigabytes)."""
    doc = {
        "headers": [{"name": "x", "colspan": 1}, {"name": "y", "colspan": 1}],
        "x_count": x_count,
        "values": [{"x": [{"low": 0, "high": 1}], "y": [{"value": 1, "errors": []}]}],
    }
    with pytest.raises(HepdataError, match="x_count"):
        parse_table(json.dumps(doc).encode(), "t", "json")
