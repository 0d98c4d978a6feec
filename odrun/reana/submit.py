"""Submit an analysis to REANA and follow it: create, upload, start, follow, download, verify.

A submission keeps a local record in ``<analysis>/.odrun/reana/<workflow name>/``::

    submission.json            server (never the token), workflow id/name, inputs, outputs
    run.json                   the run record, as ``odrun run`` writes it (runtime "reana")
    ro-crate-metadata.json     provenance, with the REANA workflow id and server
    workspace/                 the downloaded outputs (also copied to --output-dir)

so ``odrun status|logs|download|stop`` and ``odrun verify`` work on that folder.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun._fs import atomic_write, confine, place
from odrun.checksum import checksum_file
from odrun.errors import (
    CancelledError,
    NotFoundError,
    OdrunError,
    SpecError,
    TransportError,
    UnsafeMetadataError,
    UsageError,
    VerificationError,
    WorkflowError,
)
from odrun.records.cache import ensure_writable
from odrun.records.paths import PathClaims
from odrun.redact import redact
from odrun.settings import Settings
from odrun.transfer.fetch import Fetcher, fetch_error
from odrun.workflow.expect import evaluate
from odrun.workflow.fromrecord import record_origin
from odrun.workflow.model import RunRecord, RunResult
from odrun.workflow.provenance import write_crate
from odrun.workflow.spec import Analysis, ensure_valid, record_settings

from . import spec as reana_spec
from .client import ReanaClient
from .models import Created, ServerInfo, WorkflowStatus
from .record import RECORD, Submission, find_record, local_error, now, workflow_name

__all__ = ["RECORD", "Submission", "SubmitOptions", "find_record", "submit", "workflow_name"]

#: failed status polls in a row (each with its own retries) before --follow gives up
FOLLOW_OUTAGE_POLLS = 10
Say = Callable[[str], None]
OnStatus = Callable[[WorkflowStatus], None]


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
    #: the image of the injected fetch step (--inputs remote needs one; no default exists)
    odrun_image: str | None = None
    #: --trust-snakefile: the Snakefile of an analysis from a record may run on this host to
    #: build the job graph reana-client sends (it is Python: top-level code, input functions)
    trust_snakefile: bool = False


def choose_inputs(
    mode: str,
    records: list[reana_spec.RecordInputs],
    local_portal: bool,
    image: str | None = "configured",
    say: Say = lambda _: None,
) -> str:
    """upload or remote; remote needs the odrun image of the fetch step (``image``)."""
    check_inputs(mode, image)
    if mode != "auto":
        return mode
    big = sum(r.size for r in records) > reana_spec.REMOTE_THRESHOLD
    if big and not local_portal and not image:
        say(f"note: uploading the record files (over 1 GB): --inputs remote would fetch them "
            f"in the cluster, given --odrun-image or {reana_spec.IMAGE_ENV}")  # fmt: skip
        return "upload"
    return "remote" if big and not local_portal else "upload"


def check_inputs(mode: str, image: str | None) -> None:
    """A usage error for an unknown mode, or remote without the fetch step's image."""
    if mode not in ("auto", "upload", "remote"):
        raise UsageError(f"--inputs {mode!r}: expected auto, upload or remote")
    if mode == "remote" and not image:
        raise UsageError(
            "--inputs remote needs the odrun image of the in-cluster fetch step: "
            f"pass --odrun-image IMAGE or set {reana_spec.IMAGE_ENV}",
            hint=f"build and push it as {reana_spec.IMAGE_HOWTO} says; or --inputs upload",
        )


def output_target(analysis: Analysis, output_dir: Path | None) -> Path:
    """The folder downloaded outputs go to, created and checked writable (before submitting)."""
    target = (output_dir or analysis.root).resolve()
    try:
        ensure_writable(target)
    except OSError as exc:
        raise UsageError(
            f"output folder {target} is not writable: {exc.strerror or exc}",
            hint="give --output-dir a folder you can write to",
        ) from None
    return target


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
    info = _preflight(analysis, client, options, say)
    payload = _payload(analysis, settings, options, say)
    sub, sent = _create(analysis, client, settings, payload, options, info, say)
    say(f"created workflow {sub.workflow_name} ({sub.workflow_id})")
    try:
        _upload_and_start(client, sub, sent)
    except (OdrunError, KeyboardInterrupt) as exc:
        raise _after_create(exc, client, sub) from None
    except OSError as exc:  # a file that cannot be read, a record that cannot be written
        error = local_error(exc, sub.run_dir, "the submission")
        raise _after_create(error, client, sub) from None
    say(f"started {sub.workflow_name}")
    if options.follow or options.download or options.verify:
        try:
            follow(client, sub, options.poll_interval, on_status)
        except KeyboardInterrupt:
            raise CancelledError(
                f"stopped following; workflow {sub.workflow_name} keeps running on REANA",
                hint=f"odrun status {sub.run_dir} / odrun download {sub.run_dir} --verify / "
                f"odrun stop {sub.run_dir}",
            ) from None
        collect(client, sub, analysis, options)
    return sub


