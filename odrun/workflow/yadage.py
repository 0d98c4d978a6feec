"""Run a yadage workflow (``workflow.type: yadage``) for an analysis, as REANA does.

- yadage and packtivity pin dependencies that conflict with odrun's own (jsonschema),
  so they live in a Python of their own: :attr:`~odrun.settings.Settings.yadage_python`
  (``ODRUN_YADAGE_PYTHON``; odrun's own Python when it has them: ``odrun[yadage]``).
  odrun talks to it through :mod:`odrun.workflow.yadage_driver`, run as a script.
- As on REANA: ``workflow.file`` is the workflow, loaded with ``$ref`` resolved from its
  folder (the toplevel); ``inputs.parameters`` are the initial parameters; the run's
  workspace is yadage's data folder and ``initdir``, so a parameter naming an input
  (``code/fit.py``) reaches the steps as its path in the workspace, and each step writes
  into ``<workspace>/<step>`` (``<step>_<n>`` for the steps of a fanned-out stage).
- Jobs: packtivity runs a ``docker-encapsulated`` environment with ``docker run``;
  odrun puts its shim (:mod:`odrun.workflow.docker_shim`) first on yadage's PATH, which
  runs the job with the chosen runtime: ``podman|docker run --network=none`` with the
  job's folders bound at the same path and the record files read-only, or on the host.
- Preflight, before anything is staged: the yadage Python, the workflow (loaded and
  validated), the runtime and its images. A failing job is named in one line with its
  cause (:func:`failure_error`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun._fs import confine
from odrun.errors import ConfigError, SpecError, UnsafeMetadataError, UsageError, WorkflowError
from odrun.settings import Settings, process_environment
from odrun.workflow.failure import TELLING, job_cause
from odrun.workflow.model import RunResult, Say, StepRun, record_files
from odrun.workflow.preflight import choose_runtime, whole_network
from odrun.workflow.runtime import OciRuntime, Runtime, run_logged
from odrun.workflow.spec import Analysis, relative

DRIVER = Path(__file__).with_name("yadage_driver.py")
SHIM = Path(__file__).with_name("docker_shim.py")
#: the versions odrun is tested with (tests/run builds this venv)
PINS = ("yadage==0.21.2", "packtivity==0.17.1")
VENV = "~/.local/share/odrun/yadage-venv"
INSTALL_HINT = (
    f"python3 -m venv {VENV} && {VENV}/bin/pip install {' '.join(PINS)}, then "
    f"export ODRUN_YADAGE_PYTHON={VENV}/bin/python (or pip install 'odrun[yadage]' "
    "where its pins do not conflict)"
)
#: seconds the driver may take to load and validate a workflow
PLAN_TIMEOUT = 300
#: a line of a job's output that says what went wrong
#: how long the cause of a failed yadage job may be
YADAGE_CAUSE_CHARS = 203


@dataclass
class YadagePlan:
    """What a yadage run needs, found before anything is staged or fetched."""

    python: str
    #: the driver's plan document: the resolved workflow, its images, yadage's versions
    plan_file: Path
    runtime: Runtime
    images: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    #: odrun.yaml ``network: true``: the jobs get the host's network
    network: bool = False


@dataclass(frozen=True)
class Job:
    """One job the shim ran (a line of its record)."""

    name: str
    image: str
    command: str
    exit_code: int
    started: str
    ended: str
    log: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(
            str(data.get("name")),
            str(data.get("image")),
            str(data.get("command")),
            int(data.get("exit_code", 1)),
            str(data.get("started")),
            str(data.get("ended")),
            str(data.get("log")),
        )


def yadage_python(settings: Settings) -> str:
    """The Python that runs yadage: the setting, else odrun's own if it has yadage."""
    if settings.yadage_python is not None:
        path = settings.yadage_python
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(
                f"setting yadage_python (env ODRUN_YADAGE_PYTHON) {path} is not an "
                "executable Python",
                hint=INSTALL_HINT,
            )
        return str(path)
    if all(importlib.util.find_spec(m) is not None for m in ("yadage", "packtivity")):
        return sys.executable
    raise ConfigError(
        "workflow.type yadage needs yadage and packtivity, which odrun's Python does not "
        "have and no yadage_python (env ODRUN_YADAGE_PYTHON) names",
        hint=INSTALL_HINT,
    )


