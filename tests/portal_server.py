"""A local HTTP server that answers like the CERN Open Data portal's REST API.

It serves the real record fixtures in ``tests/data/records`` the way the portal
does after loading them (cernopendata-portal ``fixtures/cli.py``): ``index.json``
files whose content is available (``tests/data/file-indices``) become
``metadata._file_indices`` with their entries, ``index.txt`` entries are
dropped, the other files get ``key/bucket/version_id/availability``. Records
whose index files are not available offline keep their raw index entries in
``metadata.files`` (as an older API would), and fetching those indices fails,
which is how tests see an incomplete file list.

Endpoints: ``GET /api/records/<recid>`` (also ``<experiment>-<n>``),
``GET /api/records?q=doi:"<DOI>"&page=1&size=1``, and ``GET /eos/...`` serving
the raw index files (for tests mapping ``root://eospublic.cern.ch`` here).

Run it by hand: ``python tests/portal_server.py [PORT]``.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DATA = Path(__file__).parent / "data"
RECORDS = DATA / "records"
INDICES = DATA / "file-indices"
INDEX_TYPES = ("index.json", "index.txt")


def load_source(recid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDS / f"{recid}.json").read_text())
    return data


def index_copy(recid: str, uri: str) -> Path | None:
    path = INDICES / recid / uri.rsplit("/", 1)[-1]
    return path if path.is_file() else None


def to_api(
    source: dict[str, Any], base: str = "http://127.0.0.1", raw: bool = False
) -> dict[str, Any]:
    """The API document the portal would serve for a fixture record."""
    meta = copy.deepcopy(source)
    recid = str(meta["recid"])
    bucket = f"bucket-{recid}"
    files, indices = [], []
    has_all = all(
        index_copy(recid, f["uri"]) for f in meta.get("files", []) if f.get("type") == "index.json"
    )
    for f in meta.get("files", []):
        kind = f.get("type")
        if kind in INDEX_TYPES and (raw or not has_all):
            files.append(f)  # raw listing: the client must read the index itself
        elif kind == "index.json":
            entries = json.loads(index_copy(recid, f["uri"]).read_text())  # type: ignore[union-attr]
            name = f["uri"].rsplit("/", 1)[-1].removesuffix(".json")
            for n, entry in enumerate(entries):
                entry.update(
                    key=f"{name}_{n}",
                    file_id=f"{recid}-{n}",
                    bucket=bucket,
                    version_id=f"v-{recid}-{n}",
                    tags={},
                    availability="online",
                )
            indices.append(
                {
                    "key": name,
                    "description": f.get("description", name),
                    "number_files": len(entries),
                    "size": sum(e["size"] for e in entries),
                    "availability": "online",
                    "bucket": bucket,
                    "files": entries,
                }
            )
        elif kind == "index.txt":
            continue
        else:
            files.append(
                dict(
                    f,
                    bucket=bucket,
                    key=f["uri"].rsplit("/", 1)[-1],
                    version_id=f"v-{recid}",
                    availability="online",
                )
            )
    meta["files"] = files
    meta["_file_indices"] = indices
    meta["$schema"] = "https://opendata.cern.ch/schema/records/record-v1.0.0.json"
    meta["availability"] = "online"
    return {
        "id": recid,
        "created": "2026-06-30T00:00:00+00:00",
        "updated": "2026-06-30T00:00:00+00:00",
        "revision": 1,
        "links": {"self": f"{base}/api/records/{recid}"},
        "metadata": meta,
    }


def all_recids() -> list[str]:
    return sorted((p.stem for p in RECORDS.glob("*.json")), key=int)


def write_mirror(dest: Path, recids: list[str] | None = None) -> Path:
    """A file:// portal folder holding the API document of each fixture record."""
    dest.mkdir(parents=True, exist_ok=True)
    for recid in recids or all_recids():
        doc = to_api(load_source(recid))
        (dest / f"{recid}.json").write_text(json.dumps(doc))
    return dest


class PortalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, raw: bool = False, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.raw = raw
        self.requests: list[str] = []
        #: answer this many requests with 503 before serving normally
        self.fail_next = 0
        #: paths answered 503 forever (simulates a broken endpoint)
        self.broken: set[str] = set()
        self.lock = threading.Lock()
        self.overrides: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, recid: str) -> dict[str, Any] | None:
        if recid in self.overrides:
            doc: dict[str, Any] = self.overrides[recid]
            return doc
        match = re.fullmatch(r"([a-z][a-z0-9]*)-(\d+)", recid)
        number = match.group(2) if match else recid
        if not number.isdigit() or not (RECORDS / f"{number}.json").is_file():
            return None
        source = load_source(number)
        if match and match.group(1) not in {e.lower() for e in source.get("experiment", [])}:
            return None
        return to_api(source, self.url, raw=self.raw)


class Handler(BaseHTTPRequestHandler):
    server: PortalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._send(status, json.dumps(doc).encode())

    def do_GET(self) -> None:
        srv = self.server
        split = urlsplit(self.path)
        with srv.lock:
            srv.requests.append(self.path)
            failing = srv.fail_next > 0 or split.path in srv.broken
            if srv.fail_next > 0:
                srv.fail_next -= 1
        if failing:
            return self._json(503, {"status": 503, "message": "Service Unavailable"})
        path = unquote(split.path)
        match = re.fullmatch(r"/api/records/([^/]+)/?", path)
        if match:
            doc = srv.record(match.group(1))
            if doc is None:
                return self._json(404, {"status": 404, "message": "PID does not exist."})
            return self._json(200, doc)
        if path.rstrip("/") == "/api/records":
            return self._search(parse_qs(split.query).get("q", [""])[0])
        if path.startswith("/eos/"):
            name = path.rsplit("/", 1)[-1]
            for copy_ in INDICES.glob(f"*/{name}"):
                return self._send(200, copy_.read_bytes(), "application/octet-stream")
        return self._json(404, {"status": 404, "message": "The requested URL was not found."})

    def _search(self, query: str) -> None:
        match = re.fullmatch(r'doi:"(.+)"', query.strip())
        hits = []
        if match:
            wanted = match.group(1).lower()
            for recid in all_recids():
                if str(load_source(recid).get("doi", "")).lower() == wanted:
                    doc = self.server.record(recid)
                    if doc:
                        hits.append(doc)
        self._json(200, {"hits": {"hits": hits[:1], "total": len(hits)}, "links": {}})


def wrap_tls(server: HTTPServer, tls: tuple[Path, Path] | None) -> str:
    """Serve HTTPS with ``tls`` = (cert, key) when given: the URL scheme to use."""
    if tls is None:
        return "http"
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls[0]), str(tls[1]))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return "https"


@contextmanager
def in_thread(server: HTTPServer) -> Iterator[None]:
    """Serve ``server`` from a daemon thread; shut it down, close it and join on exit."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def serve(raw: bool = False) -> Iterator[PortalServer]:
    server = PortalServer(raw=raw)
    with in_thread(server):
        yield server


if __name__ == "__main__":  # pragma: no cover - manual use
    srv = PortalServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"portal on {srv.url}", flush=True)
    srv.serve_forever()
