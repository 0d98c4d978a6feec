"""Run an analysis: preflight, fresh workspace, staged inputs, fetched records, steps, record.

The preflight (runtime, images, executor, Snakemake, yadage's Python and workflow, the
lock's runtime and image digests: :mod:`odrun.workflow.preflight`) comes before anything
is staged or fetched. Serial steps run here, Snakemake in :mod:`odrun.workflow.snakemake`,
yadage in :mod:`odrun.workflow.yadage`.

A run lives in its own folder (default ``<analysis>/.odrun/runs/<UTC time>``)::

    workspace/                 inputs copied in, records fetched (hard links), outputs
    logs/NN-<step>.log         stdout+stderr of each command
    run.json                   what ran: runtime (and any fallback), commands, exit codes,
                               times, inputs, outputs, checks
    odrun.lock                 records, files, runtime and images pinned (also written next
                               to the analysis)
    ro-crate-metadata.json     provenance (Workflow Run Crate)

Everything is written even when a step fails: the run folder keeps the logs and
the record of what happened.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun._fs import confine, detach, stage
from odrun.checksum import checksum_file
from odrun.errors import OdrunError, SpecError, UnsafeMetadataError, UsageError, WorkflowError
from odrun.records import FileFilter, Resolver
from odrun.settings import Settings, process_environment
from odrun.transfer.fetch import Fetcher, fetch_error
from odrun.workflow import lock as lockfile
from odrun.workflow.cwl import CwlPlan, plan_cwl, run_cwl
from odrun.workflow.expect import evaluate
from odrun.workflow.failure import job_cause, job_failed, one_line, read_tail
from odrun.workflow.fromrecord import record_origin
from odrun.workflow.model import (
    RUN_FORMAT_VERSION,
    RUN_JSON,
    RunOptions,
    RunRecord,
    RunResult,
    Say,
    StepRun,
    record_files,
    remember_record_inodes,
    run_tools,
    tool_versions,
)
from odrun.workflow.preflight import choose_runtime
from odrun.workflow.provenance import write_crate
from odrun.workflow.references import hepdata_pins, pinned_versions
from odrun.workflow.runtime import ApptainerRuntime, OciRuntime, Runtime, now, run_logged
from odrun.workflow.snakemake import SnakemakePlan, plan_snakemake, run_snakemake
from odrun.workflow.spec import (
    Analysis,
    ensure_valid,
    record_settings,
    staged_inputs,
    substitute,
)
from odrun.workflow.yadage import YadagePlan, plan_yadage, run_yadage


def new_run_dir(analysis: Analysis, workdir: Path | None, reuse: bool = False) -> Path:
    """A new run folder; with ``reuse`` (--from) an earlier run's folder may be given."""
    if workdir is not None:
        earlier = (workdir / RUN_JSON).is_file()
        if workdir.exists() and any(workdir.iterdir()) and not (reuse and earlier):
            raise UsageError(
                f"--workdir {workdir} is not empty",
                hint="give a new or empty folder (or, with --from, an earlier run's folder)",
            )
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir.resolve()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = analysis.root.resolve() / ".odrun" / "runs" / stamp
    run_dir.mkdir(parents=True)
    return run_dir


