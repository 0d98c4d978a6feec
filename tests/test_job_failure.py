"""A failing job shows *its* error in one line: the step or rule, and the cause (the last
meaningful lines of what it wrote), never only the engine's boilerplate, never two lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from odrun.errors import WorkflowError
from odrun.workflow.failure import job_cause, job_failed, one_line, read_tail
from odrun.workflow.snakemake_log import failure_cause, rule_failures

from test_run import serial_spec

SNAKEMAKE_NOISE = (re.compile(r"^Exiting because a job execution failed"),)


def error_line(err: str) -> str:
    """The one line the CLI ends a failed command with."""
    lines = [line for line in err.splitlines() if line.startswith("odrun: workflow failed: ")]
    assert len(lines) == 1, err
    assert err.splitlines()[-1] == lines[0], err  # nothing after it: the message is one line
    return lines[0]


def test_the_cause_is_the_last_meaningful_lines() -> None:
    text = (
        "starting\n\x1b[31mValueError: bad input\x1b[0m\n\n  \n"
        "Exiting because a job execution failed.\n"
    )
    assert job_cause(text, noise=SNAKEMAKE_NOISE, lines=1) == "ValueError: bad input"
    assert job_cause(text, noise=SNAKEMAKE_NOISE, lines=2) == "starting | ValueError: bad input"
    assert job_cause("\n \n") is None
    assert job_cause(["a", "b", "c"], lines=5) == "a | b | c"


def test_the_cause_is_one_bounded_line() -> None:
    cause = job_cause("x" * 5000 + "\r\nlast\u2028line\x0bend")
    assert cause is not None
    assert "\n" not in cause
    assert "\r" not in cause
    assert len(cause) <= 400
    assert cause.endswith("end")


def test_one_line_shows_line_breaks() -> None:
    for text in ("echo a\ncat b", "echo a\r\ncat b", "echo a\u2028cat b", "echo a\x85cat b"):
        shown = one_line(text)
        assert shown.splitlines() == [shown], repr(text)
        assert shown == "echo a\\ncat b"
    assert len(one_line("y" * 1000, limit=50)) <= 50


def test_job_failed_is_one_line_naming_job_and_cause(tmp_path: Path) -> None:
    log = tmp_path / "01-x.log"
    exc = job_failed("step x", 3, "boom: it broke", command="echo a\necho b", log=log)
    assert isinstance(exc, WorkflowError)
    assert str(exc).splitlines() == [str(exc)]
    assert str(exc).startswith("step x failed with exit code 3: boom: it broke")
    assert "echo a\\necho b" in str(exc)
    assert str(log) in str(exc)
    # a step name or a log folder with a line break (both come from outside) stays one line
    odd = job_failed("step a\nb", 1, "x\ny", command="c", log=tmp_path / "d\ne" / "1.log")
    assert str(odd).splitlines() == [str(odd)]
    # no cause: the command takes its place
    assert str(job_failed("step x", 3, None, command="make\nall")).startswith(
        "step x failed with exit code 3: make\\nall"
    )


def test_read_tail_reads_only_the_end(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_bytes(b"a" * 100_000 + b"\nthe end\n")
    assert read_tail(big, limit=1000).endswith("the end\n")
    assert len(read_tail(big, limit=1000)) <= 1000
    assert read_tail(tmp_path / "missing.log") == ""


def test_a_failing_multi_line_step_says_why_in_one_line(odrun, tmp_path: Path) -> None:
    serial_spec(tmp_path, {
        "prepare": ["mkdir -p out"],
        "select": ["echo selecting events\nls /no/such/input.root\necho never >&2 && false"],
    })  # fmt: skip
    # `false` fails silently: the cause is what ls and echo wrote before it
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    line = error_line(result.err)
    assert "step select failed with exit code 1" in line
    assert "No such file or directory | never" in line
    assert "\\x0a" not in line  # the command's newlines are not escapes in a wrapped blob
    recorded = json.loads((tmp_path / "r" / "run.json").read_text())["error"]
    assert recorded.splitlines() == [recorded]


def test_a_failing_step_names_its_last_stderr_line(odrun, tmp_path: Path) -> None:
    serial_spec(tmp_path, {
        "fit": ["echo 'fitting'\necho 'RuntimeError: fit did not converge' >&2\nexit 4"],
    })  # fmt: skip
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    line = error_line(result.err)
    assert "step fit failed with exit code 4: " in line
    assert "RuntimeError: fit did not converge" in line
    assert "\\x0a" not in line


@pytest.mark.parametrize("limit", [1, 10])
def test_read_tail_limits(tmp_path: Path, limit: int) -> None:
    f = tmp_path / "f"
    f.write_text("0123456789abc")
    assert read_tail(f, limit=limit) == "0123456789abc"[-limit:]


#: the end of a real Snakemake 9.27 log: two jobs ran, both failed (--keep-going)
KEEP_GOING_LOG = """\
Select jobs to execute...
Execute 2 jobs...

