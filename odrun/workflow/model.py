"""What a run is, as data: its steps and result (the ``run.json`` document), shared by the
runner, the lock, the provenance crate, Snakemake and REANA without importing each other.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odrun import untrusted
from odrun._fs import atomic_write, confine
from odrun._version import __version__
from odrun.errors import UnsafeMetadataError, UsageError, WorkflowError
from odrun.records.model import Record, RecordFile
from odrun.workflow.expect import Check
from odrun.workflow.runtime import Fallback, OciRuntime, describe

if TYPE_CHECKING:
    from odrun.workflow.spec import Analysis

RUN_FORMAT_VERSION = 1
#: the run record's file name in a run folder
RUN_JSON = "run.json"
#: the largest run.json read (a run folder may be someone else's)
MAX_RUN_JSON_BYTES = 64 * 1024 * 1024
#: where an analysis's run folders live
RUNS = Path(".odrun") / "runs"
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
    #: a workflow engine running in a Python of its own (yadage): its packages' versions
    engine_versions: dict[str, str] = field(default_factory=dict)
    #: recid -> the files of that record the analysis selected
    selected: dict[str, list[RecordFile]] = field(default_factory=dict)
    #: the HEPData tables the expectations compare with (lock entries: version, sha256)
    hepdata: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    #: not every step ran (--target short of the last step, or --from in a fresh folder):
    #: ``odrun verify`` never judges such a run as a complete one
    partial: bool = False
    #: (st_dev, st_ino) of the record files as fetched: a step may move one (rename its
    #: folder), and the next step's read-only binds must still find it
    record_inodes: set[tuple[int, int]] = field(default_factory=set, repr=False)
    #: steps that succeeded in this run folder before this run (--from in an earlier run's)
    steps_done_before: list[str] = field(default_factory=list)

    @property
    def steps_done(self) -> list[str]:
        """Steps that succeeded in this folder, earlier runs in it (--from) included."""
        failed = {s.name for s in self.steps if s.exit_code != 0}
        ran = [s.name for s in self.steps if s.name not in failed]
        return list(dict.fromkeys(self.steps_done_before + ran))

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
            "engine_versions": self.engine_versions,
            "records": [{"recid": r.recid, "doi": r.doi} for r in self.records],
            "steps": [s.to_dict() for s in self.steps],
            "inputs": self.inputs,
            "outputs": self.outputs,
            "checks": [c.to_dict() for c in self.checks],
            "verified": self.verified,
            "error": self.error,
            "partial": self.partial,
            "steps_done": self.steps_done,
        }


@dataclass(frozen=True)
class RunOptions:
    """How :func:`odrun.workflow.runner.run_analysis` runs an analysis (``odrun run``'s options).

    ``untrusted`` (an analysis fetched from a record): ``--runtime auto`` may not fall back
    to running its commands on the host. ``executor`` (Snakemake only): ``local`` or the
    Snakemake executor plugin (slurm, htcondor, kubernetes) that runs the jobs.
    """

    #: the run folder (new or empty; with ``from_step`` an earlier run's) [a new one under
    #: ``<analysis>/.odrun/runs/``]
    workdir: Path | None = None
    #: host, podman, docker, apptainer or auto
    runtime: str = "host"
    #: refuse to run when the inputs drifted from ``odrun.lock``
    locked: bool = False
    #: run from this step on (serial workflows)
    from_step: str | None = None
    #: run up to and including this step
    target_step: str | None = None
    #: judge the outputs against ``expect:`` even for a partial run
    verify: bool = False
    untrusted: bool = False
    executor: str = "local"
    #: --executor-option KEY=VALUE pairs
    executor_options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def rerun_of(cls, record: RunRecord) -> RunOptions:
        """The options to run again what ``record`` ran (``odrun rerun``), judged against the
        expectations: the runtime it ran in (or, after a fallback, the one it asked for),
        its executor and executor options, and whether it came from a record."""
        data = record.data
        runtime = str(data.get("runtime") or "auto")  # where the recorded run ran
        if data.get("runtime_fallback"):  # decide again, as it was asked (and warned about)
            runtime = str(data.get("runtime_requested") or "auto")
        options = data.get("executor_options")
        return cls(
            runtime=runtime,
            executor=str(data.get("executor") or "local"),
            executor_options={str(k): str(v) for k, v in options.items()}
            if isinstance(options, dict)
            else {},
            verify=True,
            untrusted=data.get("untrusted") is True,
        )

    @property
    def partial(self) -> bool:
        """--from or --target: not necessarily every step runs."""
        return self.from_step is not None or self.target_step is not None


def record_files(result: RunResult) -> list[Path]:
    """The record files in the workspace (read-only for container steps): at their paths,
    and, when one is no longer there (a step renamed its folder: the hard link to the
    cache moved with it), wherever a link to the fetched inode now is."""
    ws = result.workspace.resolve()
    paths = [ws / i["path"] for i in result.inputs if i.get("kind") == "record-file"]
    # never through a link: a step may have left one to a host file at a record's path,
    # and binding "the record file" would then show that host file to the next step
    found = [p for p in paths if p.resolve() == p and _inode(p) is not None]
    if result.record_inodes:
        found = [p for p in found if _inode(p) in result.record_inodes]
        if result.record_inodes <= {_inode(p) for p in found}:
            return found
        for here, _dirs, files in os.walk(ws):  # never into a linked folder
            for name in files:
                path = Path(here, name)
                if _inode(path) in result.record_inodes and path not in found:
                    found.append(path)
    return found


def _inode(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a regular file that is not a link, else None."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def add_used_images(runtime: OciRuntime, record: Path, result: RunResult) -> None:
    """The images an engine's jobs really ran in (``record``: one per line, as a shim wrote
    them; also those no spec names literally) added to ``result``, with their digests."""
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


def remember_record_inodes(result: RunResult) -> None:
    """Note the fetched record files' inodes, so later steps find them wherever moved."""
    inodes = {_inode(p) for p in record_files(result)}
    result.record_inodes = {i for i in inodes if i is not None}


