"""odrun diff: real runs of workflows/dimuon-demo on the host, compared section by section.

Identical runs, a changed input, a changed image digest, a changed parameter and a changed
output; the numbers of a changed output (JSON, CSV, histograms with the chi2 test that
expectations use); run references; untrusted run folders (links out, FIFOs, huge files).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from odrun.compare import diff
from odrun.compare.numeric import NotComparableError, compare_files, histogram_diff
from odrun.errors import UnsafeMetadataError, UsageError
from odrun.specs import load_spec
from odrun.workflow.histograms import Histogram
from odrun.workflow.stats import chi2_test

SCHEMA = jsonschema.Draft202012Validator(load_spec("diff.schema.json"))
IMAGE = "image docker.io/library/python:3.11-slim"


def run_demo(odrun: Any, demo: Path, code: int = 0) -> Path:
    result = odrun("run", str(demo), "--runtime", "host")
    assert result.code == code, result.err
    return sorted((demo / ".odrun" / "runs").iterdir())[-1]


def diff_json(odrun: Any, a: Path, b: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = odrun("diff", str(a), str(b), "--json", *extra)
    doc = result.json()
    SCHEMA.validate(doc)
    return result.code, doc


def changes(doc: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in doc[section] if c["kind"] != "equal"}


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


@pytest.fixture
def two_runs(odrun: Any, demo: Path) -> tuple[Path, Path]:
    return run_demo(odrun, demo), run_demo(odrun, demo)


def test_identical_runs_exit_0(odrun: Any, two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    code, doc = diff_json(odrun, a, b)
    assert code == 0
    assert doc["equal"] is True
    assert doc["outputs_differ"] is False
    assert [o["kind"] for o in doc["outputs"]] == ["equal"] * 3
    assert doc["summary"] == "runs agree: 3 outputs identical"
    human = odrun("diff", str(a), str(b))
    assert human.code == 0
    assert "outputs: 0 of 3 differ" in human.out
    assert "parameter nbins" not in human.out  # only what differs ...
    assert "= parameter nbins: 80" in odrun("diff", str(a), str(b), "--all").out  # ... or all


def test_changed_parameter_explains_the_changed_outputs(odrun: Any, demo: Path) -> None:
    a = run_demo(odrun, demo)
    spec = demo / "reana.yaml"
    spec.write_text(spec.read_text().replace("nbins: 80", "nbins: 60"))
    b = run_demo(odrun, demo, code=10)  # the spectrum no longer matches its reference
    code, doc = diff_json(odrun, a, b)
    assert code == 10
    assert changes(doc, "parameters") == {
        "parameter nbins": {
            "kind": "changed", "key": "parameter nbins", "a": "80", "b": "60", "detail": ""
        }
    }  # fmt: skip
    assert "step fit command" in changes(doc, "steps")
    assert not changes(doc, "inputs")
    assert not changes(doc, "environment")
    assert doc["summary"] == "outputs differ (3 of 3); changed: parameter nbins 80 -> 60"
    outputs = {o["path"]: o for o in doc["outputs"]}
    csv_diff = outputs["results/mass_hist.csv"]["numeric"]
    assert (csv_diff["format"], csv_diff["rows_a"], csv_diff["rows_b"]) == ("csv", 80, 60)
    (hist,) = csv_diff["histograms"]
    assert hist["same_binning"] is False
    assert "60 bins vs 80" in hist["detail"]
    fit = outputs["results/fit.json"]["numeric"]
    assert fit["format"] == "json"
    assert fit["differing"] > 0
    assert fit["worst"]
    png = outputs["results/mass.png"]
    assert png["numeric"] is None
    assert "checksum and size only" in png["note"]
    human = odrun("diff", str(a), str(b))
    assert human.code == 10
    assert "~ parameter nbins: 80 -> 60" in human.out
    assert "outputs differ (3 of 3); changed: parameter nbins 80 -> 60" in human.err


def test_changed_input_with_identical_outputs_exits_0_with_a_note(odrun: Any, demo: Path) -> None:
    a = run_demo(odrun, demo)
    code_file = demo / "analysis" / "dimuon.py"
    code_file.write_text(code_file.read_text() + "\n# a comment changes no output\n")
    b = run_demo(odrun, demo)
    code, doc = diff_json(odrun, a, b)
    assert code == 0
    changed = changes(doc, "inputs")
    assert list(changed) == ["input analysis/dimuon.py"]
    assert changed["input analysis/dimuon.py"]["a"] != changed["input analysis/dimuon.py"]["b"]
    assert doc["equal"] is False
    assert doc["outputs_differ"] is False
    assert doc["summary"].startswith("outputs identical (3); changed: input analysis/dimuon.py")


def test_changed_image_digest_is_named_with_its_steps(
    odrun: Any, two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, run_b = two_runs
    b = copy_run(run_b, tmp_path / "b")
    lock = json.loads((b / "odrun.lock").read_text())
    lock["images"][0]["digest"] = "sha256:" + "ab" * 32
    (b / "odrun.lock").write_text(json.dumps(lock))
    code, doc = diff_json(odrun, a, b)
    assert code == 0  # the environment changed, the outputs did not
    image = changes(doc, "environment")[IMAGE]
    assert (image["a"], image["b"]) == ("no digest", "sha256:" + "ab" * 32)
    assert image["detail"] == "steps select, fit, plot"
    # and when an output differs too, the digest is the candidate explanation
    fit = b / "workspace" / "results" / "fit.json"
    fit.write_text(fit.read_text().replace('"mass": 91.', '"mass": 92.'))
    code, doc = diff_json(odrun, a, b)
    assert code == 10
    assert doc["summary"] == (
        f"outputs differ (1 of 3); changed: {IMAGE} no digest -> sha256:{'ab' * 32}"
    )


def test_changed_output_numbers_json_and_histogram(
    odrun: Any, two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, run_b = two_runs
    b = copy_run(run_b, tmp_path / "b")
    fit = b / "workspace" / "results" / "fit.json"
    doc_b = json.loads(fit.read_text())
    doc_b["mass"] += 0.5
    doc_b["note"] = "edited"
    fit.write_text(json.dumps(doc_b))
    hist = b / "workspace" / "results" / "mass_hist.csv"
    lines = hist.read_text().splitlines()
    cells = lines[41].split(",")
    header = lines[0].split(",")
    column = next(i for i, h in enumerate(header) if h in ("count", "value", "counts"))
    cells[column] = str(float(cells[column]) + 3000)
    lines[41] = ",".join(cells)
    hist.write_text("\n".join(lines) + "\n")
    code, doc = diff_json(odrun, a, b)
    assert code == 10
    outputs = {o["path"]: o for o in doc["outputs"]}
    assert outputs["results/mass.png"]["kind"] == "equal"
    numbers = outputs["results/fit.json"]["numeric"]
    mass = next(i for i in numbers["items"] if i["key"] == "mass")
    assert mass["abs_diff"] == pytest.approx(0.5)
    assert mass["rel_diff"] == pytest.approx(0.5 / mass["a"])
    assert numbers["differing"] == 1
    assert numbers["only_b"] == 1
    csv_diff = outputs["results/mass_hist.csv"]["numeric"]
    assert csv_diff["differing"] == 1
    assert csv_diff["worst"] == f"40.{header[column]}"
    (histogram,) = csv_diff["histograms"]
    assert histogram["same_binning"] is True
    assert "bin 40" in histogram["detail"]
    assert histogram["p_value"] < 1e-6  # 3000 more entries in one bin: incompatible
    assert doc["summary"] == (
        "outputs differ (2 of 3); no input, environment or parameter change recorded"
    )


def test_histogram_statistics_are_the_expectations_chi2() -> None:
    a = Histogram((0, 1, 2, 3), (100, 200, 50))
    b = Histogram((0, 1, 2, 3), (110, 180, 55))
    got = histogram_diff("h", a, b)
    want = chi2_test(b, a)
    assert (got.chi2, got.ndf, got.p_value) == (want.chi2, want.ndf, want.p_value)
    assert "bin 1 [1, 2): 180 vs 200" in got.detail


def test_json_histograms_compared_bin_by_bin(odrun: Any, two_runs: tuple[Path, Path],
                                             tmp_path: Path) -> None:  # fmt: skip
    a_run, b_run = two_runs
    a, b = copy_run(a_run, tmp_path / "a"), copy_run(b_run, tmp_path / "b")
    for run, counts in ((a, [10, 20, 30]), (b, [10, 20, 60])):
        doc = {"spectrum": {"edges": [0, 1, 2, 3], "counts": counts}, "n": sum(counts)}
        (run / "workspace" / "results" / "fit.json").write_text(json.dumps(doc))
    result = diff(a, b)
    fit = next(o for o in result.outputs if o.path == "results/fit.json")
    assert fit.numeric is not None
    (hist,) = fit.numeric.histograms
    assert hist.key == "spectrum"
    assert hist.same_binning
    assert hist.ndf == 3


def test_run_references_analysis_folder_and_reana_record(
    odrun: Any, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_demo(odrun, demo)
    assert diff(demo, run).a.run_dir == str(run)  # an analysis folder: its newest run
    assert diff(demo / "reana.yaml", run).a.run_dir == str(run)  # or its spec file
    record = demo / ".odrun" / "reana" / "dimuon-demo-1"  # what odrun download leaves
    shutil.copytree(run / "workspace", record / "workspace")
    data = json.loads((run / "run.json").read_text())
    data |= {"runtime": "reana", "runtime_description": "reana"}
    (record / "run.json").write_text(json.dumps(data))
    (record / "submission.json").write_text(json.dumps({
        "server": "https://reana.example", "workflow_id": "1", "workflow_name": "dimuon-demo.1",
        "analysis": "dimuon-demo", "analysis_path": str(demo), "submitted": "2026-01-01",
    }))  # fmt: skip
    monkeypatch.chdir(demo)
    for ref in (str(record), str(record / "submission.json"), "dimuon-demo.1"):
        result = diff(run, ref)
        assert result.b.run_dir.endswith("dimuon-demo-1"), ref
        assert not result.outputs_differ
        assert [c.key for c in result.environment if c.differs] == ["runtime"]
        assert any("parameters not compared" in n for n in result.notes)
        assert any("image digests, tool versions" in n for n in result.notes)
        data_file = "input data/900001/Dimuon_generated.csv"  # no lock: compared as a file
        assert {c.key: c.kind for c in result.inputs}[data_file] == "equal"
    bad = odrun("diff", str(run), str(tmp_path / "nothing-here"))
    assert bad.code == 2
    assert "neither a run folder nor an analysis" in bad.err


def test_untrusted_run_folder_links_fifos_and_large_files(
    odrun: Any, two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, run_b = two_runs
    b = copy_run(run_b, tmp_path / "b")
    secret = tmp_path / "secret.json"
    secret.write_text('{"mass": 1}')
    results = b / "workspace" / "results"
    (results / "fit.json").unlink()
    (results / "fit.json").symlink_to(secret)  # a link out of the run: never read
    (results / "mass_hist.csv").unlink()
    os.mkfifo(results / "mass_hist.csv")  # reading it would hang
    code, doc = diff_json(odrun, a, b)
    assert code == 10
    outputs = {o["path"]: o for o in doc["outputs"]}
    assert outputs["results/fit.json"]["kind"] == "removed"
    assert "leads outside" in outputs["results/fit.json"]["note"]
    assert outputs["results/fit.json"]["checksum_b"] is None
    assert "not a regular file" in outputs["results/mass_hist.csv"]["note"]
    # a file larger than the bound: checksum and size only
    c = copy_run(run_b, tmp_path / "c")
    fit = c / "workspace" / "results" / "fit.json"
    fit.write_text(fit.read_text().replace('"mass": 91.', '"mass": 92.'))
    small = diff(a, c, max_bytes=10)
    output = next(o for o in small.outputs if o.path == "results/fit.json")
    assert output.numeric is None
    assert "larger than 10 bytes" in output.note
    code, doc = diff_json(odrun, a, c, "--max-bytes", "10")
    assert code == 10
    assert (
        "larger than 10 bytes" in {o["path"]: o for o in doc["outputs"]}["results/fit.json"]["note"]
    )
    # run.json itself leading out through a link
    (c / "run.json").unlink()
    (c / "run.json").symlink_to(a / "run.json")
    with pytest.raises(UnsafeMetadataError):
        diff(a, c)
    assert odrun("diff", str(a), str(c)).code == 9
    (c / "run.json").unlink()
    (c / "run.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="not an odrun run folder"):
        diff(a, c)


def test_a_bare_reana_download_folder_compares_outputs_only(
    odrun: Any, two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    """`odrun download WORKFLOW -o DIR` leaves files and no run record: its files are
    compared at the outputs the run declares, nothing else (no false differences)."""
    run, other = two_runs
    download = tmp_path / "download"
    shutil.copytree(run / "workspace", download)  # outputs, inputs, intermediate files
    code, doc = diff_json(odrun, run, download)
    assert code == 0, doc["summary"]
    assert [o["kind"] for o in doc["outputs"]] == ["equal"] * 3
    assert doc["inputs"] == doc["environment"] == doc["steps"] == []
    assert any("folder of files" in n for n in doc["notes"])
    (download / "results" / "mass.png").unlink()
    code, doc = diff_json(odrun, download, other)
    assert code == 10
    assert {o["path"]: o["kind"] for o in doc["outputs"]}["results/mass.png"] == "added"
    # two folders of files: every file is compared
    copy = tmp_path / "copy"
    shutil.copytree(download, copy)
    (copy / "results" / "extra.txt").write_text("new\n")
    result = diff(download, copy)
    assert {o.path: o.kind for o in result.outputs if o.differs} == {"results/extra.txt": "added"}
    # an analysis that never ran is not a folder of files
    (tmp_path / "never").mkdir()
    (tmp_path / "never" / "reana.yaml").write_text("version: 0.9.0\n")
    with pytest.raises(UsageError, match="neither a run folder nor an analysis"):
        diff(run, tmp_path / "never")


def test_root_histograms_compared_bin_by_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import uproot

    edges = np.array([0.0, 1.0, 2.0, 3.0])
    for name, counts in (("a.root", [100.0, 200.0, 50.0]), ("b.root", [100.0, 260.0, 50.0])):
        with uproot.recreate(tmp_path / name) as out:
            out["dimuon/mass"] = (np.array(counts), edges)
            out["only_" + name[0]] = (np.array(counts), edges)
    numeric = compare_files(tmp_path / "a.root", tmp_path / "b.root")
    assert (numeric.format, numeric.only_a, numeric.only_b) == ("root", 1, 1)
    (hist,) = numeric.histograms
    assert hist.key == "dimuon/mass"
    assert "bin 1 [1, 2): 260 vs 200" in hist.detail
    want = chi2_test(
        Histogram((0, 1, 2, 3), (100, 260, 50)), Histogram((0, 1, 2, 3), (100, 200, 50))
    )
    assert hist.p_value == pytest.approx(want.p_value)
    (tmp_path / "bad.root").write_bytes(b"root\0not really")
    with pytest.raises(NotComparableError, match="not a readable ROOT file"):
        compare_files(tmp_path / "bad.root", tmp_path / "a.root")
    monkeypatch.setitem(sys.modules, "uproot", None)
    with pytest.raises(NotComparableError, match=r"odrun\[root\]"):
        compare_files(tmp_path / "a.root", tmp_path / "b.root")


def test_json_and_csv_values_typed_and_counted(tmp_path: Path) -> None:
    """A value whose type changed differs (true is not 1, "1" is not 1); 1 and 1.0 do not;
    values only in one file are counted; NaN equals NaN."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"flag": 1, "n": "1", "x": 1, "nan": NaN, "list": [1, 2, 3], "gone": {"y": 1}}')
    b.write_text('{"flag": true, "n": 1, "x": 1.0, "nan": NaN, "list": [1, 2], "new": 0}')
    numeric = compare_files(a, b)
    assert numeric.strings_differing == 2
    assert numeric.differing == 0
    assert sorted(item.key for item in numeric.items) == ["flag", "n"]
    # a container where a value was is shown by its size, never printed whole
    b.write_text('{"flag": 1, "n": "1", "x": {"deep": [' + "1," * 5000 + "1]}}")
    (item,) = compare_files(a, b).items
    assert (item.key, item.a, item.b) == ("x", "1", "(object of 1 keys)")
    assert (numeric.only_a, numeric.only_b) == (2, 1)  # list.2 and gone; new
    a_csv, b_csv = tmp_path / "a.csv", tmp_path / "b.csv"
    a_csv.write_text("x,label\n1,a\n2,b\n3,c\n")
    b_csv.write_text("x,label,extra\n1,a,9\n2.5,B,9\n")
    numeric = compare_files(a_csv, b_csv)
    assert (numeric.rows_a, numeric.rows_b) == (3, 2)
    assert (numeric.differing, numeric.strings_differing) == (1, 1)
    assert numeric.worst == "1.x"
    assert numeric.max_abs == pytest.approx(0.5)
    assert (numeric.only_a, numeric.only_b) == (2, 2)  # row 2's cells; the extra column