def workflow_location(analysis: Analysis) -> tuple[Path, str]:
    """(toplevel, spec name): the workflow file's folder and its name there."""
    raw = (analysis.reana or {}).get("workflow", {}).get("file")
    if not isinstance(raw, str):
        raise SpecError(
            "workflow.type yadage runs locally from a workflow file",
            hint="name it in reana.yaml workflow.file (e.g. workflow.yml)",
        )
    rel = relative(raw, "workflow.file")
    path = confine(analysis.root, str(rel), "workflow.file", error=SpecError)
    if not path.is_file():
        raise SpecError(f"workflow.file {raw} does not exist in {analysis.root}")
    return path.parent, path.name


def plan_yadage(
    analysis: Analysis, result: RunResult, settings: Settings, untrusted: bool, say: Say
) -> YadagePlan:
    """Preflight: yadage's Python, the workflow loaded and validated, the runtime and its
    images ready; nothing staged or fetched yet."""
    if result.runtime == "apptainer":
        raise UsageError(
            "--runtime apptainer: yadage jobs run with podman, docker or on the host",
            hint="use --runtime podman, docker or host",
        )
    python = yadage_python(settings)
    toplevel, name = workflow_location(analysis)
    folder = result.run_dir / "yadage"
    folder.mkdir(exist_ok=True)
    plan_file = folder / "plan.json"
    remote = "0" if settings.offline else "1"
    root = str(analysis.root.resolve())
    argv = [python, "-I", str(DRIVER), "plan", name, str(toplevel), root, remote, str(plan_file)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=PLAN_TIMEOUT,
            env=process_environment(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(
            f"cannot start yadage's Python {python}: {exc}", hint=INSTALL_HINT
        ) from None
    doc = _read_json(plan_file)
    if doc is None:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"yadage's Python {python} cannot load yadage: {last}", hint=INSTALL_HINT)
    if doc.get("kind") == "outside":
        raise UnsafeMetadataError(
            f"yadage workflow {name}: {doc.get('error')}",
            hint="keep every file the workflow refers to inside the analysis folder",
        )
    if doc.get("kind") == "remote":
        raise ConfigError(
            f"yadage workflow {name}: {doc.get('error')}",
            hint="run without --offline, or keep a copy of the file in the analysis folder",
        )
    if not doc.get("ok"):
        raise SpecError(
            f"yadage workflow {name} (toplevel {toplevel}): {doc.get('error')}",
            hint="fix the workflow; `yadage-validate` in yadage's Python checks it too",
        )
    images = [str(i) for i in doc.get("images") or []]
    network = whole_network(analysis, say, "yadage jobs")
    on_host = [str(e) for e in doc.get("host_environments") or []]
    if on_host and untrusted and result.runtime == "auto":
        raise ConfigError(
            "this analysis comes from a record and its yadage steps with environment_type "
            f"{', '.join(on_host)} would run on the host, not in a container",
            hint="review its steps, then allow it with --runtime host",
        )
    runtime = choose_runtime(analysis, result, images, untrusted, say)
    if on_host and result.runtime != "host":
        say(
            f"warning: yadage steps with environment_type {', '.join(on_host)} run on the "
            f"host, not in {result.runtime} (packtivity runs them itself)"
        )
    result.images = images
    versions = {str(k): str(v) for k, v in (doc.get("versions") or {}).items()}
    result.engine_versions = versions
    return YadagePlan(python, plan_file, runtime, images, versions, network)


def run_yadage(analysis: Analysis, result: RunResult, plan: YadagePlan, say: Say) -> None:
    folder = result.run_dir / "yadage"
    record = folder / "jobs.jsonl"
    logdir = result.run_dir / "logs" / "yadage"
    logdir.mkdir(parents=True, exist_ok=True)
    readonly = folder / "readonly.txt"
    boxed = isinstance(plan.runtime, OciRuntime)
    files = record_files(result) if boxed else []
    readonly.write_text("".join(f"{p}\n" for p in files), encoding="utf-8")
    params = folder / "parameters.json"
    params.write_text(json.dumps(analysis.parameters, indent=1, sort_keys=True), encoding="utf-8")
    outcome_file = folder / "outcome.json"
    env = process_environment()
    env["PATH"] = (
        f"{_shim(plan, folder, record, logdir, readonly, result.workspace)}{os.pathsep}"
        f"{env.get('PATH', '')}"
    )
    env["PACKTIVITY_DOCKER_NOPULL"] = "1"  # the preflight has the images
    env["PACKTIVITY_CONTAINER_RUNTIME"] = "docker"  # spoken to the shim
    engine_log = result.run_dir / "logs" / "00-yadage.log"
    argv = [plan.python, "-I", str(DRIVER), "run", str(plan.plan_file), str(result.workspace)]
    argv += [str(params), str(outcome_file)]
    _, name = workflow_location(analysis)
    say(f"[yadage] {name} in {result.runtime} (jobs: {logdir})")
    proc = run_logged(
        argv, engine_log, result.workspace, env, what="yadage", program=str(plan.python)
    )
    jobs = read_jobs(record)
    result.steps += [
        StepRun(j.name, j.command, j.exit_code, j.started, j.ended, j.log) for j in jobs
    ]
    _digests(plan.runtime, jobs, result)
    outcome = _read_json(outcome_file) or {}
    if proc.code != 0 or not outcome.get("ok"):
        if not jobs or all(j.exit_code == 0 for j in jobs):  # nothing failed in a job
            code, log = proc.code or 1, str(engine_log)
            result.steps.append(
                StepRun("yadage", shlex.join(argv), code, proc.started, proc.ended, log)
            )
        raise failure_error(jobs, outcome, engine_log)
    idle = stages_not_run(result.workspace)
    if idle:
        say(
            f"warning: yadage stages that never ran: {', '.join(idle)} (their dependencies "
            "were never met; a stage that reads init needs inputs.parameters)"
        )


def _shim(
    plan: YadagePlan, folder: Path, record: Path, logdir: Path, readonly: Path, workspace: Path
) -> Path:
    """``<folder>/bin/docker``: packtivity's ``docker`` carried out by the chosen runtime."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    runtime = plan.runtime.binary if isinstance(plan.runtime, OciRuntime) else "host"
    network = "1" if plan.network else "0"
    argv = [sys.executable, "-I", str(SHIM), runtime, str(record), str(logdir), str(readonly)]
    argv += [network, str(workspace), "--"]
    shim = bin_dir / "docker"
    shim.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return bin_dir


def read_jobs(record: Path) -> list[Job]:
    """The jobs the shim ran, in the order they ended."""
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    jobs = []
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            jobs.append(Job.from_dict(data))
    return jobs


def _digests(runtime: Runtime, jobs: list[Job], result: RunResult) -> None:
    """Digests of the images the jobs really ran in (a job may name one the preflight
    did not see: a nested workflow loaded at run time)."""
    used = sorted({j.image for j in jobs})
    result.images = sorted(set(result.images) | set(used))
    if isinstance(runtime, OciRuntime):
        for image in used:
            if image not in result.image_digests:
                digest = runtime.digest(image)
                if digest:
                    result.image_digests[image] = digest


def stages_not_run(workspace: Path) -> list[str]:
    """Stages yadage never applied (a finished workflow may leave some: a stage that
    depends on ``init`` when no parameters were given, so there is no init)."""
    snapshot = _read_json(workspace / "_yadage" / "yadage_snapshot_workflow.json") or {}
    names = []
    for rule in snapshot.get("rules") or []:
        if isinstance(rule, dict) and isinstance(rule.get("rule"), dict):
            offset = str(rule.get("offset") or "")
            name = str(rule["rule"].get("name"))
            names.append(f"{offset}/{name}" if offset else name)
    return sorted(names)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tail(path: Path | str, count: int = 5) -> list[str]:
    """The last ``count`` non-blank lines of a log, each stripped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()][-count:]