[Thu Dec  3 13:13:53 2026]
localrule analyse:
    output: out.txt
    jobid: 1
    reason: Missing output files: out.txt
    resources: tmpdir=/tmp

[Thu Dec  3 13:13:53 2026]
localrule fit:
    output: fit.txt
    log: logs/fit.log, /etc/passwd
    jobid: 2
    resources: tmpdir=/tmp
/usr/bin/bash: line 1: papermill: command not found
RuleException:
CalledProcessError in file "/w/Snakefile", line 6:
Command 'set -euo pipefail;  papermill nb.ipynb out.ipynb' returned non-zero exit status 127.
[Thu Dec  3 13:13:53 2026]
Error in rule analyse:
    message: None
    jobid: 1
    output: out.txt
    shell:
        papermill nb.ipynb out.ipynb
        (command exited with non-zero exit code)
RuleException:
CalledProcessError in file "/w/Snakefile", line 9:
Command 'set -euo pipefail;  fit > logs/fit.log 2>&1' returned non-zero exit status 3.
[Thu Dec  3 13:13:54 2026]
Error in rule fit:
    message: None
    jobid: 2
    output: fit.txt
    log: logs/fit.log, /etc/passwd (check log file(s) for error details)
    shell:
        fit > logs/fit.log 2>&1
        (command exited with non-zero exit code)
Shutting down, this might take some time.
Exiting because a job execution failed. Look above for error messages
Complete log(s): /w/.snakemake/log/2026-12-03T131352.116030.snakemake.log
WorkflowError:
At least one job did not complete successfully.
"""


def test_every_failed_rule_is_named_with_its_own_cause(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "fit.log").write_text("fitting\n\nRuntimeError: did not converge\n")
    failures = rule_failures(KEEP_GOING_LOG, tmp_path)
    assert [str(f) for f in failures] == [
        "rule analyse: /usr/bin/bash: line 1: papermill: command not found",
        "rule fit: fitting | RuntimeError: did not converge",
    ]
    assert failure_cause(KEEP_GOING_LOG, tmp_path) == "; ".join(str(f) for f in failures)


def test_a_rule_log_outside_the_workspace_is_not_read(tmp_path: Path) -> None:
    """An untrusted Snakefile's ``log: /etc/passwd`` must not put that file in a message."""
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0:secret\n")
    workspace = tmp_path / "ws"
    (workspace / "logs").mkdir(parents=True)
    (workspace / "logs" / "fit.log").symlink_to(outside)
    text = KEEP_GOING_LOG.replace("/etc/passwd", str(outside))
    causes = [str(f) for f in rule_failures(text, workspace)]
    assert "secret" not in " ".join(causes)
    # what is left is fit's own output after analyse's error, not analyse's stderr
    assert causes[1] == (
        "rule fit: Command 'set -euo pipefail; fit > logs/fit.log 2>&1' "
        "returned non-zero exit status 3."
    )


def test_without_a_failed_rule_the_last_exception_is_the_cause(tmp_path: Path) -> None:
    text = (
        f'Building DAG of jobs...\nMissingInputException in rule make in file "{tmp_path}/'
        'Snakefile", line 3:\nMissing input files for rule make:\n    output: z.txt\n'
        "    affected files:\n        no-such.txt\n"
    )
    cause = failure_cause(text, tmp_path)
    assert cause is not None
    assert cause.startswith('MissingInputException in rule make in file "Snakefile", line 3:')
    assert cause.endswith("no-such.txt")
    assert failure_cause("Exiting because a job execution failed.\n", tmp_path) is None
