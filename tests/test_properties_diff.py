"""Property tests: ``odrun diff`` of run folders that may come from anyone (a REANA download,
a colleague's run). Whatever their run.json, odrun.lock, reana.yaml and outputs hold, the
diff is a RunDiff whose JSON is valid for specs/diff.schema.json, or an OdrunError."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.compare import diff
from odrun.errors import OdrunError, UsageError
from odrun.specs import load_spec

import fuzzing

SCHEMA = jsonschema.Draft202012Validator(load_spec("diff.schema.json"))
OUTPUTS = ("results/fit.json", "results/hist.csv", "results/plot.png", "results/h.root")
RUN = {
    "format_version": 1,
    "analysis": "demo",
    "status": "finished",
    "runtime": "host",
    "runtime_description": "host",
    "executor": "local",
    "executor_options": {"jobs": "2"},
    "records": [{"recid": "900001", "doi": None}],
    "inputs": [
        {"kind": "file", "path": "analysis/a.py"},
        {"kind": "directory", "path": "analysis"},
        {"kind": "record-file", "path": "data/x.csv", "recid": "900001", "size": 3},
    ],
    "steps": [
        {
            "name": "fit",
            "command": "python a.py",
            "exit_code": 0,
            "started": "2026-01-01T00:00:00+00:00",
            "ended": "2026-01-01T00:00:09+00:00",
        },
    ],
    "outputs": [{"path": p, "size": 1, "checksum": "adler32:00000001"} for p in OUTPUTS],
}
LOCK = {
    "records": [{"recid": "900001", "revision": 1, "files": [
        {"path": "x.csv", "size": 3, "checksum": "adler32:1"}]}],
    "images": [{"name": "python:3.11", "digest": None}],
    "tools": {"bash": "5"},
    "cvmfs": {"cms.cern.ch": {"revision": "1", "root_hash": None}},
}  # fmt: skip
REANA = (
    "version: 0.9.0\ninputs:\n  parameters: {nbins: 80, mmin: 70}\nworkflow:\n  type: serial\n"
    "  specification:\n    steps:\n      - {name: fit, environment: 'python:3.11', "
    "commands: [x]}\n"
)
FIT = {"mass": 91.2, "h": {"edges": [0, 1, 2], "counts": [3, 4]}, "name": "z"}
HIST = "bin_low,bin_high,count\n0,1,3\n1,2,4\n"
content = st.one_of(
    fuzzing.mutated(FIT).map(fuzzing.dumps),
    st.sampled_from(
        (
            b'{"mass": ' + b"9" * 400 + b"}",
            b'{"mass": 1e999, "h": {"edges": [0, 1], "counts": [NaN]}}',
            b"[" * 5000 + b"]" * 5000,
            b"bin_low,bin_high,count\n0,1,inf\n1,2,nan\n",
            b"a,b\n" + b"x" * 200_000 + b",1\n",  # a CSV field over csv's limit
            b"\xff\xfe",
            b"",
        )
    ),
    st.binary(max_size=40),
)


def root_bytes() -> bytes:
    """A ROOT file with one TH1 (uproot writes it), as bytes."""
    import numpy as np
    import uproot

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "h.root")
        with uproot.recreate(path) as out:
            out["h"] = (np.array([3.0, 4.0]), np.array([0.0, 1.0, 2.0]))
        return path.read_bytes()


ROOT = root_bytes()


def write_run(root: Path, run: Any, lock: Any, outputs: dict[str, bytes]) -> Path:
    (root / "workspace" / "results").mkdir(parents=True)
    (root / "workspace" / "analysis").mkdir()
    (root / "workspace" / "analysis" / "a.py").write_text("print(1)\n")
    (root / "run.json").write_bytes(fuzzing.dumps(run))
    (root / "odrun.lock").write_bytes(fuzzing.dumps(lock))
    (root / "reana.yaml").write_text(REANA)
    for rel, data in outputs.items():
        (root / "workspace" / rel).write_bytes(data)
    return root


def check(a: Path, b: Path) -> None:
    try:
        result = diff(a, b)
    except OdrunError:
        return
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # strict JSON
    SCHEMA.validate(doc)
    assert isinstance(result.summary, str)


@given(fuzzing.mutated(RUN), fuzzing.mutated(LOCK))
@example({"steps": "x", "outputs": [{"path": "../../etc/passwd"}]}, [])
@example(RUN | {"outputs": [{"path": "/etc/passwd"}, {"path": "\x00"}]}, LOCK)
@example(RUN | {"inputs": [{"kind": "directory", "path": ".."}]}, LOCK | {"images": "x"})
def test_any_run_record_and_lock_give_a_diff_or_an_odrun_error(run: Any, lock: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {"results/fit.json": json.dumps(FIT).encode(), "results/hist.csv": HIST.encode()}
        a = write_run(Path(tmp, "a"), RUN, LOCK, outputs)
        b = write_run(Path(tmp, "b"), run, lock, outputs)
        check(a, b)


@given(content, content)
@example(b'{"mass": 1e999}', b'{"mass": -1e999}')
@example(b"bin_low,bin_high,count\n0,1,3\n", b"bin_low,bin_high,count\n0,1,1e308\n1,2,5\n")
@example(ROOT[:200] + bytes(100), b"")  # a truncated ROOT file
@example(ROOT.replace(b"TH1D", b"TH1X"), b"")
@example(b'{"mass": ' + b"[" * 900 + b"]" * 900 + b"}", b"")  # a deep value where a number was
def test_any_output_contents_give_a_diff(fit: bytes, hist: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = {
            "results/fit.json": json.dumps(FIT).encode(),
            "results/hist.csv": HIST.encode(),
            "results/h.root": ROOT,
        }
        changed = {"results/fit.json": fit, "results/hist.csv": hist, "results/h.root": fit}
        a = write_run(Path(tmp, "a"), RUN, LOCK, base)
        b = write_run(Path(tmp, "b"), RUN, LOCK, changed)
        result = diff(a, b)  # outputs never raise: every problem is a note
        doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
        SCHEMA.validate(doc)


def test_deep_values_json_loads_but_cannot_dump_give_a_diff() -> None:
    """Values nested as deep as run.json may hold (json.loads takes them; json.dumps or str,
    a few frames deeper, would raise RecursionError): placeholders, never a crash. The
    depth is searched down from one json.loads refuses, so the edge is always tested."""
    with tempfile.TemporaryDirectory() as tmp:
        a = write_run(Path(tmp, "a"), RUN, LOCK, {"results/fit.json": json.dumps(FIT).encode()})
        refused = ""
        for depth in range(1000, 600, -2):
            deep = "[" * depth + "]" * depth
            b = Path(tmp, f"b{depth}")
            write_run(b, RUN, LOCK, {"results/fit.json": ('{"mass": ' + deep + "}").encode()})
            (b / "run.json").write_text(
                json.dumps(RUN)[:-1] + ', "executor_options": {"x": ' + deep + "}}"
            )
            (b / "odrun.lock").write_text(
                json.dumps(LOCK)[:-1] + ', "tools": {"bash": ' + deep + "}}"
            )
            try:
                result = diff(a, b)
            except UsageError as exc:
                refused = str(exc)
                continue
            break
        else:
            raise AssertionError("no depth json.loads takes")
        assert "nested too deeply" in refused  # the search started beyond the edge
        assert result.outputs_differ
        assert {c.key: c for c in result.environment}["tool bash"].kind == "changed"
        json.dumps(result.to_dict(), allow_nan=False)
