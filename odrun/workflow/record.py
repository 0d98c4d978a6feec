"""A run's record (its ``run.json``), read back: which run of an analysis is judged.

``odrun verify``, ``odrun rerun`` and anything else that looks at earlier runs read them
here, never by parsing ``run.json`` themselves. A run is *complete* when it finished
and ran every step (no ``--target`` short of the end, no ``--from`` in a fresh folder);
only a complete run is judged against the expectations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun import untrusted
from odrun.errors import UsageError, WorkflowError

RUNS = Path(".odrun") / "runs"
Say = Callable[[str], None]


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
        """The record in ``run_dir``; :class:`UsageError` if it is not a run folder."""
        try:
            data = untrusted.load_json((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict):
            raise UsageError(
                f"{run_dir} is not an odrun run folder (no readable run.json)",
                hint="give a run folder (.odrun/runs/<time>) or an analysis folder",
            )
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
        if not (run_dir / "run.json").is_file():
            say(f"passing over run {run_dir.name}: no run.json (still running, or killed)")
            continue
        record = RunRecord.load(run_dir)
        if not finished_only or record.complete:
            return record
        say(f"passing over {record.describe()}")
    return None


def run_to_verify(target: Path, say: Say = lambda _: None) -> RunRecord:
    """The run ``odrun verify TARGET`` judges: TARGET itself if it is a run folder, else the
    analysis's latest run, which must be complete.

    Raises :class:`WorkflowError` (exit 7) when that run failed or is partial (naming the
    failed step and the error, and the newest complete run if there is one), and
    :class:`UsageError` when TARGET has never run.
    """
    if (target / "run.json").is_file():
        return RunRecord.load(target).ensure_complete()
    newest = latest(target, say=say)
    if newest is None:
        unrecorded = run_folders(target)
        if unrecorded:
            raise WorkflowError(
                f"{target} has no finished run: run {unrecorded[-1].name} has no run.json "
                "(still running, or killed)",
                hint=f"wait for it to end, or run again: odrun run {target}",
            )
        raise UsageError(
            f"{target} is neither a run folder nor an analysis that has run",
            hint=f"run it first: odrun run {target}",
        )
    if newest.complete:
        return newest
    if newest.finished:  # partial: the newest complete run, if any, is what to judge
        say(f"passing over {newest.describe()}")
        earlier = latest(target, finished_only=True, say=say)
        if earlier is not None:
            return earlier
        return newest.ensure_complete()
    complete = latest(target, finished_only=True)
    hint = None
    if complete is not None:
        hint = f"the newest complete run is {complete.name}: odrun verify {complete.run_dir}"
    return newest.ensure_complete(hint=hint)  # raises: the newest run failed


__all__ = ["RunRecord", "latest", "run_folders", "run_to_verify"]