def run_analysis(
    analysis: Analysis,
    settings: Settings,
    options: RunOptions | None = None,
    *,
    say: Say = lambda _: None,
    on_record: Callable[[Path], None] | None = None,
) -> RunResult:
    """Run ``analysis`` as ``options`` say (:class:`~odrun.workflow.model.RunOptions`);
    returns the result, raising only after the run record (``run.json``) is written.
    ``on_record(run_dir)`` is called once it is, failed runs included (``odrun.api``
    writes the HTML report there); it must not raise.
    """
    options = options or RunOptions()
    workdir, from_step, target_step = options.workdir, options.from_step, options.target_step
    untrusted, locked, verify = options.untrusted, options.locked, options.verify
    # a record's analysis named by its folder (odrun run record-N/) is still the record's
    untrusted = untrusted or record_origin(analysis.root) is not None
    ensure_valid(analysis)  # the checks `odrun validate` makes: refused before anything runs
    if verify and not analysis.manifest.get("expect"):
        say("warning: --verify: odrun.yaml declares no expect: entries, nothing to verify")
    partial = options.partial
    reused = workdir is not None and (workdir / RUN_JSON).is_file()
    done = _steps_done(workdir) if reused and workdir is not None else None
    result = RunResult(
        analysis.name,
        new_run_dir(analysis, workdir, reuse=from_step is not None),
        partial=_skips_steps(analysis, from_step, target_step, done),
        steps_done_before=sorted(done or ()) if from_step is not None else [],
        analysis_path=str(
            (analysis.reana_path or analysis.manifest_path or analysis.root).resolve()
        ),
        runtime=options.runtime,
        runtime_requested=options.runtime,
        untrusted=untrusted,
        executor=options.executor,
        executor_options=dict(options.executor_options),
        offline=settings.offline,
    )
    result.started = now()
    (result.run_dir / "logs").mkdir(exist_ok=True)
    failure: BaseException | None = None
    lock_path = lockfile.path_for(analysis)  # this spec's lock, never a twin's
    try:
        # preflight: runtime, images, executor, Snakemake, and the lock's runtime and images,
        # all before a single input is staged or fetched
        plan = _plan(analysis, result, from_step, target_step, untrusted, say, settings)
        if analysis.workflow_type == "cwl":
            plan.cwl = plan_cwl(analysis, result, options.partial, untrusted, say, settings)
        if locked:
            lockfile.check(lock_path, lockfile.build(result, analysis), records=False)
        _stage_inputs(analysis, result, untrusted)
        _fetch_records(analysis, settings, result, say, untrusted)
        result.hepdata = hepdata_pins(analysis.manifest.get("expect") or [], settings)
        if untrusted and not _binds_readonly(plan):
            _detach_records(result)  # steps on the host get private copies, not cache links
        remember_record_inodes(result)
        if locked:
            lockfile.check(lock_path, lockfile.build(result, analysis))
        result.status = "running"
        staged = None if partial else _output_stamps(analysis, result.workspace)
        _run_workflow(analysis, result, plan, say)
        if staged:
            _check_written(analysis, result.workspace, staged)
        result.status = "finished"
    except BaseException as exc:  # anything, Ctrl-C included: record it, then re-raise
        failure = exc
        result.status = "failed"
        result.error = str(exc) if isinstance(exc, OdrunError) else f"{type(exc).__name__}: {exc}"
    finally:
        result.ended = now()
        try:  # whatever fails here, run.json is written: without it, verify passes over
            result.outputs = _collect_outputs(analysis, result.workspace)  # this run
            lock = lockfile.build(result, analysis)
            lockfile.write(result.run_dir / lockfile.NAME, lock)
            if result.status == "finished" and not locked and not partial:
                lockfile.write(lock_path, lock)
            expect = analysis.manifest.get("expect") or []
            if result.status == "finished" and expect and (verify or not partial):
                pins = pinned_versions(result.hepdata)
                result.checks = evaluate(result.workspace, expect, analysis.root, settings, pins)
            write_crate(result, analysis)
        except BaseException as exc:
            failure = failure or exc
            result.status = "failed"
            result.error = result.error or (
                str(exc) if isinstance(exc, OdrunError) else f"{type(exc).__name__}: {exc}"
            )
        RunRecord.from_result(result).save()
        if on_record is not None:
            on_record(result.run_dir)
    if failure is not None:
        raise failure
    return result


def _skips_steps(
    analysis: Analysis, from_step: str | None, target_step: str | None, done: set[str] | None
) -> bool:
    """Whether --from/--target leave steps out of what the run folder holds: --from in an
    earlier run's folder builds on its outputs when every step before STEP succeeded
    there (``done``: the steps that did; None for a fresh folder)."""
    names = [str(s.get("name") or f"step{i + 1}") for i, s in enumerate(analysis.steps)]
    cut_end = target_step is not None and (not names or target_step != names[-1])
    if from_step is None or (names and from_step == names[0]):
        return cut_end
    if done is None or not names:  # a Snakefile's rules are not listed: trust the folder
        return cut_end or done is None
    before = names[: names.index(from_step)] if from_step in names else names
    return cut_end or not set(before) <= done


def _steps_done(run_dir: Path) -> set[str]:
    """The steps that succeeded in an earlier run's folder (its run.json ``steps_done``;
    a record written before that key: its steps with exit code 0)."""
    try:
        record = RunRecord.load(run_dir)
    except OdrunError:
        return set()
    listed = record.data.get("steps_done")
    if isinstance(listed, list):
        return {str(name) for name in listed}
    failed = {str(s.get("name")) for s in record.steps if s.get("exit_code") != 0}
    return {str(s.get("name")) for s in record.steps} - failed


def _spec_error(untrusted: bool) -> type[OdrunError]:
    """Whose spec is wrong: a record's (exit 9) or the user's own (exit 2)."""
    return UnsafeMetadataError if untrusted else SpecError