def failure_error(jobs: list[Job], outcome: dict[str, Any], engine_log: Path) -> WorkflowError:
    """One line naming the failing job, its exit code and its cause (the command and the
    log in the hint); without a failed job, yadage's own error."""
    failed = [j for j in jobs if j.exit_code != 0]
    if failed:
        job = failed[0]
        cause = job_cause(tail(job.log), prefer=TELLING, lines=1, limit=YADAGE_CAUSE_CHARS)
        cause = cause or "no output"
        command = " ".join(job.command.split())
        more = f"; {len(failed) - 1} more job(s) failed" if len(failed) > 1 else ""
        return WorkflowError(
            f"yadage step {job.name} failed with exit code {job.exit_code}: {cause}",
            hint=f"command: {command[:200]}; log: {job.log}{more}",
        )
    nodes = [n for n in outcome.get("failed") or [] if isinstance(n, dict)]
    told = [n for n in nodes if n.get("error")]
    if told:  # a step that failed outside its job (its publisher, its parameters)
        more = f"; {len(nodes) - 1} more step(s) failed" if len(nodes) > 1 else ""
        error = " ".join(str(told[0]["error"]).split())
        return WorkflowError(
            f"yadage step {told[0].get('name')} failed: {error[:300]}",
            hint=f"log: {engine_log}{more}",
        )
    error = " ".join(str(outcome.get("error") or "yadage exited with an error").split())
    names = [str(n.get("name")) for n in nodes]
    where = f" (failed: {', '.join(names)})" if names else ""
    return WorkflowError(f"yadage workflow failed{where}: {error[:300]}", hint=f"log: {engine_log}")