def _preflight(
    analysis: Analysis, client: ReanaClient, options: SubmitOptions, say: Say
) -> ServerInfo:
    """Everything that can fail before a file is fetched or copied: the spec, the options,
    the output folder, the server and the token."""
    ensure_valid(analysis)
    check_inputs(options.inputs, options.odrun_image)
    if options.verify and not analysis.manifest.get("expect"):
        say("warning: --verify: odrun.yaml declares no expect: entries, nothing to verify")
    if options.download or options.verify:
        output_target(analysis, options.output_dir)  # an unwritable folder fails now, not later
    info = client.ping()
    user = client.you()  # a bad token fails here, before anything is fetched or copied
    say(f"REANA {client.server}: {info.message or 'OK'} (protocol {info.protocol}"
        + (f", user {user}" if user else "") + ")")  # fmt: skip
    return info


@dataclass
class _Payload:
    """What is sent: the spec, the files to upload, the records and how they travel."""

    body: dict[str, Any]
    uploads: list[tuple[str, Path]]
    records: list[reana_spec.RecordInputs]
    mode: str
    #: files odrun generates (the injected fetch step's), by workspace path
    extra: dict[str, bytes] = field(default_factory=dict)


def _payload(analysis: Analysis, settings: Settings, options: SubmitOptions, say: Say) -> _Payload:
    untrusted = record_origin(analysis.root) is not None and not options.trust_snakefile
    body = reana_spec.expand(analysis, settings, say, untrusted=untrusted)
    uploads = reana_spec.workspace_files(analysis)
    records = reana_spec.resolve_records(analysis, settings)
    portal = reana_spec.remote_portal(analysis, settings)
    local = (portal or "").startswith("file:")
    mode = choose_inputs(options.inputs, records, local, options.odrun_image, say)
    if mode != "remote":
        return _Payload(body, uploads, records, mode)
    if local:
        say(f"warning: --inputs remote with a local mirror portal {portal}: the cluster "
            "must see that path")  # fmt: skip
    wfile = confine(
        analysis.root, str(body["workflow"].get("file") or "Snakefile"), "workflow.file",
        error=SpecError,
    )  # fmt: skip
    text = wfile.read_text(encoding="utf-8") if wfile.is_file() else None
    body, extra = reana_spec.inject_fetch(body, records, portal, text, options.odrun_image or "")
    uploads = [(rel, path) for rel, path in uploads if rel not in extra]
    return _Payload(body, uploads, records, mode, extra)


def _create(
    analysis: Analysis,
    client: ReanaClient,
    settings: Settings,
    payload: _Payload,
    options: SubmitOptions,
    info: ServerInfo,
    say: Say,
) -> tuple[Submission, list[str]]:
    """Stage everything to send (records fetched and verified) before the server is asked
    to create anything: a failure here leaves no half-made workflow behind. Returns the
    saved submission and the workspace paths still to upload."""
    name = workflow_name(options.name or analysis.name)
    folder = analysis.root.resolve() / ".odrun" / "reana"
    staged = folder / f".staging-{os.getpid()}-{time.monotonic_ns()}"
    records = payload.records if payload.mode == "upload" else []
    try:
        try:
            staged.mkdir(parents=True, exist_ok=True)  # even with nothing to upload
            sent = _stage(analysis, settings, payload.uploads, payload.extra, records, staged, say)
        except KeyboardInterrupt:
            raise CancelledError("interrupted before anything was sent to REANA") from None
        except OSError as exc:
            raise local_error(exc, staged, "the files to send") from None
        bundle = None
        if info.protocol == "bundles-v1":
            chosen = {rel: (staged / rel).read_bytes() for rel in sent if _declared(analysis, rel)}
            bundle = reana_spec.bundle(payload.body, chosen | payload.extra)
        created = _create_workflow(client, name, payload.body, bundle)
        sub = Submission(
            server=client.server,
            workflow_id=created.id,
            workflow_name=created.name,
            analysis=analysis.name,
            analysis_path=str((analysis.reana_path or analysis.root).resolve()),
            run_dir=folder / workflow_name(created.name),
            submitted=now(),
            protocol=info.protocol,
            inputs_mode=payload.mode,
        )
        try:  # from here on a workflow exists on the server: every failure names it
            sub.run_dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(sub.run_dir / "workspace", ignore_errors=True)  # a stale record
            staged.rename(sub.run_dir / "workspace")  # the local mirror of what is sent
            sub.save()
        except OSError as exc:
            error = local_error(exc, sub.run_dir, "the submission record")
            raise _after_create(error, client, sub) from None
        except KeyboardInterrupt as exc:
            raise _after_create(exc, client, sub) from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return sub, sent