def _stage_inputs(analysis: Analysis, result: RunResult, untrusted: bool = False) -> None:
    """Copy the inputs into the workspace: no link survives (see odrun._fs.stage)."""
    ws = result.workspace
    ws.mkdir(parents=True, exist_ok=True)
    error = _spec_error(untrusted)
    root = analysis.root.resolve()
    for kind, rel in staged_inputs(analysis):  # the workflow file first, each path once
        what = f"inputs.{kind} entry"
        src = confine(root, rel, what, error=error)
        if not src.exists():
            raise SpecError(f"input {rel} does not exist in {analysis.root}")
        stage(src, confine(ws, rel, what, error=error), root, what, error=error)
        result.inputs.append({"path": rel, "kind": kind[:-1]})


def _fetch_records(
    analysis: Analysis, settings: Settings, result: RunResult, say: Say, untrusted: bool = False
) -> None:
    """Fetch the records odrun.yaml names into the workspace (hard links to the shared
    cache), each file confined to the workspace after links are followed."""
    wanted = analysis.manifest.get("records") or []
    if not wanted:
        return
    settings = record_settings(analysis, settings)
    ws = result.workspace
    spec_error = _spec_error(untrusted)
    with Resolver(settings) as resolver, Fetcher(settings) as fetcher:
        for item in wanted:
            record = resolver.resolve(str(item["ref"]))
            ranges = [str(item["range"])] if item.get("range") else []
            chosen = FileFilter.build(item.get("names") or [], item.get("regexp"), ranges)
            files = chosen.apply(record.files)
            dest_rel = str(item.get("dest") or f"data/{record.recid}")
            dest = confine(ws, dest_rel, "records dest", error=spec_error)
            say(f"fetching {len(files)} files of record {record.recid} into {dest_rel}/")
            report = fetcher.fetch_files(files, dest, recid=record.recid)
            error = fetch_error(report)
            if error is not None:
                raise error
            result.records.append(record)
            result.selected[record.recid] = files
            result.inputs += [
                {
                    "path": f"{dest_rel}/{r.path}",
                    "kind": "record-file",
                    "recid": record.recid,
                    "uri": r.uri,
                    "size": r.size,
                    "state": r.state.value,
                }
                for r in report.results
            ]


def _binds_readonly(plan: Plan) -> bool:
    """Whether every command of ``plan`` runs in a container that gets the record files
    read-only (serial steps under podman, docker, apptainer; CWL jobs when every tool has
    an image); Snakemake may run rules on the host, and the host runtime has no binds."""
    if plan.cwl is not None:
        return plan.cwl.readonly
    return isinstance(plan.runtime, (OciRuntime, ApptainerRuntime))


def _detach_records(result: RunResult) -> None:
    """Private copies (reflinks where possible) of the record files for an untrusted
    analysis that runs on the host: its commands must not write through the hard links
    into the shared cache and every other project's copy."""
    for path in record_files(result):
        detach(path)


def _select_steps(
    steps: list[dict[str, Any]], start: str | None, stop: str | None
) -> list[dict[str, Any]]:
    names = [str(s.get("name") or f"step{i + 1}") for i, s in enumerate(steps)]
    for label, wanted in (("FROM", start), ("TARGET", stop)):
        if wanted is not None and wanted not in names:
            raise UsageError(f"{label} step {wanted!r} is not one of {', '.join(names)}")
    first = names.index(start) if start else 0
    last = names.index(stop) if stop else len(steps) - 1
    return steps[first : last + 1]


@dataclass
class Plan:
    """What a serial run will execute: every command substituted before the first one runs."""

    runtime: Runtime | None = None
    #: (step name, image, command)
    commands: list[tuple[str, str | None, str]] = field(default_factory=list)
    snakemake: SnakemakePlan | None = None
    yadage: YadagePlan | None = None
    cwl: CwlPlan | None = None


def _plan(
    analysis: Analysis,
    result: RunResult,
    start: str | None,
    stop: str | None,
    untrusted: bool,
    say: Say,
    settings: Settings | None = None,
) -> Plan:
    if result.executor != "local" and analysis.workflow_type != "snakemake":
        raise UsageError(
            f"--executor {result.executor} runs Snakemake workflows; this analysis is "
            f"workflow.type {analysis.workflow_type or '(none: odrun.yaml only)'}",
            hint="run it without --executor, submit it to REANA (odrun submit), "
            "or write its steps as a Snakefile",
        )
    if analysis.workflow_type == "snakemake":
        return Plan(snakemake=plan_snakemake(analysis, result, untrusted, say))
    if analysis.workflow_type == "yadage":
        if start is not None or stop is not None:
            raise UsageError(
                "--from/--target pick serial steps; a yadage workflow runs as a whole",
                hint="run it without --from and --target",
            )
        yadage = plan_yadage(analysis, result, settings or Settings.load(), untrusted, say)
        return Plan(runtime=yadage.runtime, yadage=yadage)
    if analysis.workflow_type != "serial":
        return Plan()
    params = analysis.parameters
    steps = _select_steps(analysis.steps, start, stop)
    plan = Plan()
    for i, step in enumerate(steps):
        name = str(step.get("name") or f"step{i + 1}")
        image = str(step["environment"]) if step.get("environment") else None
        for raw in step.get("commands") or []:
            plan.commands.append((name, image, substitute(str(raw), params, f"step {name}")))
    images = sorted({img for _, img, _ in plan.commands if img})
    plan.runtime = choose_runtime(analysis, result, images, untrusted, say)
    return plan


