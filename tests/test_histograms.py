"""Histogram expectations: JSON, CSV and ROOT (uproot) histograms compared bin by bin."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from odrun.errors import ConfigError
from odrun.workflow.expect import evaluate
from odrun.workflow.histograms import (
    Histogram,
    HistogramError,
    Tolerance,
    compare,
    read_histogram,
)

REPO = Path(__file__).resolve().parent.parent
EDGES = [0.0, 1.0, 2.0, 3.0, 4.0]
COUNTS = [10.0, 100.0, 400.0, 90.0]


def write_json(
    path: Path, counts: list[float], edges: list[float] = EDGES, **extra: object
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"h": {"edges": edges, "counts": counts, **extra}}))
    return path


def write_csv(path: Path, counts: list[float]) -> Path:
    rows = ["bin_low,bin_high,count"]
    rows += [f"{EDGES[i]},{EDGES[i + 1]},{c:g}" for i, c in enumerate(counts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    return path


def test_json_and_csv_read_the_same_histogram(tmp_path: Path) -> None:
    from_json = read_histogram(write_json(tmp_path / "a.json", COUNTS), "h")
    from_csv = read_histogram(write_csv(tmp_path / "a.csv", COUNTS), "anything")
    assert from_json == from_csv
    assert from_json.edges == tuple(EDGES)
    assert from_json.error(2) == 20.0  # Poisson when the file has no errors
    result = compare(from_json, from_csv, Tolerance())
    assert result.ok
    assert "identical" in result.detail


def test_tolerances_abs_rel_and_pull(tmp_path: Path) -> None:
    ref = Histogram(tuple(EDGES), tuple(COUNTS))
    moved = Histogram(tuple(EDGES), (10.0, 100.0, 430.0, 90.0))  # bin 2: +30, pull 30/sqrt(830)
    assert not compare(moved, ref, Tolerance()).ok
    assert compare(moved, ref, Tolerance(abs=30)).ok
    assert not compare(moved, ref, Tolerance(abs=29)).ok
    assert compare(moved, ref, Tolerance(rel=0.075)).ok
    assert compare(moved, ref, Tolerance(pull=1.1)).ok
    failed = compare(moved, ref, Tolerance(pull=1.0))
    assert not failed.ok
    assert failed.detail.startswith("1 of 4 bins differ")
    assert "bin 2 [2, 3): 430 vs 400, pull 1.04" in failed.detail


def test_errors_from_the_file_are_used_for_pulls(tmp_path: Path) -> None:
    narrow = read_histogram(write_json(tmp_path / "n.json", COUNTS, errors=[0.1] * 4), "h")
    ref = read_histogram(write_json(tmp_path / "r.json", [10, 100, 401, 90], errors=[0.1] * 4), "h")
    assert not compare(narrow, ref, Tolerance(pull=3)).ok  # 1 / sqrt(0.02) = 7 sigma
    wide = read_histogram(write_json(tmp_path / "w.json", COUNTS, variances=[400.0] * 4), "h")
    assert wide.error(0) == 20.0
    assert compare(wide, ref, Tolerance(pull=0.1)).ok


def test_binning_must_agree(tmp_path: Path) -> None:
    ref = Histogram(tuple(EDGES), tuple(COUNTS))
    shifted = Histogram((0.0, 1.0, 2.0, 3.0, 4.5), tuple(COUNTS))
    assert compare(shifted, ref, Tolerance(rel=1)).detail == "edge 4 is 4.5, the reference has 4"
    fewer = Histogram((0.0, 1.0, 2.0), (1.0, 2.0))
    assert compare(fewer, ref, Tolerance(rel=1)).detail == "2 bins vs 4 in the reference"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", '{"h": {"edges": [0, 1], "counts": [1, 2]}}', "2 bins need 3 edges, got 2"),
        ("bad.json", '{"h": {"counts": [1]}}', "bad.json#h is not a histogram object"),
        ("bad.json", '{"g": {}}', "bad.json#h: no key 'h'"),
        ("bad.json", "not json", "bad.json#h is not JSON, CSV or ROOT"),
        ("bad.csv", "low,count\n0,1\n", "bad.csv#h row 0 needs bin_low, bin_high and count"),
        ("bad.csv", "low,high,count\n0,1,x\n", "bad.csv#h row 0 holds a value that is not a"),
        ("bad.csv", "low,high,count\n0,1,1\n2,3,1\n", "bad.csv#h row 1: bin_low 2 does not follow"),
    ],
)
def test_malformed_histograms_name_the_problem(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(HistogramError, match="^" + message.replace("(", r"\(")):
        read_histogram(tmp_path / name, "h")


def write_root(path: Path, counts: list[float]) -> Path:
    uproot = pytest.importorskip("uproot", reason="pip install 'odrun[root]'")
    np = pytest.importorskip("numpy")
    with uproot.recreate(path) as out:
        out["dimuon/mass"] = (np.array(counts), np.array(EDGES))
    return path


def test_root_histograms_through_uproot(tmp_path: Path) -> None:
    root = write_root(tmp_path / "hists.root", COUNTS)
    hist = read_histogram(root, "dimuon/mass")
    assert hist.edges == tuple(EDGES)
    assert hist.counts == tuple(COUNTS)
    reference = read_histogram(write_json(tmp_path / "ref.json", COUNTS), "h")
    assert compare(hist, reference, Tolerance()).ok
    with pytest.raises(HistogramError, match="no object 'nope'"):
        read_histogram(root, "nope")
    with pytest.raises(HistogramError, match="needs an object name"):
        read_histogram(root)


def test_root_without_uproot_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "h.root").write_bytes(b"root\0")
    monkeypatch.setitem(sys.modules, "uproot", None)
    with pytest.raises(ConfigError) as info:
        read_histogram(tmp_path / "h.root", "h")
    assert info.value.hint is not None
    assert "odrun[root]" in info.value.hint


def test_evaluate_compares_outputs_with_references(tmp_path: Path) -> None:
    workspace, analysis = tmp_path / "ws", tmp_path / "analysis"
    write_root(workspace / "results/hists.root", [10, 100, 420, 90])
    write_json(analysis / "reference/published.json", COUNTS)
    expect = [
        {
            "name": "spectrum",
            "file": "results/hists.root",
            "histograms": {
                "dimuon/mass": {"reference": "reference/published.json#h", "pull": 1.0},
            },
        },
        {
            "file": "results/hists.root",
            "histograms": {"dimuon/mass": {"reference": "reference/published.json#h"}},
        },
        {"file": "results/hists.root", "histograms": {"x": {"reference": "../outside.json"}}},
        {"file": "results/hists.root", "histograms": {"x": {"reference": "missing.json"}}},
    ]
    checks = evaluate(workspace, expect, analysis)
    assert [(c.name, c.ok) for c in checks] == [
        ("spectrum dimuon/mass", True),
        ("results/hists.root dimuon/mass", False),
        ("results/hists.root x", False),
        ("results/hists.root x", False),
    ]
    assert "1 of 4 bins differ" in checks[1].detail
    assert "inside the analysis folder" in checks[2].detail
    assert "missing.json not found" in checks[3].detail


def test_demo_spectrum_against_its_reference_and_reverify(odrun, demo: Path) -> None:
    run = odrun("run", str(demo), "--runtime", "host", "--verify")
    assert run.code == 0, run.err
    # an independent, normalised reference: a chi2 test, not a golden file
    assert "ok   mass spectrum bins: compatible (p_min 0.01): chi2 " in run.out
    assert "ndf 79," in run.out
    reference = demo / "reference" / "mass_spectrum.json"
    doc = json.loads(reference.read_text())
    assert doc["generated"] is True
    doc["spectrum"]["counts"][42] *= 1.5  # the bin at 91.0-91.5 GeV, at the peak: 10 sigma
    reference.write_text(json.dumps(doc))
    # verifying the analysis folder again uses its current references, no new run
    again = odrun("verify", str(demo), "--json")
    assert again.code == 10
    checks = {c["name"]: c for c in again.json()["checks"]}
    assert checks["mass spectrum bins"]["ok"] is False
    detail = checks["mass spectrum bins"]["detail"]
    assert "INCOMPATIBLE (p_min 0.01)" in detail
    assert "worst bins: bin 42 [91, 91.5)" in detail
    reference.unlink()
    invalid = odrun("validate", str(demo))
    assert invalid.code == 2
    assert "reference/mass_spectrum.json does not exist" in invalid.out + invalid.err
