"""Submit an analysis to REANA and follow it: create, upload, start, follow, download, verify.

A submission keeps a local record in ``<analysis>/.odrun/reana/<workflow name>/``::

    submission.json            server (never the token), workflow id/name, inputs, outputs
    run.json                   the run record, as ``odrun run`` writes it (runtime "reana")
    ro-crate-metadata.json     provenance, with the REANA workflow id and server
    workspace/                 the downloaded outputs (also copied to --output-dir)

so ``odrun status|logs|download|stop`` and ``odrun verify`` work on that folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun.checksum import checksum_file
from odrun.errors import TransportError, UsageError, WorkflowError
from odrun.records.cache import atomic_write
from odrun.settings import Settings
from odrun.transfer.fetch import Fetcher, fetch_error
from odrun.workflow.expect import Check, evaluate
from odrun.workflow.runner import RunResult
from odrun.workflow.spec import Analysis, SpecError, validate

from . import spec as reana_spec
from .client import ReanaClient
from .models import WorkflowLogs, WorkflowStatus

FORMAT_VERSION = 1
#: failed status polls in a row (each with its own retries) before --follow gives up
FOLLOW_OUTAGE_POLLS = 10
RECORD = "submission.json"
Say = Callable[[str], None]
OnStatus = Callable[[WorkflowStatus], None]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class SubmitOptions:
    name: str | None = None
    #: "auto" (remote when the records exceed REMOTE_THRESHOLD), "upload" or "remote"
    inputs: str = "auto"
    follow: bool = False
    download: bool = False
    verify: bool = False
    output_dir: Path | None = None
    poll_interval: float = 10.0
    #: the image of the injected fetch step (--inputs remote)
    odrun_image: str = reana_spec.ODRUN_IMAGE


@dataclass
class Submission:
    """The local record of one REANA workflow run (no token, ever)."""

    server: str
    workflow_id: str
    workflow_name: str
    analysis: str
    analysis_path: str
    run_dir: Path
    submitted: str = ""
    protocol: str = "legacy-0.9"
    inputs_mode: str = "upload"
    status: str = "created"
    ended: str = ""
    jobs: dict[str, int] = field(default_factory=dict)
    uploaded: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    logs: WorkflowLogs | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "server": self.server,
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "analysis": self.analysis,
            "analysis_path": self.analysis_path,
            "run_dir": str(self.run_dir),
            "submitted": self.submitted,
            "protocol": self.protocol,
            "inputs_mode": self.inputs_mode,
            "status": self.status,
            "ended": self.ended,
            "jobs": self.jobs,
            "uploaded": self.uploaded,
            "outputs": self.outputs,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def load(cls, path: Path) -> Submission:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                server=str(doc["server"]),
                workflow_id=str(doc["workflow_id"]),
                workflow_name=str(doc["workflow_name"]),
                analysis=str(doc.get("analysis") or ""),
                analysis_path=str(doc.get("analysis_path") or ""),
                run_dir=path.parent,
                submitted=str(doc.get("submitted") or ""),
                protocol=str(doc.get("protocol") or "legacy-0.9"),
                inputs_mode=str(doc.get("inputs_mode") or "upload"),
                status=str(doc.get("status") or "unknown"),
                ended=str(doc.get("ended") or ""),
                jobs=dict(doc.get("jobs") or {}),
                uploaded=list(doc.get("uploaded") or []),
                outputs=list(doc.get("outputs") or []),
                checks=[Check(**c) for c in doc.get("checks") or []],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is not an odrun REANA submission record: {exc}") from None

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        atomic_write(self.run_dir / RECORD, text.encode())

    def update(self, status: WorkflowStatus) -> None:
        self.status = status.status
        self.jobs = dict(status.jobs.__dict__)
        if status.done and not self.ended:
            self.ended = now()


def workflow_name(text: str) -> str:
    """A name REANA accepts: letters, digits, ``-`` and ``_`` (REANA adds ``.<run>``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")
    if not name:
        raise UsageError(f"workflow name {text!r} has no letters or digits")
    return name[:100]


def choose_inputs(mode: str, records: list[reana_spec.RecordInputs], local_portal: bool) -> str:
    if mode not in ("auto", "upload", "remote"):
        raise UsageError(f"--inputs {mode!r}: expected auto, upload or remote")
    if mode != "auto":
        return mode
    big = sum(r.size for r in records) > reana_spec.REMOTE_THRESHOLD
    return "remote" if big and not local_portal else "upload"


def submit(
    analysis: Analysis,
    client: ReanaClient,
    settings: Settings,
    options: SubmitOptions,
    *,
    say: Say = lambda _: None,
    on_status: OnStatus = lambda _: None,
) -> Submission:
    """Validate, create, upload, start; then (options) follow, download, verify.

    Returns the submission whatever the workflow's outcome; :func:`outcome_error`
    says which error (if any) the outcome is.
    """
    errors = [f for f in validate(analysis) if f.level == "error"]
    if errors:
        raise SpecError(f"{len(errors)} problem(s), first: {errors[0]}", hint="odrun validate PATH")
    info = client.ping()
    say(f"REANA {client.server}: {info.message or 'OK'} (protocol {info.protocol})")
    body = reana_spec.expand(analysis)
    uploads = reana_spec.workspace_files(analysis)
    records = reana_spec.resolve_records(analysis, settings)
    portal = reana_spec.remote_portal(analysis, settings)
    mode = choose_inputs(options.inputs, records, local_portal=(portal or "").startswith("file:"))
    extra: dict[str, bytes] = {}
    if mode == "remote":
        if portal and portal.startswith("file:"):
            say(f"warning: --inputs remote with a local mirror portal {portal}: the cluster "
                "must see that path")  # fmt: skip
        wfile = analysis.root / str(body["workflow"].get("file") or "Snakefile")
        text = wfile.read_text(encoding="utf-8") if wfile.is_file() else None
        body, extra = reana_spec.inject_fetch(body, records, portal, text, options.odrun_image)
        uploads = [(rel, path) for rel, path in uploads if rel not in extra]
    name = workflow_name(options.name or analysis.name)
    # everything to send is staged (and the records fetched, verified) before the server
    # is asked to create anything: a failure here leaves no half-made workflow behind
    folder = analysis.root.resolve() / ".odrun" / "reana"
    staged = folder / f".staging-{os.getpid()}-{time.monotonic_ns()}"
    try:
        sent = _stage(analysis, settings, uploads, extra, records if mode == "upload" else [],
                      staged, say)  # fmt: skip
        bundle = None
        if info.protocol == "bundles-v1":
            chosen = {rel: (staged / rel).read_bytes() for rel in sent if _declared(analysis, rel)}
            bundle = reana_spec.bundle(body, chosen | extra)
        created = client.create(name, body, bundle)
        sub = Submission(
            server=client.server,
            workflow_id=created.id,
            workflow_name=created.name,
            analysis=analysis.name,
            analysis_path=str((analysis.reana_path or analysis.root).resolve()),
            run_dir=folder / workflow_name(created.name),
            submitted=now(),
            protocol=info.protocol,
            inputs_mode=mode,
        )
        sub.run_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(sub.run_dir / "workspace", ignore_errors=True)  # a stale earlier record
        staged.rename(sub.run_dir / "workspace")  # the local mirror of what is sent
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    sub.save()
    say(f"created workflow {created.name} ({created.id})")
    workspace = sub.run_dir / "workspace"
    for rel in sent:
        path = workspace / rel
        client.upload(created.id, rel, path)
        sub.uploaded.append(
            {"path": rel, "size": path.stat().st_size, "checksum": str(checksum_file(path))}
        )
    say(f"uploaded {len(sent)} files")
    client.start(created.id)
    sub.status = "queued"
    sub.save()
    say(f"started {created.name}")
    if options.follow or options.download or options.verify:
        follow(client, sub, options.poll_interval, on_status)
        collect(client, sub, analysis, options)
    return sub


def _declared(analysis: Analysis, rel: str) -> bool:
    """Files that belong in a bundle: the workflow file and the parameters file."""
    reana = analysis.reana or {}
    names = {
        str(reana.get("workflow", {}).get("file") or ""),
        str(analysis.parameters.get("input")),
    }
    return rel in names


def _stage(
    analysis: Analysis,
    settings: Settings,
    uploads: list[tuple[str, Path]],
    extra: dict[str, bytes],
    records: list[reana_spec.RecordInputs],
    staged: Path,
    say: Say,
) -> list[str]:
    """Copy the analysis files, write odrun's versions, fetch the record files (verified,
    through the cache: hard links) into ``staged``; returns the workspace paths to send."""
    sent: list[str] = []
    for rel, path in uploads:
        (staged / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, staged / rel)  # a copy: what was sent, even if edited later
        sent.append(rel)
    for rel, data in extra.items():
        atomic_write(staged / rel, data)
        sent.append(rel)
    if records:
        with Fetcher(reana_spec.record_settings(analysis, settings)) as fetcher:
            for item in records:
                recid = item.record.recid
                say(f"fetching {len(item.files)} files of record {recid} to upload")
                report = fetcher.fetch_files(item.files, staged / item.dest, recid=recid)
                error = fetch_error(report)
                if error is not None:
                    raise error
                sent += [f"{item.dest}/{f.path}" for f in item.files]
    return sent


def follow(
    client: ReanaClient,
    sub: Submission,
    poll_interval: float,
    on_status: OnStatus,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> WorkflowStatus:
    """Poll the status until the workflow ends; every answer goes to ``on_status``.

    A server that stays unreachable for a while (each poll already retries with
    backoff) is polled again, up to ``FOLLOW_OUTAGE_POLLS`` failed polls in a row.
    """
    failures = 0
    while True:
        try:
            status = client.status(sub.workflow_id)
        except TransportError:
            failures += 1
            if failures >= FOLLOW_OUTAGE_POLLS:
                raise
            sleep(poll_interval)
            continue
        failures = 0
        on_status(status)
        sub.update(status)
        sub.save()
        if status.done:
            if status.status == "failed":
                sub.logs = client.logs(sub.workflow_id)
            return status
        sleep(poll_interval)


def collect(
    client: ReanaClient, sub: Submission, analysis: Analysis, options: SubmitOptions
) -> None:
    """After the end: download the declared outputs, verify, write the run record."""
    if sub.status == "finished" and (options.download or options.verify):
        download_outputs(client, sub, analysis, options.output_dir)
        expect = analysis.manifest.get("expect") or []
        if options.verify and expect:
            sub.checks = evaluate(sub.run_dir / "workspace", expect, analysis.root)
    write_run_record(sub, analysis)
    sub.save()


def declared_outputs(client: ReanaClient, sub: Submission, analysis: Analysis) -> list[str]:
    files = analysis.files_in("outputs", "files")
    folders = [d.rstrip("/") + "/" for d in analysis.files_in("outputs", "directories")]
    if folders:
        listed = [f.name for f in client.ls(sub.workflow_id)]
        files += [name for name in listed if name.startswith(tuple(folders))]
    return list(dict.fromkeys(files))


def download_outputs(
    client: ReanaClient, sub: Submission, analysis: Analysis, output_dir: Path | None
) -> None:
    """Each declared output into the record's workspace/ and to ``output_dir``/<path>."""
    from odrun.errors import NotFoundError  # noqa: PLC0415 - only here

    target = (output_dir or analysis.root).resolve()
    sub.outputs = []
    for declared in declared_outputs(client, sub, analysis):
        rel = reana_spec.safe_rel(declared, "outputs entry")
        local = sub.run_dir / "workspace" / rel
        try:
            size = client.download(sub.workflow_id, rel, local)
        except NotFoundError:
            sub.outputs.append({"path": rel, "size": None, "checksum": None, "missing": True})
            continue
        _place(local, target / rel)
        sub.outputs.append({"path": rel, "size": size, "checksum": str(checksum_file(local))})


def _place(src: Path, dst: Path) -> None:
    """``src`` at ``dst``: a hard link (a copy across filesystems), through a temp name."""
    if dst.resolve() == src.resolve():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    tmp.replace(dst)


def write_run_record(sub: Submission, analysis: Analysis) -> None:
    """run.json and the RO-Crate, as a local run writes them (runtime ``reana``)."""
    from odrun.workflow.provenance import write_crate  # noqa: PLC0415 - cycle

    result = RunResult(
        analysis.name,
        sub.run_dir,
        analysis_path=sub.analysis_path,
        status=sub.status,
        started=sub.submitted,
        ended=sub.ended,
        runtime="reana",
        inputs=[dict(u, kind="uploaded") for u in sub.uploaded],
        outputs=sub.outputs,
        checks=sub.checks,
    )
    write_crate(
        result,
        analysis,
        reana={"server": sub.server, "workflow_id": sub.workflow_id, "name": sub.workflow_name},
    )
    reana = {"server": sub.server, "workflow_id": sub.workflow_id}
    doc = result.to_dict() | {"reana": reana | {"workflow_name": sub.workflow_name}}
    atomic_write(
        sub.run_dir / "run.json", (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    )


def outcome_error(sub: Submission) -> Exception | None:
    """The error a finished submission ends with (None: success)."""
    from odrun.errors import VerificationError  # noqa: PLC0415

    if sub.status in ("failed", "stopped", "deleted"):
        failed = sub.logs.failed if sub.logs else []
        step = f"; failed step: {failed[0].name}" if failed else ""
        return WorkflowError(
            f"REANA workflow {sub.workflow_name} {sub.status}{step}",
            hint=f"odrun logs {sub.run_dir}",
        )
    missing = [o["path"] for o in sub.outputs if o.get("missing")]
    if missing:
        return WorkflowError(
            f"REANA workflow {sub.workflow_name} finished without its declared outputs: "
            + ", ".join(missing),
            hint="check the outputs section of reana.yaml and the step commands",
        )
    failed_checks = [c for c in sub.checks if not c.ok]
    if failed_checks:
        return VerificationError(
            f"{len(failed_checks)} of {len(sub.checks)} expectations do not hold; first: "
            f"{failed_checks[0].name}: {failed_checks[0].detail}"
        )
    return None


def find_record(run: str, cwd: Path) -> Submission | None:
    """RUN as a local record: a record folder, its submission.json, an analysis folder
    (its latest submission), or a workflow name with a record under ``./.odrun/reana``."""
    path = Path(run)
    candidates: list[Path] = []
    if path.is_file() and path.name == RECORD:
        candidates = [path]
    elif (path / RECORD).is_file():
        candidates = [path / RECORD]
    elif path.is_dir():
        candidates = sorted(
            (path / ".odrun" / "reana").glob(f"*/{RECORD}"), key=lambda p: p.stat().st_mtime
        )[-1:]
        if not candidates:
            raise UsageError(f"{path} holds no REANA submission (.odrun/reana/*/{RECORD})")
    else:
        folder = cwd / ".odrun" / "reana"
        exact = folder / workflow_name(run) / RECORD if run.strip(".") else None
        if exact is not None and exact.is_file():
            candidates = [exact]
    return Submission.load(candidates[0]) if candidates else None