def _run_workflow(analysis: Analysis, result: RunResult, plan: Plan, say: Say) -> None:
    wtype = analysis.workflow_type
    if wtype is None:
        return  # odrun.yaml only: fetch and verify
    if wtype == "snakemake":
        assert plan.snakemake is not None
        run_snakemake(analysis, result, plan.snakemake, say)
        return
    if wtype == "yadage":
        assert plan.yadage is not None
        run_yadage(analysis, result, plan.yadage, say)
        return
    if wtype == "cwl":
        assert plan.cwl is not None
        run_cwl(analysis, result, plan.cwl, say)
        return
    assert plan.runtime is not None
    for n, (name, image, command) in enumerate(plan.commands, 1):
        log = result.run_dir / "logs" / f"{n:02d}-{_slug(name)}.log"
        say(f"[{name}] {command}")
        argv = plan.runtime.argv(
            image, result.workspace, command, analysis.network(name), readonly=record_files(result)
        )
        proc = run_logged(
            argv, log, result.workspace, process_environment(),
            what=f"step {one_line(name, 100)}", program=plan.runtime.name,
        )  # fmt: skip
        result.steps.append(StepRun(name, command, proc.code, proc.started, proc.ended, str(log)))
        if proc.code != 0:
            cause = job_cause(read_tail(log))
            raise job_failed(f"step {name}", proc.code, cause, command=command, log=log)


def _output_stamps(analysis: Analysis, workspace: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime) of every declared output file already in the workspace before
    the workflow runs (staged with the inputs, unpacked from a record)."""
    stamps = {rel: _stamp(workspace, rel) for rel in analysis.files_in("outputs", "files")}
    return {rel: stamp for rel, stamp in stamps.items() if stamp is not None}


def _check_written(
    analysis: Analysis, workspace: Path, staged: dict[str, tuple[int, int, int]]
) -> None:
    """WorkflowError naming the declared outputs the workflow left as they were staged:
    a file the analysis shipped is not this run's output, and expectations must not pass
    on it."""
    unchanged = [rel for rel, stamp in staged.items() if _stamp(workspace, rel) == stamp]
    if unchanged:
        raise WorkflowError(
            f"declared output {', '.join(unchanged[:3])} was not written by this run: it was "
            "in the workspace before the workflow ran (staged from the analysis) and is "
            "unchanged",
            hint="remove it from the analysis's inputs, or make a step write it",
        )


def _stamp(workspace: Path, rel: str) -> tuple[int, int, int] | None:
    try:
        info = confine(workspace, rel, "output").stat()
    except (OdrunError, OSError):
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _collect_outputs(analysis: Analysis, workspace: Path) -> list[dict[str, Any]]:
    """Declared outputs with size and adler32: only what lies inside the workspace after
    links are followed (odrun._fs.confine); anything else is listed as missing."""
    out: list[dict[str, Any]] = []
    paths: list[tuple[str, Path | None]] = []

    def inside(rel: str) -> Path | None:
        try:
            return confine(workspace, rel, "output")
        except OdrunError:
            return None

    for kind in ("files", "directories"):
        for rel in analysis.files_in("outputs", kind):
            path = inside(rel)
            if kind == "files" or path is None or not path.is_dir():
                paths.append((rel, path))
                continue
            for here, _dirs, files in sorted(os.walk(path)):  # never into a linked folder
                for file in sorted(files):
                    found = Path(here, file)
                    if not found.is_symlink():
                        name = (Path(rel) / found.relative_to(path)).as_posix()
                        paths.append((name, inside(name)))
    for rel, path in paths:
        if path is not None and path.is_file():
            size = path.stat().st_size
            out.append({"path": rel, "size": size, "checksum": str(checksum_file(path))})
        else:
            out.append({"path": rel, "size": None, "checksum": None, "missing": True})
    return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "step"


__all__ = [
    "RUN_FORMAT_VERSION",
    "Plan",
    "RunOptions",
    "RunResult",
    "Say",
    "StepRun",
    "new_run_dir",
    "now",
    "record_files",
    "run_analysis",
    "run_tools",
    "tool_versions",
]
