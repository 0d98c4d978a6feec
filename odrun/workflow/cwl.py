"""Run a CWL workflow (reana.yaml ``workflow.type: cwl``) with cwltool, as REANA does.

- What it names: every document (``run:``, ``$import`` ...) and File default inside the
  analysis folder, every File of the job inside the workspace
  (:mod:`odrun.workflow.cwl_refs`), checked before anything runs.
- The workflow: ``workflow.file``, packed (``cwltool --pack``, as reana-client sends it)
  from the analysis folder before anything is staged; ``packed.cwl`` in the run folder is
  what runs and the RO-Crate's main entity.
- The job: the file ``inputs.parameters.input`` names (YAML or JSON), else the parameters
  themselves; relative ``location``/``path`` values are relative to the workspace (the
  job is read from stdin in the workspace, as REANA writes ``inputs.json`` there). It is
  kept as ``cwl/job.json``.
- Outputs: cwltool's ``--outdir`` is ``<workspace>/outputs`` (REANA's), so reana.yaml
  ``outputs.files`` name ``outputs/...``; cwltool's output object is ``cwl/outputs.json``.
- Runtimes: ``host`` -> ``--no-container`` (``DockerRequirement`` ignored with a warning,
  as for serial steps); ``podman`` -> ``--podman``; ``docker`` -> cwltool's default;
  ``apptainer`` -> ``--singularity``. For podman and docker odrun's shim
  (:mod:`odrun.workflow.oci_shim`) is first on cwltool's PATH: every job runs with
  ``--network=none`` (unless odrun.yaml ``network: true``), the CVMFS repositories bound.
  cwltool does not bind the workspace: it binds each input file read-only at
  ``/var/lib/cwl/stg*/`` and a fresh output folder as the working directory (CWL's
  staging, the same on REANA); tools see only their declared inputs.
- Tools without a ``DockerRequirement`` run on the host whatever the runtime (as in
  cwltool; REANA gives them a default image): said as a warning.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun._fs import atomic_write, confine
from odrun.errors import ConfigError, SpecError, UsageError, WorkflowError
from odrun.settings import Settings, process_environment
from odrun.workflow import cwl_js
from odrun.workflow.cwl_log import CwlLog, failure_cause, parse_jobs
from odrun.workflow.cwl_refs import check_documents, check_job, rebase_job
from odrun.workflow.model import RunResult, Say, StepRun, add_used_images
from odrun.workflow.preflight import choose_runtime, host_without_images, whole_network
from odrun.workflow.runtime import (
    ApptainerRuntime,
    HostRuntime,
    OciRuntime,
    Runtime,
    cvmfs_binds,
    now,
    run_logged,
)
from odrun.workflow.spec import Analysis, relative, workflow_parameters

#: the packed workflow in the run folder: what runs, and the RO-Crate's main entity
PACKED = "packed.cwl"
#: the same with every DockerRequirement a hint, for the host runtime (in ``cwl/``)
HOST_PACKED = "packed-host.cwl"
#: where cwltool writes the workflow's outputs, in the workspace (as on REANA)
OUTDIR = "outputs"
INSTALL_HINT = "pip install 'odrun[cwl]'"
_RUNTIME_FLAGS = {"host": ["--no-container"], "podman": ["--podman"], "docker": []}
_RUNTIME_FLAGS["apptainer"] = ["--singularity"]


@dataclass
class CwlPlan:
    """What a CWL run will do, decided before anything is staged or fetched."""

    runtime: Runtime | None = None
    #: the packed workflow (``cwltool --pack``)
    packed: dict[str, Any] = field(default_factory=dict)
    #: images the tools' DockerRequirement names
    images: list[str] = field(default_factory=list)
    #: tools (ids) with no DockerRequirement: they run on the host
    host_tools: list[str] = field(default_factory=list)
    #: odrun.yaml ``network: true``: jobs may use the network as their NetworkAccess says
    network: bool = False
    #: how cwltool's ``node`` runs a record's JavaScript expressions (:mod:`cwl_js`):
    #: in a container; None: cwltool's own choice (a node on the host)
    node: list[str] | None = None

    @property
    def readonly(self) -> bool:
        """Every job runs in a container that binds its input files read-only."""
        return isinstance(self.runtime, (OciRuntime, ApptainerRuntime)) and not self.host_tools


def cwltool_command() -> list[str]:
    """cwltool of odrun's own Python; ConfigError (exit 8) with the install hint if absent."""
    if importlib.util.find_spec("cwltool") is None:
        raise ConfigError(
            "workflow.type cwl needs cwltool, which is not installed", hint=INSTALL_HINT
        )
    return [sys.executable, "-m", "cwltool"]


