"""A local REANA API server for tests (127.0.0.1), every exchange checked against the spec.

It implements the REANA 0.9 REST endpoints odrun and reana-client use (ping, you,
info, list/create workflows, specification, workspace upload/list/download, start,
status, stop, logs) over a fake workflow engine: a **serial** workflow really runs, its
steps' commands executed with ``bash -c`` in the workflow's workspace on this
host, in a thread (no containers: the step images are ignored; the odrun
runtime image's ``odrun`` is this interpreter's). A **snakemake** workflow runs
with the installed Snakemake, its parameters as config, as one job. Other
workflow types are not executed: they go queued -> running -> finished over
successive status polls.

Every request and response is checked against the OpenAPI document
(:mod:`reana_openapi`); violations are collected in ``server.violations``;
tests assert it stays empty.

``python tests/reana_server.py PORT TOKEN`` serves until Ctrl-C.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import string
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from reana_openapi import BUNDLE_SPEC, LEGACY_SPEC, SPECS, Spec, check_request, check_response

from portal_server import in_thread, wrap_tls

__all__ = ["BUNDLE_SPEC", "LEGACY_SPEC", "SPECS", "Spec", "check_request", "check_response"]


@dataclass
class Workflow:
    id: str
    name: str
    run_number: int
    spec: dict[str, Any]
    workspace: Path
    created: str
    status: str = "created"
    polls: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    engine_log: str = ""
    total: int = 0
    #: names the workspace listing shows besides the real files (a hostile server's)
    extra_listing: list[str] = field(default_factory=list)
    #: workspace paths uploaded (POST .../workspace), in order
    uploaded: list[str] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.name}.{self.run_number}"

    def progress(self) -> dict[str, Any]:
        def ids(state: str) -> dict[str, Any]:
            chosen = [j["id"] for j in self.jobs if j["status"] == state]
            return {"job_ids": chosen, "total": len(chosen)}

        current = next((j for j in self.jobs if j["status"] == "running"), None)
        return {
            "total": {"job_ids": [], "total": self.total},
            "running": ids("running"),
            "finished": ids("finished"),
            "failed": ids("failed"),
            "current_step_name": current["job_name"] if current else None,
            "current_command": current["cmd"] if current else None,
            "run_started_at": self.created if self.status != "created" else None,
        }


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int  # 0: drop the connection without an answer
    count: int
    after: bool  # do the work first, then fail (an ambiguous failure)


class ReanaServer:
    """State of the fake REANA: workflows, tokens, faults, and what was exchanged."""

    def __init__(
        self, root: Path, token: str, *, bundles: bool = False, strict_query: bool = True
    ) -> None:
        self.root = root
        self.token = token
        self.bundles = bundles
        self.strict_query = strict_query
        self.spec = Spec(BUNDLE_SPEC if bundles else LEGACY_SPEC)
        self.workflows: dict[str, Workflow] = {}
        self.faults: list[Fault] = []
        self.violations: list[str] = []
        self.requests: list[str] = []  # "METHOD path?query" as received
        #: the specification of every POST /api/workflows, as received (before any parsing
        #: beyond JSON/bundle decoding), in order: what a client sent, for comparisons
        self.created_specs: list[Any] = []
        self.lock = threading.RLock()
        self.url = ""
        #: a hostile server: builds the body of every error answer from the token the
        #: request carried, (body, content type); answers are then not spec-checked
        self.echo_token: Callable[[str], tuple[bytes, str]] | None = None
        #: a hostile or moved server: given the request's path and query, the Location to
        #: redirect to (with status ``redirect_status``), or None to answer normally
        self.redirect: Callable[[str], str | None] | None = None
        self.redirect_status = 301

    def fail(
        self, method: str, path: str, status: int = 500, count: int = 1, after: bool = False
    ) -> None:
        self.faults.append(Fault(method, re.compile(path), status, count, after))

    def _fault(self, method: str, path: str, after: bool) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                hit = fault.method == method and fault.after == after
                if fault.count and hit and fault.path.search(path):
                    fault.count -= 1
                    return fault
        return None

    def find(self, ref: str) -> Workflow | None:
        with self.lock:
            if ref in self.workflows:
                return self.workflows[ref]
            for wf in self.workflows.values():
                if ref in (wf.full_name, wf.name):
                    return wf  # a bare name: its latest run (dict order)
        return None

    # -- the engine ------------------------------------------------------------------

    def start(self, wf: Workflow) -> None:
        wf.status = "queued"
        steps = (wf.spec.get("workflow", {}).get("specification") or {}).get("steps") or []
        wtype = wf.spec.get("workflow", {}).get("type")
        if wtype == "serial":
            wf.total = len(steps)
            threading.Thread(target=self._run_serial, args=(wf, steps), daemon=True).start()
        elif wtype == "snakemake" and shutil.which("snakemake"):
            wf.total = 1
            threading.Thread(target=self._run_snakemake, args=(wf,), daemon=True).start()
        else:
            wf.total = 1

    def _job(self, wf: Workflow, name: str, image: object = "") -> dict[str, Any]:
        job = {"id": str(uuid.uuid4()), "job_name": name, "status": "running"}
        job |= {"cmd": "", "logs": "", "docker_img": str(image)}
        wf.jobs.append(job)
        return job

    def _run_snakemake(self, wf: Workflow) -> None:
        """As REANA's snakemake engine: the parameters are the config, the workspace the
        working directory; here one job runs the whole workflow (rule images ignored)."""
        import yaml

        config = wf.workspace.parent / f"{wf.id}-config.yaml"
        config.write_text(yaml.safe_dump(wf.spec.get("inputs", {}).get("parameters") or {}))
        snakefile = str(wf.spec["workflow"].get("file") or "Snakefile")
        argv = ["snakemake", "--snakefile", str(wf.workspace / snakefile), "--configfile",
                str(config), "--directory", str(wf.workspace), "--cores", "1"]  # fmt: skip
        wf.status = "running"
        job = self._job(wf, "snakemake")
        job["cmd"] = " ".join(argv)
        proc = subprocess.run(
            argv, env=_engine_env(), capture_output=True, text=True, timeout=300, check=False
        )
        job["logs"] = proc.stdout + proc.stderr
        job["status"] = wf.status = "finished" if proc.returncode == 0 else "failed"
        wf.engine_log += f"snakemake exited with {proc.returncode}\n"

    def _run_serial(self, wf: Workflow, steps: list[dict[str, Any]]) -> None:
        params = {k: str(v) for k, v in (wf.spec.get("inputs", {}).get("parameters") or {}).items()}
        env = _engine_env()
        wf.status = "running"
        for i, step in enumerate(steps):
            job = self._job(wf, str(step.get("name") or f"step{i}"), step.get("environment") or "")
            for raw in step.get("commands") or []:
                command = string.Template(str(raw)).safe_substitute(params)
                job["cmd"] = command
                proc = subprocess.run(
                    ["bash", "-c", command],
                    cwd=wf.workspace,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                job["logs"] += proc.stdout + proc.stderr
                if proc.returncode != 0:
                    job["status"] = "failed"
                    wf.engine_log += f"step {job['job_name']} failed ({proc.returncode})\n"
                    wf.status = "failed"
                    return
            job["status"] = "finished"
        wf.engine_log += "workflow finished\n"
        wf.status = "finished"

    def poll(self, wf: Workflow) -> None:
        """Workflows the engine does not run advance one state per status poll."""
        if wf.jobs or wf.spec.get("workflow", {}).get("type") == "serial":
            return
        wf.polls += 1
        order = ["queued", "running", "finished"]
        if wf.status in order[:-1] and wf.polls >= 2:
            wf.status = order[order.index(wf.status) + 1]


def _engine_env() -> dict[str, str]:
    """The steps' environment: this one, with this interpreter's scripts (odrun) first."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class Handler(BaseHTTPRequestHandler):
    server_version = "reana-test/0.9"
    protocol_version = "HTTP/1.1"
    state: ReanaServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ----------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        doc: Any = None,
        raw: bytes | None = None,
        mime: str = "",
        check: bool = True,
    ) -> None:
        body = raw if raw is not None else json.dumps(doc).encode()
        mime = mime or "application/json"
        split = urlsplit(self.path)
        if status >= 400 and self.state.echo_token is not None:
            token = parse_qs(split.query).get("access_token", [""])[0]
            body, mime = self.state.echo_token(token)
            check = False
        if check:  # injected faults stand for a proxy or gateway in front of REANA: not checked
            self.state.violations += check_response(
                self.state.spec, self.command, unquote(split.path), status, mime, body
            )
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body = self._body()
        state = self.state
        state.requests.append(f"{self.command} {self.path}")
        state.violations += check_request(
            state.spec,
            self.command,
            path,
            query,
            self.headers.get("Content-Type", ""),
            body,
            state.strict_query,
        )
        location = state.redirect(self.path) if state.redirect is not None else None
        if location is not None:
            self.send_response(state.redirect_status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        fault = state._fault(self.command, path, after=False)
        if fault is not None:
            self._fail(fault)
            return
        fault = state._fault(self.command, path, after=True)
        self._swallow = fault is not None  # do the work, then answer with the fault instead
        self._route(path, query, body)
        if fault is not None:
            self._fail(fault)

    def _fail(self, fault: Fault) -> None:
        if fault.status == 0:
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._send(fault.status, {"message": "Internal controller error."}, check=False)

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815

    def _route(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        state = self.state
        if path == "/api/ping":
            doc: dict[str, Any] = {"message": "OK", "status": "200"}
            if state.bundles:
                doc |= {"api_capabilities": ["workflow-specification-bundles-v1"],
                        "reana_server_version": "0.95.0a6"}  # fmt: skip
            return self._reply(200, doc)
        if query.get("access_token", [""])[0] != state.token:
            return self._reply(403, {"message": "Token is not valid."})
        if path == "/api/you":
            return self._reply(200, {"email": "odrun@example.org", "reana_server_version": "0.9.4"})
        if path == "/api/info":
            return self._reply(200, {
                "compute_backends": {"title": "Compute backends", "value": ["kubernetes"]},
                "default_workspace": {"title": "Default workspace", "value": "/var/reana"},
                "workspaces_available": {"title": "Workspaces", "value": ["/var/reana"]},
            })  # fmt: skip
        if path == "/api/workflows" and self.command == "GET":
            return self._list(query)
        if path == "/api/workflows" and self.command == "POST":
            return self._create(query, body)
        found = re.match(
            r"^/api/workflows/([^/]+)/(start|status|logs|workspace|specification)(?:/(.+))?$", path
        )
        if not found:
            return self._reply(404, {"message": f"{path} not found"})
        ref, action, file_name = found.groups()
        wf = state.find(ref)
        if wf is None:
            return self._reply(404, {"message": f"Workflow {ref} does not exist."})
        if action == "specification":  # as REANA 0.9: the spec as created, start parameters
            return self._reply(200, {"specification": wf.spec, "parameters": {}})
        if action == "start":
            if wf.status != "created":
                return self._reply(409, {"message": f"Workflow {ref} is already {wf.status}."})
            state.start(wf)
            ident = {"workflow_id": wf.id, "workflow_name": wf.full_name, "status": wf.status}
            return self._reply(200, {"message": "Workflow submitted."} | ident)
        if action == "status" and self.command == "PUT":
            if wf.status not in ("running", "queued"):  # as REANA: 409 (in the spec)
                return self._reply(409, {"message": f"Workflow {ref} could not be stopped "
                                                    f"because it is {wf.status}."})  # fmt: skip
            wf.status = "stopped"
            ident = {"workflow_id": wf.id, "workflow_name": wf.full_name, "status": wf.status}
            return self._reply(200, {"message": "Workflow stopped."} | ident)
        if action == "status":
            state.poll(wf)
            return self._reply(200, {"id": wf.id, "name": wf.full_name, "status": wf.status,
                                     "created": wf.created, "user": "u", "logs": "",
                                     "progress": wf.progress()})  # fmt: skip
        if action == "logs":
            logs = {
                "workflow_logs": wf.engine_log,
                "job_logs": {j["id"]: dict(j, workflow_uuid=wf.id) for j in wf.jobs},
                "engine_specific": None,
            }
            return self._reply(200, {"workflow_id": wf.id, "workflow_name": wf.full_name,
                                     "user": "u", "logs": json.dumps(logs)})  # fmt: skip
        return self._workspace(wf, file_name, query, body)

    def _reply(
        self, status: int, doc: Any = None, raw: bytes | None = None, mime: str = ""
    ) -> None:
        if not getattr(self, "_swallow", False):
            self._send(status, doc, raw, mime)

    def _list(self, query: dict[str, list[str]]) -> None:
        wanted = query.get("workflow_id_or_name", [None])[0]
        items = []
        with self.state.lock:
            for wf in self.state.workflows.values():
                if wanted and wanted not in (wf.id, wf.name, wf.full_name):
                    continue
                items.append({"id": wf.id, "name": wf.full_name, "status": wf.status,
                              "created": wf.created, "user": "u", "progress": wf.progress(),
                              "size": {"raw": 0, "human_readable": "0 B"}})  # fmt: skip
        self._reply(200, {"items": items, "total": len(items)})

    def _create(self, query: dict[str, list[str]], body: bytes) -> None:
        name = query.get("workflow_name", [""])[0]
        if not name or "." in name:
            return self._reply(400, {"message": f"Workflow name {name!r} is not valid."})
        if self.state.bundles:
            spec, files = _read_bundle(body, self.headers.get("Content-Type", ""))
        else:
            spec, files = json.loads(body or b"{}"), {}
        with self.state.lock:
            self.state.created_specs.append(copy.deepcopy(spec))
        spec = spec.get("reana_specification", spec) if isinstance(spec, dict) else {}
        with self.state.lock:
            run = 1 + sum(1 for w in self.state.workflows.values() if w.name == name)
            wid = str(uuid.uuid4())
            ws = self.state.root / wid
            ws.mkdir(parents=True)
            for rel, data in files.items():
                (ws / rel).parent.mkdir(parents=True, exist_ok=True)
                (ws / rel).write_bytes(data)
            wf = Workflow(wid, name, run, copy.deepcopy(spec), ws, _now())
            self.state.workflows[wid] = wf
        return self._reply(201, {"message": "The workflow has been successfully created.",
                                 "workflow_id": wid, "workflow_name": wf.full_name})  # fmt: skip

    def _workspace(
        self, wf: Workflow, file_name: str | None, query: dict[str, list[str]], body: bytes
    ) -> None:
        ws = wf.workspace
        if self.command == "POST":
            # reana-client sends "/analysis/x.py": REANA takes it relative to the workspace
            rel = query.get("file_name", [""])[0].lstrip("/")
            target = (ws / rel).resolve()
            if not rel or not target.is_relative_to(ws.resolve()):
                return self._reply(400, {"message": f"bad file name {rel!r}"})
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            wf.uploaded.append(rel)
            return self._reply(200, {"message": f"{rel} has been successfully uploaded."})
        if file_name is None:
            items = [
                {"name": p.relative_to(ws).as_posix(), "last-modified": _now(),
                 "size": {"raw": p.stat().st_size, "human_readable": f"{p.stat().st_size} B"}}
                for p in sorted(ws.rglob("*")) if p.is_file()
            ]  # fmt: skip
            size = {"raw": 1, "human_readable": "1 B"}
            items += [{"name": n, "last-modified": _now(), "size": size} for n in wf.extra_listing]
            return self._reply(200, {"items": items, "total": len(items)})
        target = (ws / file_name).resolve()
        if not target.is_file() or not target.is_relative_to(ws.resolve()):
            return self._reply(404, {"message": f"{file_name} does not exist."})
        return self._reply(200, raw=target.read_bytes(), mime="application/octet-stream")


def _read_bundle(body: bytes, content_type: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The ZIP in the multipart ``bundle`` field: reana.yaml and the workflow files."""
    import yaml

    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, _, data = part.partition(b"\r\n\r\n")
        if b'name="bundle"' in head:
            data = data.rsplit(b"\r\n", 1)[0]
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                files = {n: archive.read(n) for n in archive.namelist()}
            spec = yaml.safe_load(files.pop("reana.yaml"))
            return spec, files
    return {}, {}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (openssl), for HTTPS tests."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@contextmanager
def serve(
    root: Path,
    token: str = "secret-token-0123",
    tls: tuple[Path, Path] | None = None,
    **options: Any,
) -> Iterator[ReanaServer]:
    """Serve on 127.0.0.1 (a free port), over HTTPS with ``tls`` = (cert, key)."""
    state = ReanaServer(root, token, **options)
    handler = type("BoundHandler", (Handler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    scheme = wrap_tls(httpd, tls)
    state.url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    with in_thread(httpd):
        yield state


if __name__ == "__main__":
    import tempfile

    port_token = sys.argv[1:3]
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), *port_token[1:]) as server:
        print(f"REANA test server on {server.url}", flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()
