"""A loopback stand-in for hepdata.net's public API, serving real example tables.

The tables are the real HEPData examples in ``tests/data/hepdata`` (see its README),
published here as tables of records, with hepdata.net's URL shapes and JSON structure
(``hepdata/modules/records/utils/common.py`` ``process_ctx`` and the download views):

- ``GET /record/ins<id>?format=json[&light=true][&version=N]``: ``{"version": N,
  "version_count": ..., "status": "finished", "record": {"inspire_id", "version",
  "title", ...}, "data_tables": [{"id", "name", "description", "doi", "location",
  "data": {"json", "yaml", "csv", "root", "yoda"}}]}``; ``light=true`` drops
  ``data_tables``, as the real site does;
- ``GET /download/table/ins<id>/<table name>/<version>/yaml`` (without the version: the
  current one): the table in the submission format. Like the real site, ``Table3`` also
  names ``Table 3``;
- ``.../json`` and ``GET /record/ins<id>?format=json&table=<name>``: a redirect to
  ``/record/data/<recid>/<table id>/<version>``, the table as the web page renders it
  (:func:`rendered`, after hepdata's ``generate_table_structure``).

Anything else is 404. ``publish`` adds a new version of a record (drift tests);
``requests`` lists the paths asked.

Run it by hand: ``python tests/hepdata_server.py [PORT]``.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

DATA = Path(__file__).parent / "data" / "hepdata"

#: record -> table name -> example file (version 1 of each record)
RECORDS: dict[str, dict[str, str]] = {
    # the TestHEPSubmission example (not a real INSPIRE record: a made-up id)
    "ins1000001": {
        "Table 1": "data1.yaml",
        "Table 3": "data3.yaml",
        "Table 3 covariance": "data3_covariance.yaml",
    },
    # Belle, INSPIRE 1512299 (the hepdata-submission example of its first table)
    "ins1512299": {"Table 1": "d01-x01-y01.yaml"},
    # an excerpt of hepdata-validator's dijet table with percentage errors (made-up id)
    "ins1000002": {"Table 1": "dijet_percent_excerpt.yaml"},
}


def table_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def rendered(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The JSON hepdata.net serves for a table (``/record/data/<recid>/<id>/<version>``):
    its web page's structure, as ``generate_table_structure`` in hepdata's
    ``modules/records/utils/data_processing_utils.py`` builds it from the table."""
    headers: list[dict[str, Any]] = []
    x_columns: list[list[Any]] = []
    for x_axis in doc["independent_variables"]:
        units = x_axis["header"].get("units", "")
        headers.append({"name": x_axis["header"]["name"] + (f" [{units}]" if units else ""),
                        "colspan": 1})  # fmt: skip
        x_columns.append(list(x_axis["values"]))
    record: dict[str, Any] = {"name": name, "description": doc.get("description", ""),
                              "qualifiers": {}, "qualifier_order": [], "keywords": {},
                              "x_count": len(headers), "values": []}  # fmt: skip
    rows: dict[int, dict[str, Any]] = {}
    y_headers: list[dict[str, Any]] = []
    for group, y_axis in enumerate(doc["dependent_variables"]):
        seen: dict[str, int] = {}
        for q in y_axis.get("qualifiers", []):
            key = q["name"]
            if key in seen:
                seen[key] += 1
                key = f"{key}-{seen[key]}"
            else:
                seen[key] = 0
            if key not in record["qualifiers"]:
                record["qualifier_order"].append(key)
                record["qualifiers"][key] = []
            value = str(q["value"]) + (" " + q["units"] if "units" in q else "")
            entries = record["qualifiers"][key]
            if entries and entries[-1]["type"] == q["name"] and entries[-1]["value"] == value:
                entries[-1]["colspan"] += 1
            else:
                entries.append({"type": q["name"], "value": value, "colspan": 1, "group": group})
        units = y_axis["header"].get("units", "")
        y_headers.append({"name": y_axis["header"]["name"] + (f" [{units}]" if units else ""),
                          "colspan": 1})  # fmt: skip
        for n, value in enumerate(y_axis["values"]):
            row = rows.setdefault(n, {"x": [column[n] for column in x_columns], "y": []})
            point = copy.deepcopy(value)
            point["group"] = group
            if "errors" not in point:
                point["errors"] = [{"symerror": 0, "hide": True}]
            else:
                counts: dict[str, int] = {}
                for error in point["errors"]:
                    label = error.get("label", "error")
                    counts[label] = counts.get(label, 0) + 1
                    if counts[label] > 1:
                        error["label"] = f"{label}_{counts[label]}"
                    if counts[label] == 2:
                        for first in point["errors"]:
                            if first.get("label", "error") == label:
                                first["label"] = f"{label}_1"
                                break
            row["y"].append(point)
    last: dict[str, Any] | None = None
    for header in y_headers:  # a run of equal names is one header with a colspan
        if last is not None and last["name"] == header["name"]:
            last["colspan"] += 1
        else:
            last = header
            headers.append(header)
    record["headers"] = headers
    record["values"] = [rows[n] for n in sorted(rows)]
    return record


class HepdataServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.lock = threading.Lock()
        self.requests: list[str] = []
        #: record -> versions (index 0 is version 1) -> table name -> bytes
        self.versions: dict[str, list[dict[str, bytes]]] = {
            ins: [{t: table_bytes(f) for t, f in tables.items()}] for ins, tables in RECORDS.items()
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def publish(self, inspire: str, tables: dict[str, bytes]) -> int:
        """A new version of ``inspire`` with the tables of the last one, updated by
        ``tables``; returns its number."""
        with self.lock:
            versions = self.versions.setdefault(inspire, [])
            versions.append({**(versions[-1] if versions else {}), **tables})
            return len(versions)

    def record_doc(self, inspire: str, version: int, light: bool) -> dict[str, Any]:
        tables = self.versions[inspire][version - 1]
        doc: dict[str, Any] = {
            "version": version,
            "version_count": len(self.versions[inspire]),
            "status": "finished",
            "recid": 100000 + int(inspire[3:]) % 100000,
            "record": {
                "inspire_id": inspire[3:],
                "version": version,
                "title": f"Stand-in record {inspire}",
                "hepdata_doi": f"10.17182/hepdata.{inspire[3:]}.v{version}",
            },
        }
        if not light:
            doc["data_tables"] = []
            for n, name in enumerate(sorted(tables), start=1):
                cleaned = name.replace("%", "%25").replace("\\", "%5C")
                if re.match(r"^Table \d+$", cleaned):
                    cleaned = cleaned.replace("Table ", "Table")
                base = f"{self.url}/download/table/{inspire}/{cleaned}"
                doc["data_tables"].append(
                    {
                        "id": n,
                        "name": name,
                        "description": f"{name} of {inspire}",
                        "location": f"Data from {name}",
                        "doi": f"10.17182/hepdata.{inspire[3:]}.v{version}/t{n}",
                        "data": {f: f"{base}/{f}" for f in ("json", "root", "csv", "yoda", "yaml")},
                    }
                )
        return doc


class Handler(BaseHTTPRequestHandler):
    server: HepdataServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, doc: Any) -> None:
        self._send(code, json.dumps(doc).encode(), "application/json")

    def _missing(self) -> None:
        self._json(404, {"status": 404, "message": "not found"})

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        with self.server.lock:
            self.server.requests.append(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        parts = [unquote(p) for p in split.path.split("/") if p]
        if len(parts) == 2 and parts[0] == "record" and query.get("format") == "json":
            if "table" in query:  # as hepdata.net: a redirect to the table's JSON
                self._table(parts[1], query["table"], query.get("version", ""), "json")
            else:
                self._record(parts[1], query)
        elif len(parts) == 5 and parts[:2] == ["record", "data"]:
            self._rendered(parts[2], parts[3], parts[4])
        elif len(parts) in (5, 6) and parts[:2] == ["download", "table"]:
            version = parts[4] if len(parts) == 6 else ""
            self._table(parts[2], parts[3], version, parts[-1])
        else:
            self._missing()

    def _version(self, inspire: str, text: str | None) -> int | None:
        versions = self.server.versions.get(inspire)
        if not versions:
            return None
        if text is None or text == "":
            return len(versions)
        if not text.isdigit() or not 1 <= int(text) <= len(versions):
            return None
        return int(text)

    def _record(self, inspire: str, query: dict[str, str]) -> None:
        version = self._version(inspire, query.get("version"))
        if version is None:
            self._missing()
            return
        light = query.get("light", "").lower() == "true"
        self._json(200, self.server.record_doc(inspire, version, light))

    def _table(self, inspire: str, name: str, version_text: str, fmt: str) -> None:
        version = self._version(inspire, version_text)
        if version is None:
            self._missing()
            return
        tables = self.server.versions[inspire][version - 1]
        if name not in tables and re.fullmatch(r"Table\d+", name):
            name = name.replace("Table", "Table ")
        if name not in tables or fmt not in ("yaml", "json"):
            self._missing()
            return
        if fmt == "json":  # hepdata.net redirects to the rendered table
            number = sorted(tables).index(name) + 1
            recid = self.server.record_doc(inspire, version, True)["recid"]
            self.send_response(302)
            self.send_header("Location", f"/record/data/{recid}/{number}/{version}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(200, tables[name], "text/plain; charset=utf-8")

    def _rendered(self, recid: str, number: str, version: str) -> None:
        for inspire, versions in self.server.versions.items():
            if str(self.server.record_doc(inspire, 1, True)["recid"]) != recid:
                continue
            v = self._version(inspire, version)
            names = sorted(versions[v - 1]) if v else []
            if number.isdigit() and 1 <= int(number) <= len(names):
                name = names[int(number) - 1]
                doc = yaml.safe_load(versions[v - 1][name])  # type: ignore[index, operator]
                self._json(200, rendered(doc, name))
                return
        self._missing()


@contextmanager
def serve() -> Iterator[HepdataServer]:
    server = HepdataServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


if __name__ == "__main__":  # pragma: no cover - manual use
    srv = HepdataServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(f"HEPData stand-in on {srv.url}", flush=True)
    srv.serve_forever()