def workflow_file(analysis: Analysis) -> str:
    """reana.yaml ``workflow.file`` (required for CWL)."""
    name = (analysis.reana or {}).get("workflow", {}).get("file")
    if not name:
        raise SpecError("reana.yaml workflow.type cwl needs workflow.file (the .cwl workflow)")
    return str(relative(str(name), "workflow.file"))


def pack(analysis: Analysis, log: Path) -> dict[str, Any]:
    """``cwltool --pack`` of the workflow in the analysis folder; SpecError naming cwltool's
    complaint when it is not valid CWL."""
    path = confine(analysis.root, workflow_file(analysis), "workflow.file", error=SpecError)
    if not path.is_file():
        raise SpecError(
            f"workflow.file {workflow_file(analysis)} does not exist in {analysis.root}"
        )
    cmd = [*cwltool_command(), "--disable-color", "--timestamps", "--pack", str(path)]
    with log.open("wb") as err:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=err, env=process_environment(), check=False
        )
    text = log.read_text(encoding="utf-8", errors="replace")
    try:
        packed = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        packed = None
    if not isinstance(packed, dict):
        cause = failure_cause(parse_jobs(text)) or _last_line(text)
        raise SpecError(
            f"workflow.file {workflow_file(analysis)} is not a valid CWL workflow: {cause}",
            hint=f"log: {log}",
        )
    return packed


def _write_packed(path: Path, packed: dict[str, Any]) -> None:
    """The packed workflow as indented JSON, each process's ``id`` first: a line number
    cwltool reports in it leads back to the process (:func:`locate`)."""
    graph = packed.get("$graph")
    if isinstance(graph, list):
        first = ("id", "class")
        graph = [
            {**{k: n[k] for k in first if k in n}, **n} if isinstance(n, dict) else n for n in graph
        ]
        packed = {**packed, "$graph": graph}
    atomic_write(path, (json.dumps(packed, indent=2) + "\n").encode())


_PACKED_LOCATION = re.compile(r"\b([\w.-]+\.cwl):(\d+):(\d+):")


def locate(cause: str, folder: Path) -> str:
    """``packed.cwl:11:9: message`` -> ``select.cwl (packed.cwl line 11): message``: which
    process of the workflow a line of a packed file in ``folder`` belongs to."""

    def process(match: re.Match[str]) -> str:
        path = folder / match[1]
        if match[1] not in (PACKED, HOST_PACKED) or not path.is_file():
            return match[0]
        lines = path.read_text(encoding="utf-8").splitlines()[: int(match[2])]
        ids = [m[1] for m in map(_ID_LINE.match, lines) if m]
        name = ids[-1].lstrip("#").split("/")[0] if ids else "the workflow"
        return f"{name} ({match[1]} line {match[2]}):"

    return _PACKED_LOCATION.sub(process, cause)


#: a process's ``id`` in a packed file as :func:`_write_packed` writes it
_ID_LINE = re.compile(r'^ {2}(?: {4})?"id": "([^"]+)",?$')


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "cwltool said nothing"


