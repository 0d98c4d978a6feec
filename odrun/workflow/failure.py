"""Why a job failed, in one line: the cause every engine's failure message shows.

An engine (serial steps, Snakemake, and the CWL or yadage engines to come) reads what the
failed job wrote (:func:`read_tail`), picks the cause out of it (:func:`job_cause`: the last
meaningful lines, the engine's own boilerplate skipped through ``noise``) and raises
:func:`job_failed`'s error: ``<job> failed with exit code N: <cause>``, one line whatever the
command or its output hold (line breaks shown as ``\\n``), with the command and the log in the
hint. Terminal escaping of what is left is :mod:`odrun.render`'s job, when it is printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from odrun.errors import WorkflowError

#: how much of the end of a log is read to find a cause
TAIL_BYTES = 1 << 20
#: how many meaningful lines a cause shows, and how long it may be
CAUSE_LINES = 2
CAUSE_CHARS = 300
#: how much of a command a message shows
COMMAND_CHARS = 200

#: cwltool's own words around an error, which never say what went wrong
CWL_NOISE = tuple(
    re.compile(re.escape(words))
    for words in (
        "Workflow cannot make any more progress",
        "Final process status is",
        "Exception on step",
        "completed permanentFail",
        "Job error:",
        "Ignored error cleaning up",
    )
)
#: a line of a job's output that reads like its error (``ValueError: x``, ``No such file``),
#: not a traceback's header: preferred as the cause over the lines after it (yadage jobs)
TELLING = re.compile(
    r"^(?!Traceback)"
    r".*(?:error|exception|fatal|failed|no such file|not found|denied|cannot|abort)",
    re.I,
)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of ``path`` as text ("" if it cannot be read)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def one_line(text: str, limit: int = COMMAND_CHARS) -> str:
    """``text`` on one line: every line break (``\\n``, ``\\r\\n``, U+2028, ...) shown as the
    two characters ``\\n``; cut to ``limit`` characters (ending in ``...``)."""
    shown = "\\n".join(text.splitlines()) if text else ""
    if len(shown) > limit:
        shown = shown[: max(0, limit - 3)].rstrip() + "..."
    return shown


def job_cause(
    output: str | Iterable[str],
    *,
    noise: Sequence[re.Pattern[str]] = (),
    prefer: re.Pattern[str] | None = None,
    lines: int = CAUSE_LINES,
    limit: int = CAUSE_CHARS,
) -> str | None:
    """The cause of a failure from a job's output (text or lines, oldest first): its last
    ``lines`` meaningful lines joined by `` | ``, one line of at most about ``limit``
    characters (the end kept: the cause is last). Terminal colour codes are removed; blank
    lines and lines any ``noise`` pattern matches (``re.search``: the engine's boilerplate,
    e.g. Snakemake's "Exiting because a job execution failed", :data:`CWL_NOISE`) are
    skipped. With ``prefer`` (e.g. :data:`TELLING`), only the meaningful lines it matches
    count when there are any. None if nothing meaningful is left."""
    all_lines = output.splitlines() if isinstance(output, str) else list(output)
    last: list[str] = []  # the last meaningful lines, newest first
    preferred: list[str] = []  # the last of them ``prefer`` matches
    for raw in reversed(all_lines):
        if len(last) >= lines and (prefer is None or len(preferred) >= lines):
            break
        line = " ".join(_ANSI.sub("", raw).split())
        if not line or any(p.search(line) for p in noise):
            continue
        if len(last) < lines:
            last.append(line)
        if prefer is not None and len(preferred) < lines and prefer.search(line):
            preferred.append(line)
    picked = preferred or last
    if not picked:
        return None
    cause = " | ".join(reversed(picked))
    if len(cause) > limit:
        cause = "..." + cause[-(limit - 3) :].lstrip()
    return cause


def job_failed(
    job: str,
    exit_code: int,
    cause: str | None,
    *,
    command: str | None = None,
    log: Path | None = None,
) -> WorkflowError:
    """The error of a failed job (``job`` names it: ``"step fit"``, ``"rule fit"``): one line,
    ``<job> failed with exit code N: <cause>``, the command standing in for a missing cause;
    the hint names the command and the log."""
    shown = one_line(command) if command else ""
    reason = one_line(cause, limit=CAUSE_CHARS + 50) if cause else shown
    message = f"{one_line(job, 100)} failed with exit code {exit_code}"
    message += f": {reason}" if reason else ""
    hint = [f"command: {shown}"] if cause and shown else []
    hint += [f"log: {one_line(str(log), 1000)}"] if log else []
    return WorkflowError(message, hint="; ".join(hint) or None)