def run_tools(analysis: Analysis, runtime: str) -> tuple[str, ...]:
    """The programs a run used (their versions go into the lock): not all that is installed."""
    engine = {"snakemake": ("snakemake",), "cwl": ("cwltool",)}.get(
        analysis.workflow_type or "", ()
    )
    container = (runtime,) if runtime in ("podman", "docker", "apptainer") else ()
    return ("bash", *engine, *container)


#: engines odrun starts as ``sys.executable -m NAME`` (not from PATH)
PYTHON_TOOLS = ("cwltool",)


def _distribution_version(name: str) -> str:
    from importlib import metadata  # noqa: PLC0415

    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def tool_versions(tools: tuple[str, ...] = ("bash", "snakemake", "podman")) -> dict[str, str]:
    versions = {"odrun": __version__, "python": sys.version.split()[0]}
    for tool in tools:
        if tool in PYTHON_TOOLS:  # run as `python -m TOOL`: the version odrun's Python has
            versions[tool] = _distribution_version(tool)
            continue
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


@dataclass(frozen=True)
class RunRecord:
    """What ``run.json`` says about one run (``data`` keeps the whole document)."""

    run_dir: Path
    status: str
    analysis: str = ""
    analysis_path: str = ""
    started: str = ""
    ended: str = ""
    error: str | None = None
    partial: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> RunRecord:
        """The record in ``run_dir``; :class:`UsageError` if it is not a run folder.

        A run folder may be someone else's: ``run.json`` is read only as a regular file
        inside ``run_dir`` (never through a link out of it, never a FIFO that would block)
        of at most :data:`MAX_RUN_JSON_BYTES`."""
        why = "no readable run.json"
        try:
            path = confine(run_dir, RUN_JSON, "run record", error=UsageError)
            data = untrusted.load_json(untrusted.read_text(path, MAX_RUN_JSON_BYTES))
        except (UsageError, UnsafeMetadataError) as exc:  # a link out of the run folder
            why, data = exc.message[:300], None
        except ValueError as exc:  # a FIFO, too large, not UTF-8, not JSON
            why, data = f"run.json: {exc}"[:300], None
        except OSError:
            data = None
        if not isinstance(data, dict):
            raise UsageError(
                f"{run_dir} is not an odrun run folder ({why})",
                hint="give a run folder (.odrun/runs/<time>) or an analysis folder",
            )
        return cls.from_dict(run_dir, data)

    @classmethod
    def from_dict(cls, run_dir: Path, data: dict[str, Any]) -> RunRecord:
        """The record of the ``run.json`` document ``data`` (of a run in ``run_dir``)."""
        steps = data.get("steps")
        return cls(
            run_dir=run_dir,
            status=str(data.get("status") or "unknown"),
            analysis=str(data.get("analysis") or ""),
            analysis_path=str(data.get("analysis_path") or ""),
            started=str(data.get("started") or ""),
            ended=str(data.get("ended") or ""),
            error=str(data["error"]) if data.get("error") else None,
            partial=bool(data.get("partial")),
            steps=[s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else [],
            data=data,
        )

    @classmethod
    def from_result(cls, result: RunResult, **extra: Any) -> RunRecord:
        """The record of ``result``; ``extra`` adds top-level sections (REANA's ``reana``)."""
        return cls.from_dict(result.run_dir, result.to_dict() | extra)

    @classmethod
    def latest(
        cls, analysis_root: Path, *, finished_only: bool = False, say: Say = lambda _: None
    ) -> RunRecord | None:
        """See :func:`latest`."""
        return latest(analysis_root, finished_only=finished_only, say=say)

    def save(self) -> Path:
        """Write ``run.json`` (sorted, indented JSON) atomically; the one serialiser of run
        records, for local and REANA runs alike. Returns its path."""
        path = self.run_dir / RUN_JSON
        atomic_write(path, (json.dumps(self.data, indent=2, sort_keys=True) + "\n").encode())
        return path

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def complete(self) -> bool:
        return self.finished and not self.partial

    @property
    def failed_step(self) -> str | None:
        """The step whose command failed (the last one run with a non-zero exit code)."""
        failed = [s for s in self.steps if s.get("exit_code") not in (0, None)]
        return str(failed[-1].get("name")) if failed else None

    @property
    def analysis_root(self) -> Path:
        """The folder of the analysis this run ran (histogram references live there)."""
        if not self.analysis_path:
            return self.run_dir / "workspace"
        recorded = Path(self.analysis_path)
        return recorded if recorded.is_dir() else recorded.parent

    def describe(self) -> str:
        """``run NAME (finished ENDED)``, ``run NAME (failed at step S: ERROR)`` ..."""
        if self.finished:
            part = ", partial: not every step ran" if self.partial else ""
            return f"run {self.name} (finished {self.ended or 'at an unknown time'}{part})"
        step = f" at step {self.failed_step}" if self.failed_step else ""
        why = f": {self.error}" if self.error else ""
        return f"run {self.name} ({self.status}{step}{why})"

    def problem(self, hint: str | None = None) -> WorkflowError | None:
        """Why this run cannot be judged as a complete run (None: it can)."""
        if self.complete:
            return None
        if self.finished:
            return WorkflowError(
                f"run {self.name} is partial: it ran only some steps (--from/--target), "
                "so its outputs cannot be judged as a complete run",
                hint=hint or "run the whole analysis, then verify that run",
            )
        step = f" at step {self.failed_step}" if self.failed_step else ""
        why = f": {self.error}" if self.error else ""
        return WorkflowError(
            f"run {self.name} {self.status}{step}{why}",
            hint=hint or f"see the logs in {self.run_dir / 'logs'}; fix it and run again",
        )

    def ensure_complete(self, hint: str | None = None) -> RunRecord:
        """This record, or :class:`WorkflowError` (exit 7) saying why it cannot be judged."""
        error = self.problem(hint)
        if error is not None:
            raise error
        return self


def run_folders(analysis_root: Path) -> list[Path]:
    """The run folders of an analysis, oldest first (their names are UTC start times)."""
    folder = analysis_root / RUNS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir())


def latest(
    analysis_root: Path, *, finished_only: bool = False, say: Say = lambda _: None
) -> RunRecord | None:
    """The newest run of an analysis that has a record; with ``finished_only`` the newest
    complete one (failed, partial and unrecorded runs are passed over, each said)."""
    for run_dir in reversed(run_folders(analysis_root)):
        if not (run_dir / RUN_JSON).is_file():
            say(f"passing over run {run_dir.name}: no run.json (still running, or killed)")
            continue
        record = RunRecord.load(run_dir)
        if not finished_only or record.complete:
            return record
        say(f"passing over {record.describe()}")
    return None
