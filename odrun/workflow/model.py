"""What a run is, as data: its steps and result (the ``run.json`` document), shared by the
runner, the lock, the provenance crate, Snakemake and REANA without importing each other.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odrun._version import __version__
from odrun.records.model import Record, RecordFile
from odrun.workflow.expect import Check
from odrun.workflow.runtime import Fallback, describe

if TYPE_CHECKING:
    from odrun.workflow.spec import Analysis

RUN_FORMAT_VERSION = 1
Say = Callable[[str], None]


@dataclass
class StepRun:
    name: str
    command: str
    exit_code: int
    started: str
    ended: str
    log: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunResult:
    analysis: str
    run_dir: Path
    analysis_path: str = ""
    status: str = "created"
    started: str = ""
    ended: str = ""
    runtime: str = "host"
    #: what --runtime asked for (auto, podman, ...); ``runtime`` is where the steps ran
    runtime_requested: str = ""
    #: set when --runtime auto ran on the host instead of a container runtime
    runtime_fallback: Fallback | None = None
    #: the analysis came from a record: never run on the host unless asked to
    untrusted: bool = False
    executor: str = "local"
    #: --executor-option KEY=VALUE given for this run (odrun.yaml's are read again)
    executor_options: dict[str, str] = field(default_factory=dict)
    offline: bool = False
    steps: list[StepRun] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    ignored_images: list[str] = field(default_factory=list)
    #: snakemake: the container images its rules declare or ran in
    images: list[str] = field(default_factory=list)
    #: image -> content digest, where the container runtime could tell
    image_digests: dict[str, str] = field(default_factory=dict)
    #: recid -> the files of that record the analysis selected
    selected: dict[str, list[RecordFile]] = field(default_factory=dict)
    error: str | None = None
    #: not every step ran (--target short of the last step, or --from in a fresh folder):
    #: ``odrun verify`` never judges such a run as a complete one
    partial: bool = False

    @property
    def workspace(self) -> Path:
        return self.run_dir / "workspace"

    @property
    def runtime_description(self) -> str:
        """``podman``, or ``host (fallback from podman: <why>)``."""
        return describe(self.runtime, self.runtime_fallback)

    @property
    def verified(self) -> bool | None:
        return all(c.ok for c in self.checks) if self.checks else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": RUN_FORMAT_VERSION,
            "analysis": self.analysis,
            "analysis_path": self.analysis_path,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "runtime": self.runtime,
            "runtime_requested": self.runtime_requested or self.runtime,
            "runtime_fallback": self.runtime_fallback.to_dict() if self.runtime_fallback else None,
            "runtime_description": self.runtime_description,
            "untrusted": self.untrusted,
            "executor": self.executor,
            "executor_options": self.executor_options,
            "ignored_images": self.ignored_images,
            "records": [{"recid": r.recid, "doi": r.doi} for r in self.records],
            "steps": [s.to_dict() for s in self.steps],
            "inputs": self.inputs,
            "outputs": self.outputs,
            "checks": [c.to_dict() for c in self.checks],
            "verified": self.verified,
            "error": self.error,
            "partial": self.partial,
        }


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record_files(result: RunResult) -> list[Path]:
    """The record files in the workspace (read-only for container steps)."""
    ws = result.workspace
    paths = [ws / i["path"] for i in result.inputs if i.get("kind") == "record-file"]
    return [p for p in paths if p.is_file()]


def run_tools(analysis: Analysis, runtime: str) -> tuple[str, ...]:
    """The programs a run used (their versions go into the lock): not all that is installed."""
    engine = ("snakemake",) if analysis.workflow_type == "snakemake" else ()
    container = (runtime,) if runtime in ("podman", "docker", "apptainer") else ()
    return ("bash", *engine, *container)


@functools.cache
def tool_versions(tools: tuple[str, ...] = ("bash", "snakemake", "podman")) -> dict[str, str]:
    versions = {"odrun": __version__, "python": sys.version.split()[0]}
    for tool in tools:
        exe = shutil.which(tool)
        if exe:
            try:
                out = subprocess.run(
                    [exe, "--version"], capture_output=True, text=True, timeout=10, check=False
                )
                versions[tool] = (out.stdout or out.stderr).strip().splitlines()[0][:80]
            except (OSError, subprocess.SubprocessError, IndexError):
                versions[tool] = "unknown"
    return versions