def test_a_workspace_leading_out_of_its_run_is_never_read(
    odrun: Any, two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run folder whose workspace/ is a link to elsewhere (e.g. the user's home) would show
    that folder's files as outputs, numbers and all: refused, nothing read."""
    a, run_b = two_runs
    b = copy_run(run_b, tmp_path / "b")
    elsewhere = tmp_path / "home"
    shutil.move(b / "workspace", elsewhere)
    (b / "workspace").symlink_to(elsewhere)
    with pytest.raises(UnsafeMetadataError, match="workspace"):
        diff(a, b)
    assert odrun("diff", str(a), str(b)).code == 9


def test_a_fifo_in_an_input_folder_is_not_opened(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, run_b = two_runs
    b = copy_run(run_b, tmp_path / "b")
    run = json.loads((b / "run.json").read_text())
    run["inputs"].append({"kind": "directory", "path": "analysis"})
    (b / "run.json").write_text(json.dumps(run))
    os.mkfifo(b / "workspace" / "analysis" / "pipe")  # opening it would block forever
    (b / "workspace" / "analysis" / "out").symlink_to(tmp_path)
    result = diff(a, b)
    inputs = {c.key: c for c in result.inputs}
    assert inputs["input analysis/pipe"].b == "not a regular file"
    assert inputs["input analysis/out"].b == "a link: not followed"
    assert inputs["input analysis/dimuon.py"].kind == "equal"


def test_a_failed_run_shows_its_step_exit_codes_and_missing_outputs(
    odrun: Any, two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, run_b = two_runs
    b = copy_run(run_b, tmp_path / "b")
    run = json.loads((b / "run.json").read_text())
    run["status"], run["steps"] = "failed", run["steps"][:2]
    run["steps"][1]["exit_code"] = 1
    run["image_digests"] = {"docker.io/library/python:3.11-slim": "sha256:" + "cd" * 32}
    (b / "run.json").write_text(json.dumps(run))
    (b / "workspace" / "results" / "mass.png").unlink()
    code, doc = diff_json(odrun, a, b)
    assert code == 10
    steps = changes(doc, "steps")
    assert (steps["step fit exit code"]["a"], steps["step fit exit code"]["b"]) == ("0", "1")
    assert steps["step plot"]["kind"] == "removed"
    outputs = {o["path"]: o for o in doc["outputs"]}
    assert outputs["results/mass.png"]["kind"] == "removed"
    assert doc["b"]["status"] == "failed"
    image = changes(doc, "environment")[IMAGE]  # a digest run.json records counts too
    assert image["b"] == "sha256:" + "cd" * 32
    assert IMAGE in doc["summary"]


def test_the_schema_is_valid_and_can_fail(two_runs: tuple[Path, Path]) -> None:
    jsonschema.Draft202012Validator.check_schema(load_spec("diff.schema.json"))
    doc = diff(*two_runs).to_dict()
    SCHEMA.validate(doc)
    bad = json.loads(json.dumps(doc))
    bad["outputs"][0]["kind"] = "different"
    with pytest.raises(jsonschema.ValidationError):
        SCHEMA.validate(bad)
    bad = json.loads(json.dumps(doc)) | {"extra": 1}
    with pytest.raises(jsonschema.ValidationError):
        SCHEMA.validate(bad)


def test_a_changed_step_command_explains_outputs_when_nothing_else_does(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, run_b = two_runs
    b = copy_run(run_b, tmp_path / "b")
    run = json.loads((b / "run.json").read_text())
    run["steps"][1]["command"] += " --robust"  # reana.yaml's command edited, no parameter
    (b / "run.json").write_text(json.dumps(run))
    fit = b / "workspace" / "results" / "fit.json"
    fit.write_text(fit.read_text().replace('"mass": 91.', '"mass": 92.'))
    result = diff(a, b)
    assert result.summary == "outputs differ (1 of 3); changed: step fit command"