def _create_workflow(
    client: ReanaClient, name: str, body: dict[str, Any], bundle: bytes | None
) -> Created:
    try:
        return client.create(name, body, bundle)
    except KeyboardInterrupt:
        raise CancelledError(
            f"interrupted while creating workflow {name}: it may exist on REANA, not started",
            hint=f"odrun status {name}; delete it in the REANA web UI if it is there",
        ) from None


def _upload_and_start(client: ReanaClient, sub: Submission, sent: list[str]) -> None:
    workspace = sub.run_dir / "workspace"
    for rel in sent:
        path = workspace / rel
        client.upload(sub.workflow_id, rel, path)
        sub.uploaded.append(
            {"path": rel, "size": path.stat().st_size, "checksum": str(checksum_file(path))}
        )
    client.start(sub.workflow_id)
    sub.status = "queued"
    sub.save()


def _after_create(exc: BaseException, client: ReanaClient, sub: Submission) -> OdrunError:
    """A failure between create and start, naming the workflow left on the server and what
    to do with it (started or not: its status says, if the server still answers)."""
    try:
        started = client.status(sub.workflow_id).status != "created"
    except (OdrunError, KeyboardInterrupt):
        started = sub.status != "created"
    name = sub.workflow_name
    if started:
        left = f"workflow {name} was started and keeps running on REANA"
        hint = f"odrun stop {name}"
    else:
        left = f"workflow {name} was created on REANA but not started"
        hint = f"delete it in the REANA web UI (or: reana-client delete -w {name})"
    if isinstance(exc, KeyboardInterrupt):
        return CancelledError(f"interrupted; {left}", hint=hint)
    assert isinstance(exc, OdrunError)
    exc.message = f"{exc.message}; {left}"
    exc.hint = f"{exc.hint}; {hint}" if exc.hint else hint
    return exc


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
        with Fetcher(record_settings(analysis, settings)) as fetcher:
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
        download_outputs(client, sub, analysis, options.output_dir)  # may raise: no record yet
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
    target = output_target(analysis, output_dir)
    outputs: list[dict[str, Any]] = []
    own = set(analysis.files_in("outputs", "files"))
    planned: list[tuple[str, Path, Path]] = []
    claims = PathClaims()
    workspace = sub.run_dir / "workspace"
    for declared in declared_outputs(client, sub, analysis):
        # a name the server listed (in a declared folder) is untrusted; a declared one is ours
        error = SpecError if declared in own else UnsafeMetadataError
        if redact(declared) != declared:  # it would be written into run.json and the crate
            raise UnsafeMetadataError(
                f"REANA workflow {sub.workflow_name} lists an output named after your access "
                f"token ({redact(declared)!r}): nothing downloaded",
                hint="report it to the REANA server's operators; consider renewing the token",
            )
        local = confine(workspace, declared, "outputs entry", error=error)
        dest = confine(target, declared, "outputs entry", error=error)
        owner = claims.claim(local.relative_to(workspace.resolve()).as_posix(), declared)
        if owner is not None:  # results/./fit.json beside results/fit.json: one overwrites
            raise UnsafeMetadataError(
                f"REANA workflow {sub.workflow_name} lists outputs {owner[1]!r} and "
                f"{declared!r}, which collide at {owner[0]}: nothing downloaded",
                hint="report it to the REANA server's operators",
            )
        planned.append((declared, local, dest))
    for declared, local, dest in planned:
        rel = Path(declared).as_posix()
        try:
            size = client.download(sub.workflow_id, rel, local)
            if dest != local:
                place(local, dest)
        except NotFoundError:
            outputs.append({"path": rel, "size": None, "checksum": None, "missing": True})
            continue
        except OSError as exc:
            raise UsageError(
                f"cannot write output {rel} to {target}: {exc.strerror or exc}",
                hint=f"free space or permissions, then: odrun download {sub.run_dir}",
            ) from None
        outputs.append({"path": rel, "size": size, "checksum": str(checksum_file(local))})
    sub.outputs = outputs


def write_run_record(sub: Submission, analysis: Analysis) -> None:
    """run.json and the RO-Crate, as a local run writes them (runtime ``reana``)."""
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
    RunRecord.from_result(result, reana=reana | {"workflow_name": sub.workflow_name}).save()


def outcome_error(sub: Submission) -> Exception | None:
    """The error a finished submission ends with (None: success)."""
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
