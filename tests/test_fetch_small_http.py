"""Many small files: the per-file path (plain http:// without httpx, cheap cache bookkeeping).

A file of at most one read over plain ``http://`` goes through ``http.client`` on one
kept connection per fetch thread (:class:`odrun.transfer.http.PlainHttp`); what it
does not handle (a redirect, an encoded body) goes to httpx. The answers get the same
checks; these tests pin the paths, the connection reuse and what a failure keeps.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from odrun._fs import confine
from odrun.checksum import Checksum
from odrun.errors import TransientError, UnsafeMetadataError
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer.fetch import Fetcher, State
from odrun.transfer.http import HttpTransport
from odrun.transfer.store import FileStore

from conftest import blob


@dataclass
class Site:
    files: dict[str, bytes] = field(default_factory=dict)
    #: close every connection after one answer without saying so (no Connection: close)
    close_silently: bool = False
    #: send only this many bytes of a body, then close (its Content-Length unchanged)
    cut_at: int | None = None
    connections: set[tuple[str, int]] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        site = self.server.site
        with site.lock:
            site.connections.add(self.client_address)
            site.requests.append(self.path)
        if self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", self.path.replace("/moved/", "/", 1))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        name = self.path.removeprefix("/gz")
        data = site.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        status = 200
        rng = self.headers.get("Range")
        if rng:
            first, _, last = rng.removeprefix("bytes=").partition("-")
            start, status = int(first), 206
            data = data[start : int(last) + 1]
        body = gzip.compress(data) if self.path.startswith("/gz/") else data
        self.send_response(status)
        if self.path.startswith("/gz/"):  # the length of the encoded body would not match
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        if status == 206:
            end = start + len(data) - 1
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(site.files[name])}")
        if self.path.startswith("/gz/"):
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if site.cut_at is not None:
            self.wfile.write(body[: site.cut_at])
            self.close_connection = True
            return
        self.wfile.write(body)
        if site.close_silently:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


@pytest.fixture
def site() -> Iterator[tuple[Site, str]]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.site = Site()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: HttpTransport) -> None:
        raise AssertionError("httpx was used for a small file over plain http://")

    monkeypatch.setattr(HttpTransport, "client", property(refuse))


def _transport() -> HttpTransport:
    return HttpTransport(Settings.load({"timeout": 5}))


def test_small_files_over_plain_http_share_one_connection_without_httpx(
    site: tuple[Site, str], no_httpx: None
) -> None:
    state, base = site
    transport = _transport()
    try:
        for i in range(10):
            data = blob(i, 100_000 + i)
            state.files[f"/f{i}"] = data
            assert b"".join(transport.stream(f"{base}/f{i}", 0, len(data))) == data
        assert len(state.requests) == 10
        assert len(state.connections) == 1  # one kept connection for the thread
    finally:
        transport.close()


def test_a_resumed_small_file_asks_for_its_range(site: tuple[Site, str], no_httpx: None) -> None:
    state, base = site
    data = blob(20, 300_000)
    state.files["/r"] = data
    transport = _transport()
    try:
        assert b"".join(transport.stream(f"{base}/r", 1000, len(data))) == data[1000:]
    finally:
        transport.close()


def test_a_server_closing_kept_connections_is_asked_again_on_a_new_one(
    site: tuple[Site, str],
) -> None:
    state, base = site
    state.close_silently = True
    transport = _transport()
    try:
        for i in range(10):
            data = blob(30 + i, 50_000)
            state.files[f"/c{i}"] = data
            assert b"".join(transport.stream(f"{base}/c{i}", 0, len(data))) == data
        assert len(state.connections) == 10
    finally:
        transport.close()


def test_redirects_and_encoded_bodies_are_left_to_httpx(site: tuple[Site, str]) -> None:
    state, base = site
    data = blob(40, 70_000)
    state.files["/x"] = data
    transport = _transport()
    try:
        assert b"".join(transport.stream(f"{base}/moved/x", 0, len(data))) == data
        assert b"".join(transport.stream(f"{base}/gz/x", 0, len(data))) == data
    finally:
        transport.close()


def test_a_body_cut_short_keeps_what_arrived_for_a_resume(
    site: tuple[Site, str], no_httpx: None
) -> None:
    state, base = site
    data = blob(50, 500_000)
    state.files["/cut"] = data
    state.cut_at = 200_000
    transport = _transport()
    received = bytearray()
    chunks = transport.stream(f"{base}/cut", 0, len(data))
    try:
        received += next(chunks)  # what arrived comes first
        with pytest.raises(TransientError) as caught:
            next(chunks)
    finally:
        transport.close()
    assert caught.value.resumable  # its Content-Length vouched for the file
    assert len(received) == 200_000
    assert bytes(received) == data[: len(received)]


def test_many_small_files_fetched_over_plain_http_are_verified_and_cached(
    site: tuple[Site, str], tmp_path: Path, no_httpx: None
) -> None:
    state, base = site
    files = []
    for i in range(24):
        data = blob(60 + i, 20_000 + i)
        state.files[f"/m/f{i}.bin"] = data
        checksum = Checksum("adler32", f"{zlib.adler32(data):08x}")
        files.append(RecordFile(f"{base}/m/f{i}.bin", len(data), checksum, "", f"f{i}.bin"))
    settings = Settings.load({"cache_dir": str(tmp_path / "cache"), "retry_backoff": 0.01})
    with Fetcher(settings, protocol="https") as fetcher:
        report = fetcher.fetch_files(files, tmp_path / "dest", jobs=4)
    assert {r.state for r in report.results} == {State.DOWNLOADED}, report.failed
    for f in files:
        assert (tmp_path / "dest" / f.path).read_bytes() == state.files[f"/m/{f.path}"]
    assert len(state.connections) <= 4  # one per fetch thread


def test_entry_metadata_is_never_written_through_a_link_at_its_temp_name(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "cache")
    key = "adler32/ab/abcdef01-5"
    part = store.part(key)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"hello")
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    (part.parent / "abcdef01-5.json.part").parent.mkdir(exist_ok=True)
    os.symlink(victim, part.parent / ".abcdef01-5.json.part")
    with store.lock(key):
        store.commit(part, key, {"uri": "x"}, os.stat(part))
    assert victim.read_text() == "mine\n"
    meta = json.loads((part.parent / "abcdef01-5.json").read_text())
    assert meta["uri"] == "x"
    assert meta["size"] == 5
    assert not (part.parent / ".abcdef01-5.json.part").exists()
    assert store.intact(key)


@pytest.mark.parametrize(
    "rel",
    ["a/b/f", "a/b/new/deeper", "a/missing/x", "", ".", "a//b/./f", "a/b/f/below-a-file",
     "in/f", "in/b/f", "loop/x"],
)  # fmt: skip
def test_confine_gives_what_resolve_gives_and_refuses_links_out(tmp_path: Path, rel: str) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    (tmp_path / "outside").mkdir()
    (root / "in").symlink_to(root / "a")  # a link that stays inside
    (root / "loop").symlink_to(root / "loop")
    (root / "a" / "out").symlink_to(tmp_path / "outside")
    if rel == "loop/x":
        with pytest.raises(UnsafeMetadataError):
            confine(root, rel, "record file")
        return
    assert confine(root, rel, "record file") == (root.resolve() / rel).resolve()
    with pytest.raises(UnsafeMetadataError):
        confine(root, "a/out/" + (rel or "f"), "record file")
