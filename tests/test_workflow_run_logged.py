"""odrun.workflow.runtime.run_logged: the one way every engine (serial steps, Snakemake,
cwltool, yadage) starts its process: its log, stdin, cwd, env, and how a start that fails
or a process that does not end becomes one WorkflowError line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from odrun.errors import WorkflowError
from odrun.workflow.runtime import run_logged


def test_output_and_errors_go_to_the_log_and_stdin_is_empty(tmp_path: Path) -> None:
    code = "import os,sys; print(sys.stdin.read() or 'no input', os.getcwd(), os.environ['K'],"
    code += " flush=True)"
    code += "; print('oops', file=sys.stderr); sys.exit(3)"
    log = tmp_path / "x.log"
    done = run_logged([sys.executable, "-c", code], log, tmp_path, {"K": "v"}, what="step x")
    assert done.code == 3
    assert done.started <= done.ended
    assert log.read_text().split() == ["no", "input", str(tmp_path), "v", "oops"]


def test_stdin_and_a_stdout_of_its_own(tmp_path: Path) -> None:
    code = "import sys; print(sys.stdin.read().upper()); print('said', file=sys.stderr)"
    log, out = tmp_path / "x.log", tmp_path / "out.json"
    done = run_logged(
        [sys.executable, "-c", code], log, tmp_path, {}, what="cwltool", stdin=b"job",
        stdout=out,
    )  # fmt: skip
    assert done.code == 0
    assert out.read_text() == "JOB\n"
    assert log.read_text() == "said\n"


def test_a_program_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match=r"^snakemake: cannot start /no/such/snakemake: "):
        run_logged(["/no/such/snakemake"], tmp_path / "l", tmp_path, {}, what="snakemake")
    with pytest.raises(WorkflowError, match=r"^step fit: cannot start podman: "):
        run_logged(["/no/such"], tmp_path / "l", tmp_path, {}, what="step fit", program="podman")


def test_a_process_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(WorkflowError, match=r"still running after 0\.5 s") as err:
        run_logged(argv, tmp_path / "l", tmp_path, {}, what="yadage", timeout=0.5)
    assert str(tmp_path / "l") in (err.value.hint or "")
