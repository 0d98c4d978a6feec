"""cernopendata-client's --recid / --doi / --protocol xrootd|http, and output through pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DOI = "10.7483/OPENDATA.CMS.A342.9982"  # record 1
MIRROR = Path(__file__).resolve().parent.parent / "workflows" / "mirror"


def test_recid_and_doi_mean_target(odrun, mirror_dir: Path) -> None:
    portal = ("--portal", f"file://{mirror_dir}")
    want = odrun(*portal, "info", "1", "--json")
    assert want.code == 0, want.err
    for alias in (("--recid", "1"), ("--doi", DOI), ("--doi", f"doi:{DOI}")):
        for command in ("info", "files"):
            got = odrun(*portal, command, *alias, "--json")
            assert got.code == 0, (alias, got.err)
            assert got.json() == odrun(*portal, command, "1", "--json").json()
    cite = odrun(*portal, "cite", "--doi", DOI, "--format", "bibtex")
    assert cite.code == 0
    assert cite.out == odrun(*portal, "cite", "1", "--format", "bibtex").out


@pytest.mark.parametrize(
    "args",
    [
        ("info",),
        ("info", "1", "--recid", "1"),
        ("info", "--recid", "1", "--doi", DOI),
        ("files", "1", "--doi", DOI),
        ("fetch", "--recid", "1", "--doi", DOI, "--dry-run"),
        ("env", "1", "--recid", "1"),
        ("cite",),
        ("verify-files", ".", "1", "--recid", "1"),
        ("run", ".", "--recid", "1"),
        ("mirror", "--to", "m"),
    ],
)
def test_record_choice_is_a_usage_error(odrun, mirror_dir: Path, args: tuple[str, ...]) -> None:
    result = odrun("--portal", f"file://{mirror_dir}", *args)
    assert result.code == 2, result.err
    assert "--recid" in result.err
    assert "--doi" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("alias", "value"), [("--recid", DOI), ("--recid", "x y"), ("--doi", "5500")]
)
def test_alias_of_the_wrong_kind_is_refused(
    odrun, mirror_dir: Path, alias: str, value: str
) -> None:
    result = odrun("--portal", f"file://{mirror_dir}", "info", alias, value)
    assert result.code == 2, result.err
    assert alias in result.err or "record reference" in result.err


def test_protocol_aliases(odrun, mirror_dir: Path) -> None:
    portal = ("--portal", f"file://{mirror_dir}")
    for alias, real in (("xrootd", "root"), ("http", "https")):
        got = odrun(*portal, "files", "1", "--protocol", alias)
        assert got.code == 0, got.err
        assert got.out == odrun(*portal, "files", "1", "--protocol", real).out
    assert odrun(*portal, "files", "1", "--protocol", "http").out.startswith("https://")
    for command in ("files", "fetch", "mirror"):
        help_text = odrun(command, "--help").out
        assert "xrootd" in help_text, command
        assert "|http]" in help_text, command
    dry = odrun(*portal, "fetch", "--recid", "1", "--protocol", "xrootd", "--dry-run", "--json")
    assert dry.code == 0, dry.err


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, ODRUN_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="80")
    env.pop("ODRUN_DEBUG", None)
    return env


def _closed_pipe(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    """Run odrun with stdout a pipe whose reading end is closed before odrun writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        return subprocess.run(
            [sys.executable, "-m", "odrun", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_env(tmp_path),
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["files", "1"],
        ["info", "1"],
        ["info", "1", "--json"],
        ["cite", "1", "--format", "bibtex"],
        ["cite", "1", "--format", "json"],
        ["fetch", "--recid", "1", "--filter-range", "1-1", "--dry-run", "--json"],
        ["fetch", "1", "--filter-range", "1-2", "--dry-run", "--json"],
    ],
)
def test_closed_pipe_ends_quietly(mirror_dir: Path, tmp_path: Path, args: list[str]) -> None:
    result = _closed_pipe(["--portal", f"file://{mirror_dir}", *args], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b"", result.stderr


def test_head_reads_one_line(mirror_dir: Path, tmp_path: Path) -> None:
    """`odrun files 1 | head -1`: the reader goes away after one line."""
    with subprocess.Popen(
        [sys.executable, "-m", "odrun", "--portal", f"file://{mirror_dir}", "files", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(tmp_path),
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        code = proc.wait(timeout=120)
    assert first.startswith(b"root://")
    assert code == 0, err
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err


def test_run_into_closed_pipe_keeps_the_runs_status(tmp_path: Path) -> None:
    analysis = tmp_path / "a"
    analysis.mkdir()
    (analysis / "reana.yaml").write_text(
        "version: 0.9.0\nworkflow:\n  type: serial\n  specification:\n    steps:\n"
        "      - name: one\n        environment: docker.io/library/busybox:1.36\n"
        "        commands:\n          - mkdir -p out && echo hi > out/r.txt\n"
        "outputs:\n  files: [out/r.txt]\n"
    )
    workdir = tmp_path / "run1"
    result = _closed_pipe(
        ["run", str(analysis), "--runtime", "host", "--workdir", str(workdir)], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    assert b"BrokenPipe" not in result.stderr
    assert json.loads((workdir / "run.json").read_text())["status"] == "finished"


def test_piped_output_is_not_wrapped_or_padded(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    doc = json.loads((Path(__file__).parent.parent / "workflows/mirror/1.json").read_text())
    long_title = "A very long title " * 12 + "END"
    doc["metadata"]["title"] = long_title
    (mirror / "1.json").write_text(json.dumps(doc))
    result = subprocess.run(
        [sys.executable, "-m", "odrun", "--portal", f"file://{mirror}", "info", "1"],
        capture_output=True,
        env=_env(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert any(line.endswith(long_title) for line in lines), lines[:3]
    assert all(line == line.rstrip() for line in lines), [ln for ln in lines if ln != ln.rstrip()]


def test_closed_pipe_keeps_the_commands_exit_code(tmp_path: Path) -> None:
    """A command that prints and then fails still fails (exit 2 here), pipe closed or not."""
    (tmp_path / "reana.yaml").write_text("version: 0.9.0\ncolour: red\n")
    result = _closed_pipe(["validate", str(tmp_path)], tmp_path)
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr


def test_fetch_with_stderr_closed_still_fetches(tmp_path: Path) -> None:
    """`odrun fetch X 2>&1 | head -1`: progress lines into a closed pipe never fail a file."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "odrun",
                "--portal",
                f"file://{MIRROR}",
                "fetch",
                "900001",
                "--dest",
                str(tmp_path / "d"),
            ],
            stdout=write_end,
            stderr=write_end,
            env=_env(tmp_path),
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert (tmp_path / "d" / "Dimuon_generated.csv").is_file()
