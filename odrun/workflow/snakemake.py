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

import dataclasses
import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from odrun import untrusted
from odrun.errors import ConfigError, UsageError, WorkflowError
from odrun.workflow.runner import RunResult, Say, StepRun, _choose_runtime, _safe_rel, now
from odrun.workflow.runtime import ApptainerRuntime, OciRuntime, Runtime, cvmfs_binds
from odrun.workflow.spec import Analysis, SpecError

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


def declared_images(workspace: Path, snakefile: str) -> list[str]:
    """Images named by ``container:`` directives (string literals) in the Snakefile and the
    files it ``include:``s (string literals, relative to the including file)."""
    todo, seen = [workspace / snakefile], set()
    found: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        found |= set(_IMAGE_RE.findall(text))
        todo += [path.parent / name for name in _INCLUDE_RE.findall(text)]
    return sorted(found)


def oci_name(image: str) -> str:
    return image.removeprefix("docker://")


def plan_snakemake(
    analysis: Analysis,
    result: RunResult,
    untrusted: bool,
    say: Say,
) -> SnakemakePlan:
    """Choose the runtime for the rules' containers; check the executor plugin is there."""
    plan = SnakemakePlan(images=declared_images(result.workspace, _snakefile(analysis)))
    executor = result.executor
    allowed = analysis.manifest.get("network", False)
    plan.network = allowed is True
    if isinstance(allowed, list) and allowed:
        say(
            "warning: odrun.yaml network names steps; Snakemake rules' containers cannot be "
            "told apart, so only 'network: true' applies to them: they run with --network=none"
        )
    if executor != "local":
        plan.executor = executor
        merged = {str(k): _text(v) for k, v in _file_options(analysis, executor).items()}
        plan.options = {**merged, **result.executor_options}
        executor_args(executor, plan.options)  # fail early on a missing plugin
    wanted = result.runtime
    result.images = list(plan.images)
    if not plan.images:
        if wanted in ("podman", "docker", "apptainer"):
            raise UsageError(
                f"--runtime {wanted}: the Snakefile declares no container: image",
                hint="add container: directives to its rules, or use --runtime host",
            )
        if wanted == "auto" and untrusted:
            raise ConfigError(
                "this analysis comes from a record and its Snakefile declares no container "
                "image: it would run on the host",
                hint="review its rules, then allow it with --runtime host",
            )
        if wanted == "auto":
            say("warning: --runtime auto: the Snakefile names no container image; runs on the host")
        result.runtime = "host"
        return plan
    names = [oci_name(i) for i in plan.images]
    result.images = names
    plan.runtime = _choose_runtime(analysis, result, names, untrusted, say)
    return plan


def run_snakemake(analysis: Analysis, result: RunResult, plan: SnakemakePlan, say: Say) -> None:
    config = result.run_dir / "config.yaml"
    config.write_text(yaml.safe_dump(snakemake_config(analysis)), encoding="utf-8")
    log = result.run_dir / "logs" / "01-snakemake.log"
    cmd = [
        *_snakemake_command(),
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
    env = dict(os.environ)
    record = result.run_dir / "containers" / "used.txt"
    if isinstance(plan.runtime, (OciRuntime, ApptainerRuntime)):
        cmd += _container_args(plan.runtime, result.run_dir, record, env, plan.network)
    shown = cmd[cmd.index("--snakefile") :]
    say(f"[snakemake] snakemake {shlex.join(shown)}")
    started = now()
    try:
        with log.open("wb") as out:
            proc = subprocess.run(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=result.workspace,
                env=env,
                check=False,
            )
    finally:
        if isinstance(plan.runtime, OciRuntime):
            _used_images(plan.runtime, record, result)
    result.steps.append(
        StepRun("snakemake", shlex.join(cmd), proc.returncode, started, now(), str(log))
    )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise WorkflowError(
            f"snakemake failed with exit code {proc.returncode}",
            hint=f"log: {log}" + (f"; last lines: {' | '.join(tail)}" if tail else ""),
        )


def _snakefile(analysis: Analysis) -> str:
    return str((analysis.reana or {}).get("workflow", {}).get("file") or "Snakefile")


def _snakemake_command() -> list[str]:
    """Snakemake of odrun's own Python (where the executor plugins are), else on PATH."""
    if importlib.util.find_spec("snakemake") is not None:
        return [sys.executable, "-m", "snakemake"]
    exe = shutil.which("snakemake")
    if exe is None:
        raise WorkflowError(
            "workflow.type snakemake needs Snakemake", hint="pip install 'odrun[snakemake]'"
        )
    return [exe]


def _container_args(
    runtime: Runtime, run_dir: Path, record: Path, env: dict[str, str], network: bool
) -> list[str]:
    """``--sdm apptainer`` and, for podman/docker, the shim first on PATH."""
    cvmfs = getattr(runtime, "cvmfs", ())
    binds = [f"--bind {bind}" for bind in cvmfs_binds(cvmfs)]
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


def _used_images(runtime: OciRuntime, record: Path, result: RunResult) -> None:
    """Digests of the images the jobs really ran in (also those no directive names literally)."""
    try:
        used = sorted(set(record.read_text(encoding="utf-8").split()))
    except OSError:
        return
    result.images = sorted(set(result.images) | set(used))
    for image in used:
        if image not in result.image_digests:
            digest = runtime.digest(image)
            if digest:
                result.image_digests[image] = digest


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


def snakemake_config(analysis: Analysis) -> dict[str, Any]:
    """Snakemake's config, as REANA builds it: the file named by ``inputs.parameters.input``
    (reana-client loads it whatever its extension: YAML, or JSON, which is YAML), else the
    parameters themselves."""
    params = analysis.parameters
    name = params.get("input")
    if isinstance(name, str):
        path = analysis.root / _safe_rel(name, "inputs.parameters.input")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"snakemake parameters file {name}: {exc}".splitlines()[0]) from None
        if not isinstance(loaded, dict):
            raise SpecError(f"snakemake parameters file {name} must hold a mapping")
        return loaded
    return params
