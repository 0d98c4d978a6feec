"""cwltool's log (``--timestamps --disable-color``), read back: the jobs it ran and why one failed.

cwltool writes its own lines as ``[YYYY-MM-DD HH:MM:SS] LEVEL message``; a job's
command follows its ``[job NAME] DIR$`` header as shell words, one per line
(``word \\``), and whatever the job prints to stdout/stderr (without a ``stdout:`` or
``stderr:`` of its own) comes next, unprefixed, until cwltool says how it ended:
``[job NAME] exited with status: N`` and ``[job NAME] completed success|permanentFail``.

:func:`parse_jobs` turns that into :class:`CwlJob` records (one per job, for run.json
and the RO-Crate); :func:`failure_cause` gives the one line that says why the run
failed: the failing job's own last output lines, else cwltool's error (a validation
error, an expression error), never the boilerplate around it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from odrun.workflow.failure import CWL_NOISE, job_cause

_LINE = re.compile(r"^\[(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] (?P<level>[A-Z]+) (?P<msg>.*)$")
_HEADER = re.compile(r"^\[job (?P<job>[^\]]+)\] (?P<dir>\S*)\$ (?P<rest>.*)$")
_EXITED = re.compile(r"^\[job (?P<job>[^\]]+)\] exited with status: (?P<code>-?\d+)")
_DONE = re.compile(r"^\[job (?P<job>[^\]]+)\] completed (?P<status>\w+)")
#: at most this many of a failing job's last output lines go into the one-line message
CAUSE_LINES = 3
CAUSE_CHARS = 300


@dataclass
class CwlJob:
    """One job cwltool ran: a tool, or one element of a scatter (``select_2``)."""

    name: str
    command: str = ""
    started: str = ""
    ended: str = ""
    #: None while the log does not say how it ended
    exit_code: int | None = None
    status: str = ""
    #: what the job printed (stdout/stderr it did not capture itself)
    output: list[str] = field(default_factory=list)

    @property
    def step(self) -> str:
        """The workflow step the job belongs to: ``select_2`` -> ``select``."""
        return re.sub(r"_\d+$", "", self.name)


@dataclass
class CwlLog:
    jobs: list[CwlJob] = field(default_factory=list)
    #: cwltool's ERROR messages (continuation lines joined), in order
    errors: list[str] = field(default_factory=list)
    #: ``Final process status is X``: X, or "" when the log ends before it
    final: str = ""

    @property
    def failed_job(self) -> CwlJob | None:
        failed = [
            j for j in self.jobs if j.exit_code not in (0, None) or j.status == "permanentFail"
        ]
        return failed[0] if failed else None


def _iso(stamp: str) -> str:
    return stamp.replace(" ", "T") + "+00:00"


def _words(lines: list[str]) -> list[str] | None:
    """The shell words of a command as cwltool prints it (``word \\`` per line), or None
    while it is not whole (a quote still open, a line continued)."""
    text = "\n".join(lines)
    if text.rstrip().endswith("\\"):
        return None
    try:
        return shlex.split(text.replace(" \\\n", " "))
    except ValueError:
        return None


def parse_jobs(text: str) -> CwlLog:
    """The jobs, errors and final status in a cwltool log."""
    log = CwlLog()
    jobs: dict[str, CwlJob] = {}
    command: list[str] | None = None  # the lines of a command being read
    current: CwlJob | None = None  # whose output unprefixed lines are
    error: list[str] | None = None  # an ERROR message being continued
    errors: list[list[str]] = []
    traceback = False  # inside a Python traceback cwltool printed (never a cause)
    for raw in text.splitlines():
        if command is not None and current is not None:
            command.append(raw)
            words = _words(command)
            if words is not None:
                current.command, command = shlex.join(words), None
            continue
        match = _LINE.match(raw)
        if match is None:
            if raw.startswith("Traceback ("):
                traceback = True
            elif traceback and not raw.startswith(" "):
                traceback = False  # the exception's own line ends it
            elif error is not None and not traceback:
                error.append(raw.strip())
            elif current is not None and raw.strip() and not traceback:
                current.output.append(raw.rstrip())
            continue
        error, traceback = None, False
        msg, stamp = match["msg"], _iso(match["time"])
        if header := _HEADER.match(msg):
            current = jobs.setdefault(header["job"], CwlJob(header["job"]))
            current.started = stamp
            if current not in log.jobs:
                log.jobs.append(current)
            command = [header["rest"]]
            words = _words(command)
            if words is not None:
                current.command, command = shlex.join(words), None
        elif exited := _EXITED.match(msg):
            job = jobs.setdefault(exited["job"], CwlJob(exited["job"], started=stamp))
            job.exit_code, job.ended = int(exited["code"]), stamp
        elif done := _DONE.match(msg):
            job = jobs.setdefault(done["job"], CwlJob(done["job"], started=stamp))
            if job not in log.jobs:
                log.jobs.append(job)
            job.status, job.ended = done["status"], stamp
            if job.exit_code is None:
                job.exit_code = 0 if job.status == "success" else 1
            current = None
        elif msg.startswith("Final process status is "):
            log.final = msg.removeprefix("Final process status is ").strip()
        elif match["level"] == "ERROR":
            error = [msg.strip()]
            errors.append(error)
    log.errors = [" ".join(e) for e in errors]
    return log


def _one_line(parts: list[str]) -> str:
    text = " | ".join(" ".join(p.split()) for p in parts if p.strip())
    return text if len(text) <= CAUSE_CHARS else text[: CAUSE_CHARS - 3] + "..."


_LOCATION = re.compile(r"(?:[^\s'\"]*/)?([^\s/'\"]+):(\d+):(\d+):")


def _innermost(error: str) -> str:
    """A schema-salad error, from its innermost ``file:line:col:`` on (where the mistake
    is, not the chain of "tried X but" around it), file names without their folders."""
    text = " ".join(error.split())
    found = list(_LOCATION.finditer(text))
    if len(found) > 1:
        text = text[found[-1].start() :]
    return _LOCATION.sub(lambda m: f"{m[1]}:{m[2]}:{m[3]}:", text)


def failure_cause(log: CwlLog) -> str:
    """Why the run failed, in one line (:func:`~odrun.workflow.failure.job_cause`): the
    failing job's last output lines, else the first error cwltool reported that is not its
    boilerplate (:data:`~odrun.workflow.failure.CWL_NOISE`); "" when the log says nothing."""
    job = log.failed_job
    if job is not None and job.output:
        return job_cause(job.output, lines=CAUSE_LINES, limit=CAUSE_CHARS) or ""
    first = job_cause(reversed(log.errors), noise=CWL_NOISE, lines=1, limit=1 << 20)
    if first is None and job is not None:  # "Job error:" and the message after it
        told = [e.split("Job error:", 1)[1] for e in log.errors if "Job error:" in e]
        first = job_cause(reversed(told), lines=1, limit=1 << 20)
    return _one_line([_innermost(first)]) if first else ""
