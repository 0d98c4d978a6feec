"""Run a Snakemake workflow for an analysis: config, containers, executor, its log.

- The parameters become Snakemake's config and the workspace its working directory.
- Rule ``container:`` images: Snakemake 9 runs them only through apptainer
  (``--sdm apptainer``). With ``--runtime apptainer`` that is real apptainer;
  with ``--runtime podman|docker`` odrun puts its apptainer shim
  (:mod:`odrun.workflow.apptainer_shim`) first on Snakemake's PATH, which runs
  each containerised job with ``<runtime> run --rm --network=none``, the
  workspace bind-mounted at the same path. With ``--runtime host`` the images
  are ignored, with a warning naming them.
- ``executor`` other than ``local`` hands the jobs to the Snakemake executor
  plugin of that name (slurm, htcondor, kubernetes); see :func:`executor_args`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from odrun import untrusted
from odrun._fs import atomic_write, confine
from odrun.errors import ConfigError, OdrunError, SpecError, UsageError
from odrun.settings import process_environment
from odrun.workflow.apptainer_shim import RECORD_FILES
from odrun.workflow.failure import job_failed, read_tail
from odrun.workflow.model import RunResult, Say, StepRun, add_used_images, record_files
from odrun.workflow.preflight import choose_runtime, host_without_images, whole_network
from odrun.workflow.runtime import (
    ApptainerRuntime,
    OciRuntime,
    Runtime,
    cvmfs_binds,
    readonly_bind,
    run_logged,
)
from odrun.workflow.snakemake_log import failure_cause
from odrun.workflow.spec import Analysis, relative, snakemake_config

EXECUTORS = ("slurm", "htcondor", "kubernetes")
#: Snakemake's own options an --executor-option KEY may name
CORE_OPTIONS = (
    "seconds-between-status-checks",
    "max-status-checks-per-second",
    "latency-wait",
    "retries",
    "max-jobs-per-second",
    # clusters without a shared filesystem (kubernetes): where files go, what pods run
    "default-storage-provider",
    "default-storage-prefix",
    "container-image",
)
DEFAULT_JOBS = 20
_RULE_RE = re.compile(r"^(?:rule|checkpoint)(?:\s+(\w+))?\s*:", re.M)
#: the next line at column 0 that is not blank or a comment: where a rule's body ends
_TOP_LEVEL_RE = re.compile(r"^[^\s#]", re.M)
_ACTION_RE = re.compile(r"^\s+(shell|script|notebook|wrapper|cwl|run)\s*:", re.M)
_GLOBAL_CONTAINER_RE = re.compile(r"^(?:container|singularity|containerized)\s*:", re.M)
#: a rule's own container, a literal or not (container: config["image"])
_CONTAINER_RE = re.compile(r"^\s+(?:container|singularity)\s*:", re.M)
_INCLUDE_RE = re.compile(r"^\s*include\s*:\s*[\"']([^\"'\n]+)[\"']", re.M)
_IMAGE_RE = re.compile(
    r"^\s*(?:container|singularity|containerized)\s*:\s*[\"']([^\"'\n]+)[\"']", re.M
)


@dataclass
class SnakemakePlan:
    """Where the jobs run: the runtime for rule containers and the executor."""

    runtime: Runtime | None = None
    #: the container images the Snakefiles declare (string literals), as written
    images: list[str] = field(default_factory=list)
    executor: str = "local"
    options: dict[str, str] = field(default_factory=dict)
    #: odrun.yaml ``network: true``: containers get the host's network
    network: bool = False
    #: how to start Snakemake (found before anything is fetched)
    command: list[str] = field(default_factory=list)


def _snakefile_texts(workspace: Path, snakefile: str) -> list[str]:
    """The Snakefile and the files it ``include:``s (string literals, relative to the
    including file), each once; never a file outside the workspace."""
    todo, seen = [confine(workspace, snakefile, "workflow.file", error=SpecError)], set()
    texts: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        for name in _INCLUDE_RE.findall(text):  # never read a file outside the workspace
            with contextlib.suppress(OdrunError):
                rel = os.path.relpath(path.parent / name, workspace)
                todo.append(confine(workspace, rel, "include"))
    return texts


def declared_images(workspace: Path, snakefile: str) -> list[str]:
    """Images named by ``container:`` directives (string literals) in the Snakefile and the
    files it ``include:``s."""
    texts = _snakefile_texts(workspace, snakefile)
    return sorted({image for text in texts for image in _IMAGE_RE.findall(text)})


def host_rules(workspace: Path, snakefile: str) -> list[str]:
    """Rules that run on the host whatever the runtime: a ``run:`` block (Python inside
    Snakemake's own process), or a shell/script/notebook/wrapper/cwl action without a
    ``container:`` of its own or a global one."""
    texts = _snakefile_texts(workspace, snakefile)
    everywhere = any(_GLOBAL_CONTAINER_RE.search(text) for text in texts)
    found = set()
    for text in texts:
        for match in _RULE_RE.finditer(text):
            end = _TOP_LEVEL_RE.search(text, match.end())
            body = text[match.end() : end.start() if end else len(text)]
            actions = set(_ACTION_RE.findall(body))
            boxed = everywhere or _CONTAINER_RE.search(body) is not None
            if "run" in actions or (actions and not boxed):
                found.add(match.group(1) or "(unnamed rule)")
    return sorted(found)


def oci_name(image: str) -> str:
    return image.removeprefix("docker://")


def plan_snakemake(
    analysis: Analysis,
    result: RunResult,
    untrusted: bool,
    say: Say,
) -> SnakemakePlan:
    """Preflight, before any input is staged: Snakemake and the executor plugin are
    installed, and the runtime for the rules' containers has their images."""
    snakefile = relative(_snakefile(analysis), "workflow.file")
    plan = SnakemakePlan(
        images=declared_images(analysis.root, str(snakefile)), command=_snakemake_command()
    )
    executor = result.executor
    plan.network = whole_network(analysis, say, "Snakemake rules' containers")
    if executor != "local":
        plan.executor = executor
        merged = {str(k): _text(v) for k, v in _file_options(analysis, executor).items()}
        plan.options = {**merged, **result.executor_options}
        executor_args(executor, plan.options)  # fail early on a missing plugin
        _check_executor_commands(executor)
    wanted = result.runtime
    result.images = list(plan.images)
    if not plan.images:
        host_without_images(
            result, untrusted, say, source="the Snakefile", declare="container:", parts="rules"
        )
        return plan
    names = [oci_name(i) for i in plan.images]
    result.images = names
    on_host = host_rules(analysis.root, str(snakefile))
    if on_host and untrusted and wanted == "auto":
        raise ConfigError(
            "this analysis comes from a record and would run on the host: its Snakefile rules "
            f"{', '.join(on_host)} have no container: (or use run:, which runs in Snakemake)",
            hint="review its rules, then allow it with --runtime host",
        )
    if untrusted and wanted == "auto":  # container rules or not: auto never runs it on the host
        raise ConfigError(
            "this analysis comes from a record, and Snakemake runs its Snakefile as Python on "
            "the host while reading it (top-level code, onstart:, input functions), before any "
            "container starts",
            hint="review the Snakefile and what it includes, then choose: --runtime podman",
        )
    if untrusted:
        say("warning: the record's Snakefile runs as Python on the host while Snakemake reads it")
    plan.runtime = choose_runtime(analysis, result, names, untrusted, say)
    if on_host and plan.runtime is not None and result.runtime != "host":
        say(
            f"warning: Snakefile rules {', '.join(on_host)} run on the host, not in a "
            "container (no container: directive, or run:)"
        )
    return plan


def run_snakemake(analysis: Analysis, result: RunResult, plan: SnakemakePlan, say: Say) -> None:
    config = result.run_dir / "config.yaml"
    config.write_text(yaml.safe_dump(snakemake_config(analysis)), encoding="utf-8")
    log = result.run_dir / "logs" / "01-snakemake.log"
    cmd = [
        *(plan.command or _snakemake_command()),
        "--snakefile",
        str(result.workspace / _snakefile(analysis)),
        "--configfile",
        str(config),
        "--directory",
        str(result.workspace),
    ]
    if plan.executor == "local":
        cmd += ["--cores", str(os.cpu_count() or 1)]
    else:
        cmd += executor_args(plan.executor, plan.options)
    env = process_environment()
    record = result.run_dir / "containers" / "used.txt"
    if isinstance(plan.runtime, (OciRuntime, ApptainerRuntime)):
        readonly = record_files(result)
        for path in readonly:
            readonly_bind(path)  # ':' or ',' refused before anything runs
        if isinstance(plan.runtime, OciRuntime):  # the shim binds them per job, wherever
            _record_listing(result, readonly, record.parent)
            readonly = []
        cmd += _container_args(plan.runtime, result.run_dir, record, env, plan.network, readonly)
    shown = cmd[cmd.index("--snakefile") :]
    say(f"[snakemake] snakemake {shlex.join(shown)}")
    try:
        proc = run_logged(cmd, log, result.workspace, env, what="snakemake")
    finally:
        if isinstance(plan.runtime, OciRuntime):
            add_used_images(plan.runtime, record, result)
    result.steps.append(
        StepRun("snakemake", shlex.join(cmd), proc.code, proc.started, proc.ended, str(log))
    )
    if proc.code != 0:
        cause = failure_cause(read_tail(log), result.workspace)
        raise job_failed("snakemake", proc.code, cause, log=log)


def _snakefile(analysis: Analysis) -> str:
    return str((analysis.reana or {}).get("workflow", {}).get("file") or "Snakefile")


def _snakemake_command() -> list[str]:
    """Snakemake of odrun's own Python (where the executor plugins are), else on PATH."""
    if importlib.util.find_spec("snakemake") is not None:
        return [sys.executable, "-m", "snakemake"]
    exe = shutil.which("snakemake")
    if exe is None:
        raise ConfigError(
            "workflow.type snakemake needs Snakemake, which is not installed",
            hint="pip install 'odrun[snakemake]'",
        )
    return [exe]


def _record_listing(result: RunResult, paths: list[Path], folder: Path) -> None:
    """``record-files.json`` for the apptainer shim, which binds every record file read-only
    wherever it is when each job starts (:func:`apptainer_shim.record_binds`)."""
    inodes = result.record_inodes or {(p.lstat().st_dev, p.lstat().st_ino) for p in paths}
    doc = {
        "workspace": str(result.workspace.resolve()),
        "paths": [str(p) for p in paths],
        "inodes": sorted(inodes),
    }
    folder.mkdir(exist_ok=True)
    atomic_write(folder / RECORD_FILES, json.dumps(doc).encode())


def _container_args(
    runtime: Runtime,
    run_dir: Path,
    record: Path,
    env: dict[str, str],
    network: bool,
    readonly: Sequence[Path] = (),
) -> list[str]:
    """``--sdm apptainer`` and, for podman/docker, the shim first on PATH; the record files
    bound read-only."""
    cvmfs = getattr(runtime, "cvmfs", ())
    binds = [f"--bind {bind}" for bind in [*map(readonly_bind, readonly), *cvmfs_binds(cvmfs)]]
    prefix = run_dir / "containers"
    prefix.mkdir(exist_ok=True)
    args = ["--sdm", "apptainer", "--apptainer-prefix", str(prefix)]
    if isinstance(runtime, OciRuntime):
        shim_dir = run_dir / "bin"
        shim_dir.mkdir(exist_ok=True)
        shim = shim_dir / "apptainer"
        script = Path(__file__).with_name("apptainer_shim.py")
        flags = ["0" if runtime.pull else "1", "1" if network else "0"]
        argv = [sys.executable, str(script), runtime.binary, str(record), *flags, "--"]
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
        env["PATH"] = f"{shim_dir}{os.pathsep}{env.get('PATH', '')}"
    else:
        binds = ["--containall" + ("" if network else " --net --network none"), *binds]
    if binds:
        args += [f"--apptainer-args={' '.join(binds)}"]
    return args


#: the commands an executor plugin starts to submit jobs (checked before anything is fetched)
EXECUTOR_COMMANDS = {"slurm": ("sbatch",), "htcondor": (), "kubernetes": ()}


def _check_executor_commands(executor: str) -> None:
    missing = [c for c in EXECUTOR_COMMANDS.get(executor, ()) if shutil.which(c) is None]
    if missing:
        raise ConfigError(
            f"--executor {executor} submits jobs with {', '.join(missing)}, which is not on PATH",
            hint="run odrun on a login node of the cluster (where sbatch works), "
            "or install the Slurm client",
        )


def _file_options(analysis: Analysis, executor: str) -> dict[str, Any]:
    options = (analysis.manifest.get("executors") or {}).get(executor) or {}
    return dict(options) if isinstance(options, dict) else {}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def executor_args(executor: str, options: dict[str, str]) -> list[str]:
    """Snakemake arguments for ``--executor NAME`` and its options.

    Each KEY=VALUE becomes: ``jobs`` -> ``--jobs``; a setting of the plugin
    (``init_seconds_before_status_checks``) -> ``--<executor>-<key>``; one of
    Snakemake's status-check options (:data:`CORE_OPTIONS`) -> ``--<key>``;
    anything else a default resource (``slurm_partition``, ``mem_mb``, ``runtime``).
    """
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor!r}: expected local, {', '.join(EXECUTORS)}")
    module = f"snakemake_executor_plugin_{executor}"
    try:
        plugin = importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"--executor {executor} needs the Snakemake executor plugin {module.replace('_', '-')}",
            hint=f"pip install 'odrun[{executor}]'",
        ) from None
    except OSError as exc:  # the slurm plugin runs `which sacct` while it is imported
        raise ConfigError(
            f"--executor {executor}: the plugin {module.replace('_', '-')} cannot load: {exc}",
            hint="run odrun where the cluster's commands are on PATH",
        ) from None
    settings = getattr(plugin, "ExecutorSettings", None)
    fields = {f.name: f for f in dataclasses.fields(settings)} if settings else {}
    args = ["--executor", executor]
    jobs = str(DEFAULT_JOBS)
    resources: list[str] = []
    for key, value in options.items():
        norm = key.replace("-", "_")
        dashed = norm.replace("_", "-")
        if norm == "jobs":
            jobs = value
        elif norm in fields:
            if isinstance(fields[norm].default, bool):
                if value.lower() in ("1", "true", "yes"):
                    args.append(f"--{executor}-{dashed}")
            else:
                args += [f"--{executor}-{dashed}", value]
        elif dashed in CORE_OPTIONS:
            args += [f"--{dashed}", value]
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            number = re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value)
            resources.append(f"{key}={value if number else repr(value)}")
        else:
            raise UsageError(f"--executor-option {key}={value}: {key!r} is not a valid name")
    if not untrusted.count(jobs):  # not int(): '²'.isdigit() is True; 0 and 5000 digits too
        raise UsageError(f"--executor-option jobs={jobs}: expected a positive number")
    args += ["--jobs", jobs]
    if resources:
        args += ["--default-resources", *resources]
    return args