def processes(packed: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every process of a packed workflow with whether it inherits a DockerRequirement
    (from an enclosing workflow or step)."""
    graph = packed.get("$graph")
    nodes = [n for n in graph if isinstance(n, dict)] if isinstance(graph, list) else [packed]
    by_id = {str(n.get("id")): n for n in nodes}
    top = (by_id.get("#main") or nodes[0]) if nodes else {}
    seen: set[int] = set()

    def walk(node: dict[str, Any], inherited: bool) -> Iterator[tuple[dict[str, Any], bool]]:
        if id(node) in seen:
            return
        seen.add(id(node))
        yield node, inherited
        boxed = inherited or bool(docker_images(node))
        for step in _listed(node.get("steps")):
            run = step.get("run")
            sub = by_id.get(run) if isinstance(run, str) else run
            if isinstance(sub, dict):
                yield from walk(sub, boxed or bool(docker_images(step)))

    yield from walk(top, False)


def _listed(value: Any) -> list[dict[str, Any]]:
    """A CWL list-or-map field (requirements, hints, steps) as a list of mappings."""
    if isinstance(value, dict):
        return [{"class": k, "id": k, **v} if isinstance(v, dict) else {} for k, v in value.items()]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def docker_images(node: dict[str, Any]) -> list[str]:
    """The images a process's or step's own DockerRequirement names (requirements or hints):
    ``dockerImageId`` when given (what cwltool runs), else ``dockerPull``."""
    found = []
    for req in _docker_requirements(node):
        image = req.get("dockerImageId") or req.get("dockerPull")
        if image:
            found.append(str(image))
    return found


def _docker_requirements(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        req
        for key in ("requirements", "hints")
        for req in _listed(node.get(key))
        if req.get("class") == "DockerRequirement"
    ]


#: DockerRequirement fields that make cwltool build or load an image on the host
#: (``podman build`` runs a Dockerfile's RUN with the network, and tags over the store)
_IMAGE_MAKERS = ("dockerFile", "dockerLoad", "dockerImport")


def check_image_sources(packed: dict[str, Any], name: str) -> None:
    """SpecError unless every DockerRequirement names its image (``dockerPull``,
    ``dockerImageId``): cwltool would build a ``dockerFile`` even with --disable-pull."""
    for node, _ in processes(packed):
        for owner in [node, *_listed(node.get("steps"))]:
            for req in _docker_requirements(owner):
                used = [k for k in _IMAGE_MAKERS if k in req]
                if used:
                    where = str(owner.get("id") or "main").lstrip("#")
                    raise SpecError(
                        f"workflow.file {name}: {where} has a DockerRequirement with "
                        f"{', '.join(used)}; odrun (like REANA) runs only images it can pull",
                        hint="build or load the image yourself, push it to a registry and "
                        "name it with dockerPull",
                    )


def inspect(packed: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(images, host tools): every image named, and the command-line tools with none."""
    images: set[str] = set()
    host: list[str] = []
    for node, inherited in processes(packed):
        images.update(docker_images(node))
        for step in _listed(node.get("steps")):  # a step's own, for the process it runs
            images.update(docker_images(step))
        if node.get("class") == "CommandLineTool" and not inherited and not docker_images(node):
            host.append(str(node.get("id") or "main").lstrip("#"))
    return sorted(images), sorted(set(host))


def for_host(packed: dict[str, Any]) -> dict[str, Any]:
    """The packed workflow with every DockerRequirement moved from requirements to hints:
    cwltool --no-container refuses a required one, and the host runtime ignores them."""
    doc = copy.deepcopy(packed)
    graph = doc.get("$graph")
    stack: list[Any] = list(graph) if isinstance(graph, list) else [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        reqs = node.get("requirements")
        if isinstance(reqs, list):
            moved = [
                r for r in reqs if isinstance(r, dict) and r.get("class") == "DockerRequirement"
            ]
            if moved:
                node["requirements"] = [r for r in reqs if r not in moved]
                node["hints"] = [*_listed(node.get("hints")), *moved]
        elif isinstance(reqs, dict) and "DockerRequirement" in reqs:
            hints = node.setdefault("hints", {})
            moved_req = reqs.pop("DockerRequirement")
            if isinstance(hints, dict):
                hints["DockerRequirement"] = moved_req
            elif isinstance(hints, list):
                hints.append({"class": "DockerRequirement", **moved_req})
        stack.extend(v for k, v in node.items() if k in ("steps", "run", "$graph"))
    return doc


def plan_cwl(
    analysis: Analysis,
    result: RunResult,
    partial: bool,
    untrusted: bool,
    say: Say,
    settings: Settings | None = None,
) -> CwlPlan:
    """Preflight: cwltool is installed, the workflow packs (is valid CWL), the job reads,
    and the runtime has the images its tools name."""
    if partial:
        raise UsageError(
            "--from/--target select serial steps; a CWL workflow runs whole",
            hint="run it without --from/--target",
        )
    logs = result.run_dir / "logs"
    logs.mkdir(exist_ok=True)
    cwltool_command()  # installed, before anything else is said
    settings = settings or Settings.load()
    check_documents(analysis.root, workflow_file(analysis), untrusted)
    check_job(_job(analysis), result.workspace, untrusted)
    packed = pack(analysis, logs / "00-cwltool-pack.log")
    check_image_sources(packed, workflow_file(analysis))
    _write_packed(result.run_dir / PACKED, packed)
    images, host_tools = inspect(packed)
    plan = CwlPlan(packed=packed, images=images, host_tools=host_tools)
    plan.network = whole_network(analysis, say, "CWL jobs")
    wanted = result.runtime
    result.images = list(images)
    if not images:
        host_without_images(
            result, untrusted, say, source="the CWL workflow", declare="DockerRequirement",
            parts="tools",
        )  # fmt: skip
        plan.runtime = HostRuntime()
        return plan
    if host_tools and untrusted and wanted == "auto":
        raise ConfigError(
            "this analysis comes from a record and would run on the host: its CWL tools "
            f"{', '.join(host_tools)} have no DockerRequirement",
            hint="review them, then allow it with --runtime host",
        )
    plan.runtime = choose_runtime(analysis, result, images, untrusted, say)
    if untrusted and cwl_js.uses_javascript(packed, _job(analysis)):
        plan.node = cwl_js.prepare(plan.runtime, settings.cwl_node_image, say)
    if host_tools and result.runtime != "host":
        say(
            f"warning: CWL tools {', '.join(host_tools)} run on the host, not in a container "
            "(no DockerRequirement)"
        )
    return plan


def _job(analysis: Analysis) -> dict[str, Any]:
    """The job cwltool runs: the job file (locations made relative to the workspace) or
    the parameters themselves."""
    name = analysis.parameters.get("input")
    return rebase_job(workflow_parameters(analysis), name if isinstance(name, str) else None)


def cwltool_args(
    result: RunResult, plan: CwlPlan, workflow: Path
) -> tuple[list[str], dict[str, str]]:
    """cwltool's command line (the job comes on stdin) and its environment."""
    env = process_environment()
    tmp = result.run_dir / "cwl"
    cmd = [
        *cwltool_command(),
        "--disable-color",
        "--timestamps",
        "--outdir",
        str(result.workspace / OUTDIR),
        "--tmpdir-prefix",
        f"{tmp / 'tmp'}/",
        "--tmp-outdir-prefix",
        f"{tmp / 'out'}/",
        "--disable-pull",  # odrun's preflight has the images (or pulled them)
        *_RUNTIME_FLAGS.get(result.runtime, ["--no-container"]),
    ]
    if not plan.network:
        cmd.append("--custom-net=none")
    if isinstance(plan.runtime, OciRuntime):
        env["PATH"] = f"{_shim(result, plan.runtime, plan.network)}:{env.get('PATH', '')}"
    if plan.node is not None:
        cwl_js.write_node_shims(result.run_dir / "bin", plan.node)
        env["PATH"] = f"{result.run_dir / 'bin'}:{env.get('PATH', '')}"
    return [*cmd, str(workflow), "-"], env


def _shim(result: RunResult, runtime: OciRuntime, network: bool) -> Path:
    """A ``podman``/``docker`` first on cwltool's PATH running :mod:`oci_shim` (its folder)."""
    folder = result.run_dir / "bin"
    folder.mkdir(exist_ok=True)
    script = Path(__file__).with_name("oci_shim.py")
    record = result.run_dir / "containers" / "used.txt"
    record.parent.mkdir(exist_ok=True)
    binds = [*cvmfs_binds(runtime.cvmfs)]
    argv = [sys.executable, str(script), runtime.binary, str(record), "1" if network else "0"]
    shim = folder / runtime.name
    shim.write_text(f'#!/bin/sh\nexec {shlex.join([*argv, *binds, "--"])} "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return folder


def run_cwl(analysis: Analysis, result: RunResult, plan: CwlPlan, say: Say) -> None:
    """Run the packed workflow with cwltool in the workspace; one StepRun per CWL job."""
    tmp = result.run_dir / "cwl"
    tmp.mkdir(exist_ok=True)
    workflow = result.run_dir / PACKED
    if result.runtime == "host":  # --no-container refuses a required DockerRequirement
        workflow = tmp / HOST_PACKED
        _write_packed(workflow, for_host(plan.packed))
    order = _job(analysis)
    check_job(order, result.workspace, result.untrusted)  # staged and fetched: links too
    job = json.dumps(order, indent=2, sort_keys=True, default=str)
    atomic_write(tmp / "job.json", (job + "\n").encode())
    cmd, env = cwltool_args(result, plan, workflow)
    log = result.run_dir / "logs" / "01-cwltool.log"
    say(f"[cwltool] cwltool {shlex.join(cmd[cmd.index('--outdir') :])} < cwl/job.json")
    try:
        proc = run_logged(
            cmd, log, result.workspace, env,
            what="cwltool", stdin=job.encode(), stdout=tmp / "outputs.json",
        )  # fmt: skip
    finally:
        if isinstance(plan.runtime, OciRuntime):
            add_used_images(plan.runtime, result.run_dir / "containers" / "used.txt", result)
    parsed = parse_jobs(log.read_text(encoding="utf-8", errors="replace"))
    ok = proc.code == 0 and parsed.final == "success"
    result.steps += _steps(parsed, log)
    if not ok and not parsed.failed_job:  # cwltool itself failed: the run is its step
        code, log_name = proc.code or 1, str(log)
        result.steps.append(
            StepRun("cwltool", shlex.join(cmd), code, proc.started, proc.ended, log_name)
        )
    if not ok:
        raise _failure(parsed, proc.code, log, workflow.parent)


def _steps(parsed: CwlLog, log: Path) -> list[StepRun]:
    return [
        StepRun(j.name, j.command, j.exit_code or 0, j.started, j.ended or now(), str(log))
        for j in parsed.jobs
        if j.exit_code is not None
    ]


def _failure(parsed: CwlLog, code: int, log: Path, folder: Path) -> WorkflowError:
    """One line: the failing job, its exit code and its own error."""
    job = parsed.failed_job
    cause = locate(failure_cause(parsed), folder)
    if job is not None:
        where = job.step if job.step == job.name else f"{job.step} (job {job.name})"
        what = f"CWL step {where} failed with exit code {job.exit_code}"
    else:
        status = parsed.final or (f"exit code {code}" if code else "it gave no final status")
        what = f"cwltool failed ({status})"
    return WorkflowError(f"{what}: {cause}" if cause else what, hint=f"log: {log}")


__all__ = ["OUTDIR", "PACKED", "CwlPlan", "plan_cwl", "run_cwl"]
