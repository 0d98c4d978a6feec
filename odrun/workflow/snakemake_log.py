"""Which rule failed in a Snakemake log, and why (Snakemake's own lines are never the cause).

Snakemake ends a failed run with boilerplate ("Exiting because a job execution failed. Look
above for error messages", "WorkflowError: At least one job did not complete
successfully"); the cause is above it: the job's stderr between its announcement
(``rule X:`` / ``localrule X:`` and its indented fields) and ``Error in rule X:``, the
job's own ``log:`` files, or a Python exception in a ``run:`` block (``RuleException:``).
Errors outside any job (a missing input, a Snakefile syntax error) are reported from the
exception Snakemake names last. Read with Snakemake 8 and 9 logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from odrun._fs import confine
from odrun.errors import OdrunError
from odrun.workflow.failure import CAUSE_CHARS, job_cause, read_tail

#: Snakemake's own lines, never the cause of a failure
NOISE = tuple(
    re.compile(p)
    for p in (
        r"^Exiting because a job execution failed",
        r"^Shutting down, this might take some time",
        r"^Complete log",
        r"^Elapsed time:",
        r"^WorkflowError:$",
        r"^At least one job did not complete successfully",
        r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$",  # [Thu Dec  3 13:13:53 2026]
        r"^Will exit after finishing currently running jobs",
        r"^Removing output files of failed job",
        r"^Select jobs to execute",
        r"^Execute \d+ jobs",
        r"^Finished job",
        r"^Finished jobid",
        r"^\d+ of \d+ steps",
        r"^Storing output in storage",
        r"^Waiting at most \d+ seconds for missing files",
        r"^\((?:one of the )?commands? exited with non-zero exit code",
        r"^Trying to restart job",
        r"^Assuming unrestricted shared filesystem",
        r"^Building DAG of jobs",
        r"^Using shell:",
        r"^Provided cores:",
        r"^Rules claiming more threads",
    )
)
_ERROR_IN_RULE = re.compile(r"^Error in rule (\S+):$")
_JOB_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
#: the line after ``RuleException:``, and the header of an error outside any job
_EXCEPTION = re.compile(r"^(\w+(?:Error|Exception|Exit|Interrupt)) (?:in|at) .*:$")
_LOG_SUFFIX = " (check log file(s) for error details)"
#: how much of a rule's own log file is read
LOG_TAIL = 64 * 1024


@dataclass(frozen=True)
class RuleFailure:
    """A job Snakemake reported failed: its rule, and the cause if one was found."""

    rule: str
    cause: str | None

    def __str__(self) -> str:
        return f"rule {self.rule}: {self.cause}" if self.cause else f"rule {self.rule} failed"


def rule_failures(text: str, workspace: Path) -> list[RuleFailure]:
    """Each rule Snakemake's log ``text`` reports failed ("Error in rule X:"), once, in order.

    ``workspace`` is Snakemake's working directory: a rule's ``log:`` files are read there
    (only inside it: a log path that leads out is not read)."""
    lines = [line.rstrip() for line in text.splitlines()]
    failures: list[RuleFailure] = []
    for i, line in enumerate(lines):
        match = _ERROR_IN_RULE.match(line)
        if not match or any(f.rule == match.group(1) for f in failures):
            continue
        rule = match.group(1)
        fields = _fields(lines, i + 1)
        cause = None
        for rel in _log_files(fields.get("log", "")):
            cause = _file_cause(workspace, rel)
            if cause:
                break
        failures.append(RuleFailure(rule, cause or _job_output_cause(lines, i, rule)))
    return failures


def failure_cause(text: str, workspace: Path) -> str | None:
    """One line for a failed Snakemake run: ``rule X: cause`` for each failed rule, else
    the error Snakemake stopped with (a missing input, a Snakefile error), else None."""
    failures = rule_failures(text, workspace)
    if failures:
        return "; ".join(str(f) for f in failures)
    lines = [line.strip() for line in text.splitlines()]
    headers = [i for i, line in enumerate(lines) if _EXCEPTION.match(line)]
    if not headers:
        return job_cause(lines, noise=NOISE)
    start = headers[-1]
    header = lines[start].replace(f"{workspace}/", "")
    rest = job_cause(lines[start + 1 :], noise=NOISE)
    return header + (f" {rest}" if rest else "")


def _fields(lines: list[str], start: int) -> dict[str, str]:
    """The indented ``key: value`` fields of a block that starts at ``lines[start]``."""
    fields: dict[str, str] = {}
    for line in lines[start:]:
        if not line.startswith((" ", "\t")):
            break
        key, sep, value = line.strip().partition(":")
        if sep and " " not in key:
            fields.setdefault(key, value.strip())
    return fields


def _log_files(value: str) -> list[str]:
    value = value.removesuffix(_LOG_SUFFIX).strip()
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _file_cause(workspace: Path, rel: str) -> str | None:
    try:
        path = confine(workspace, rel, "rule log")
    except OdrunError:
        return None  # absolute, or leads out of the workspace: not ours to read
    return job_cause(read_tail(path, LOG_TAIL), noise=NOISE)


def _job_output_cause(lines: list[str], error_at: int, rule: str) -> str | None:
    """The cause from what the failed job wrote between its announcement and the error."""
    start = 0
    for j in range(error_at - 1, -1, -1):
        match = _JOB_START.match(lines[j])
        if match and match.group(1) == rule:
            start = j
            break
    output: list[str] = []
    exception: str | None = None
    process_error: str | None = None
    j = start
    while j < error_at:
        line = lines[j]
        if _JOB_START.match(line) or _ERROR_IN_RULE.match(line):
            if _ERROR_IN_RULE.match(line):  # another job's failure: what came before was its
                output, exception, process_error = [], None, None
            j += 1  # skip a job's announcement or error and their indented fields
            while j < error_at and lines[j].startswith((" ", "\t")):
                j += 1
            continue
        if line.strip() == "RuleException:" and j + 1 < error_at:
            header = _EXCEPTION.match(lines[j + 1].strip())
            message: list[str] = []
            j += 2
            while j < error_at and not lines[j].startswith(("  File ", "[")):
                message.append(lines[j].strip())
                j += 1
            text = job_cause(message, noise=NOISE, lines=1) or ""
            name = header.group(1) if header else "RuleException"
            if name == "CalledProcessError":
                process_error = process_error or text  # "Command ... returned non-zero ..."
            else:
                exception = f"{name}: {text}" if text else name
            continue
        if not line.startswith("  File "):
            output.append(line)
        j += 1
    cause = exception or job_cause(output, noise=NOISE) or process_error
    return cause[-CAUSE_CHARS:] if cause else None
