"""A run's record (its ``run.json``), read back: which run of an analysis is judged.

``odrun verify``, ``odrun rerun`` and anything else that looks at earlier runs read them
here, never by parsing ``run.json`` themselves. A run is *complete* when it finished
and ran every step (no ``--target`` short of the end, no ``--from`` in a fresh folder);
only a complete run is judged against the expectations.
"""

from __future__ import annotations

from pathlib import Path

from odrun.errors import UsageError, WorkflowError
from odrun.workflow.model import RUN_JSON, RUNS, RunRecord, Say, latest, run_folders


def ensure_newest_recorded(target: Path, command: str) -> None:
    """Raise :class:`WorkflowError` (exit 7) when the newest run folder of the analysis
    ``target`` has no run.json (killed, still running, its record removed): a verdict
    (``odrun verify``, ``odrun report``) is about the newest run, never an older one's
    in its place. ``command`` names the command for the hint."""
    folders = run_folders(target)
    if not folders or (folders[-1] / RUN_JSON).is_file():
        return
    older = latest(target, finished_only=True)
    named = f"; for an older run, name it: odrun {command} {older.run_dir}" if older else ""
    raise WorkflowError(
        f"run {folders[-1].name}, the newest run of {target}, has no run.json (still "
        "running, or killed): no verdict of an older run in its place",
        hint=f"wait for it to end, or run again: odrun run {target}{named}",
    )


def run_to_verify(target: Path, say: Say = lambda _: None) -> RunRecord:
    """The run ``odrun verify TARGET`` judges: TARGET itself if it is a run folder, else the
    analysis's latest run, which must be complete.

    Raises :class:`WorkflowError` (exit 7) when that run failed or is partial (naming the
    failed step and the error, and the newest complete run if there is one) or when the
    newest run folder has no run.json (never passed over for an older run), and
    :class:`UsageError` when TARGET has never run.
    """
    if (target / RUN_JSON).is_file():
        return RunRecord.load(target).ensure_complete()
    ensure_newest_recorded(target, "verify")
    newest = latest(target, say=say)
    if newest is None:
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


__all__ = [
    "RUNS",
    "RUN_JSON",
    "RunRecord",
    "ensure_newest_recorded",
    "latest",
    "run_folders",
    "run_to_verify",
]
