"""odrun run / validate / verify / rerun: the demo analysis and small serial specs, on the host."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_demo_runs_verifies_and_is_reproducible(odrun, demo: Path) -> None:
    first = odrun("run", str(demo), "--runtime", "host", "--verify", "--json")
    assert first.code == 0, first.err
    doc = first.json()
    assert doc["status"] == "finished"
    assert doc["verified"] is True
    assert [s["name"] for s in doc["steps"]] == ["select", "fit", "plot"]
    assert all(s["exit_code"] == 0 for s in doc["steps"])
    fit = json.loads((Path(doc["run_dir"]) / "workspace/results/fit.json").read_text())
    assert abs(fit["mass"] - 91.1876) < 0.5
    assert "runtime host ignores the step images" in first.err
    second = odrun("run", str(demo), "--runtime", "host", "--verify", "--json").json()
    assert [i.get("state") for i in second["inputs"] if i["kind"] == "record-file"] == ["cached"]
    assert [o["checksum"] for o in second["outputs"]] == [o["checksum"] for o in doc["outputs"]]
    assert (demo / "odrun.lock").is_file()
    # the lock names the programs this run used (a serial run on the host), not all installed
    tools = json.loads((demo / "odrun.lock").read_text())["tools"]
    assert sorted(tools) == ["bash", "odrun", "python"]
    verify = odrun("verify", str(demo), "--junit", str(demo / "junit.xml"))
    assert verify.code == 0, verify.err
    assert 'failures="0"' in (demo / "junit.xml").read_text()


def test_provenance_is_an_ro_crate(odrun, demo: Path) -> None:
    doc = odrun("run", str(demo), "--runtime", "host", "--json").json()
    crate = json.loads((Path(doc["run_dir"]) / "ro-crate-metadata.json").read_text())
    assert crate["@context"][0] == "https://w3id.org/ro/crate/1.1/context"
    graph = {node["@id"]: node for node in crate["@graph"]}
    assert graph["ro-crate-metadata.json"]["about"] == {"@id": "./"}
    root = graph["./"]
    assert root["@type"] == "Dataset"
    assert root["mainEntity"] == {"@id": "reana.yaml"}
    assert {"@id": "https://w3id.org/ro/wfrun/process/0.5"} in root["conformsTo"]
    run = graph["#run"]
    assert run["@type"] == "CreateAction"
    assert run["actionStatus"] == "http://schema.org/CompletedActionStatus"
    for ref in run["result"] + root["hasPart"]:
        assert ref["@id"] in graph  # every reference resolves inside the crate
        if not ref["@id"].startswith(("http", "#")):
            assert (Path(doc["run_dir"]) / ref["@id"]).exists()
    assert len([n for n in crate["@graph"] if str(n["@id"]).startswith("#step-")]) == 3
    assert "ODRUN_CACHE_DIR" not in json.dumps(crate)  # no environment recorded


def test_locked_detects_changed_input(odrun, demo: Path) -> None:
    assert odrun("run", str(demo), "--runtime", "host").code == 0
    assert odrun("run", str(demo), "--runtime", "host", "--locked").code == 0
    record = demo.parent / "mirror" / "900001.json"
    data_file = demo.parent / "mirror" / "files" / "900001" / "Dimuon_generated.csv"
    original = data_file.read_bytes()
    # a different event number, same size: only the checksum can tell
    changed = original.replace(b"195013,1000000,", b"195013,1999999,", 1)
    assert changed != original
    assert len(changed) == len(original)
    data_file.write_bytes(changed)
    doc = json.loads(record.read_text())
    doc["metadata"]["files"][0]["checksum"] = f"adler32:{zlib.adler32(changed):08x}"
    doc["metadata"]["files"][0]["size"] = len(changed)
    record.write_text(json.dumps(doc))
    result = odrun("run", str(demo), "--runtime", "host", "--locked")
    assert result.code == 11, result.err
    assert "drifted from odrun.lock" in result.err
    assert "Dimuon_generated.csv checksum" in result.err


def serial_spec(root: Path, commands: dict[str, list[str]], params: dict[str, object] | None = None,
                extra: str = "") -> Path:  # fmt: skip
    steps = "\n".join(
        f"      - name: {name}\n        environment: docker.io/library/busybox:1.36\n"
        "        commands:\n" + "\n".join(f"          - {json.dumps(c)}" for c in cmds)
        for name, cmds in commands.items()
    )
    params_yaml = "\n".join(f"    {k}: {json.dumps(v)}" for k, v in (params or {}).items())
    write(root / "code" / "hello.txt", "hello\n")
    params_yaml = params_yaml or "    {}"
    return write(
        root / "reana.yaml",
        f"version: 0.9.0\ninputs:\n  files: [code/hello.txt]\n  parameters:\n{params_yaml}\n"
        f"workflow:\n  type: serial\n  specification:\n    steps:\n{steps}\n"
        f"outputs:\n  files: [out/result.txt]\n{extra}",
    )


def test_serial_parameters_inputs_outputs(odrun, tmp_path: Path) -> None:
    serial_spec(tmp_path, {
        "one": ["mkdir -p out && cat code/hello.txt > out/result.txt"],
        "two": ["echo \"$greeting ${name} costs\" '$$5' >> out/result.txt"],
    }, {"greeting": "hi", "name": "odrun"})  # fmt: skip
    result = odrun("run", str(tmp_path), "--runtime", "host", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    out = Path(doc["run_dir"]) / "workspace" / "out" / "result.txt"
    assert out.read_text() == "hello\nhi odrun costs $5\n"
    assert doc["outputs"][0]["checksum"] == f"adler32:{zlib.adler32(out.read_bytes()):08x}"
    assert doc["steps"][1]["command"] == "echo \"hi odrun costs\" '$5' >> out/result.txt"


def test_failing_step_stops_and_keeps_logs(odrun, tmp_path: Path) -> None:
    serial_spec(tmp_path, {
        "ok": ["mkdir -p out && echo before > out/result.txt"],
        "boom": ["echo about to fail; exit 3"],
        "never": ["touch never-ran"],
    })  # fmt: skip
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "run1"))
    assert result.code == 7
    assert "step boom failed with exit code 3" in result.err
    assert "about to fail" in result.err
    record = json.loads((tmp_path / "run1" / "run.json").read_text())
    assert record["status"] == "failed"
    assert [s["exit_code"] for s in record["steps"]] == [0, 3]
    assert not (tmp_path / "run1" / "workspace" / "never-ran").exists()
    assert (tmp_path / "run1" / "workspace" / "out" / "result.txt").read_text() == "before\n"
    logs = sorted(p.name for p in (tmp_path / "run1" / "logs").iterdir())
    assert logs == ["01-ok.log", "02-boom.log"]
    assert (tmp_path / "run1" / "ro-crate-metadata.json").is_file()


def test_from_and_target_select_steps(odrun, tmp_path: Path) -> None:
    serial_spec(tmp_path, {"a": ["touch a"], "b": ["touch b"], "c": ["touch c"]})
    result = odrun(
        "run", str(tmp_path), "--runtime", "host", "--from", "b", "--target", "b", "--json"
    )
    assert [s["name"] for s in result.json()["steps"]] == ["b"]
    bad = odrun("run", str(tmp_path), "--runtime", "host", "--from", "zz")
    assert bad.code == 2
    assert "'zz' is not one of a, b, c" in bad.err


def test_validate_errors_and_warnings(odrun, tmp_path: Path) -> None:
    serial_spec(tmp_path, {"a": ["echo $undefined"]}, extra="colour: blue\n")
    result = odrun("validate", str(tmp_path))
    assert result.code == 2
    assert "error: reana.yaml step a: parameter $undefined is not defined" in result.out
    # strict: an unknown key is an error (it was a warning, as REANA has it), and the
    # other checks still run
    assert "error: reana.yaml: unknown key `colour`: expected one of `inputs`" in result.out
    run = odrun("run", str(tmp_path), "--runtime", "host")
    assert run.code == 2
    assert not (tmp_path / ".odrun").exists()  # nothing ran


def test_validate_network_declarations(odrun, tmp_path: Path) -> None:
    serial_spec(tmp_path, {"a": ["echo hi"]})
    write(tmp_path / "odrun.yaml", "version: 1\nnetwork: [a, fetch]\n")
    result = odrun("validate", str(tmp_path))
    assert result.code == 0, result.out
    assert "warning: odrun.yaml network: no step named 'fetch'" in result.out
    write(tmp_path / "odrun.yaml", "version: 1\nnetwork: yes please\n")
    bad = odrun("validate", str(tmp_path))
    assert bad.code == 2
    assert "error: odrun.yaml.network" in bad.out


def test_yadage_workflow_file_must_exist(odrun, tmp_path: Path) -> None:
    """yadage runs locally (tests/test_run_yadage.py); a missing workflow.file is a spec error."""
    write(tmp_path / "reana.yaml", "workflow:\n  type: yadage\n  file: workflow.yaml\n")
    result = odrun("run", str(tmp_path), "--runtime", "host")
    assert result.code == 2
    assert "workflow.yaml" in result.err


def test_cwl_workflow_file_must_exist(odrun, tmp_path: Path) -> None:
    """cwl runs locally (tests/test_run_cwl.py); a missing workflow.file is a spec error."""
    write(tmp_path / "reana.yaml", "workflow:\n  type: cwl\n  file: workflow.cwl\n")
    result = odrun("run", str(tmp_path), "--runtime", "host")
    assert result.code == 2
    assert "workflow.cwl does not exist" in result.err


def test_verification_failure_exit_code(odrun, demo: Path) -> None:
    manifest = demo / "odrun.yaml"
    manifest.write_text(manifest.read_text().replace("mass: {value: 91.1876", "mass: {value: 80.0"))
    result = odrun("run", str(demo), "--runtime", "host", "--verify")
    assert result.code == 10
    assert "FAIL Z peak fit mass" in result.out


def test_junit_report_that_cannot_be_written(odrun, demo: Path, tmp_path: Path) -> None:
    assert odrun("run", str(demo), "--runtime", "host").code == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = odrun("verify", str(demo), "--junit", str(blocker / "verify.xml"))
    assert result.code == 2
    assert f"--junit {blocker / 'verify.xml'}: cannot write the report" in result.err
    assert "Traceback" not in result.err


def test_bad_spec_input(odrun, tmp_path: Path) -> None:
    assert odrun("run", str(tmp_path / "nope"), "--runtime", "host").code == 2
    write(tmp_path / "reana.yaml", "workflow: [not, a, mapping")
    result = odrun("validate", str(tmp_path))
    assert result.code == 2
    assert "not readable YAML" in result.err


def test_rerun_a_recorded_run(odrun, demo: Path) -> None:
    first = odrun("run", str(demo), "--runtime", "host", "--json").json()
    again = odrun("rerun", first["run_dir"], "--json")
    assert again.code == 0, again.err
    doc = again.json()
    assert doc["run_dir"] != first["run_dir"]
    assert doc["verified"] is True
    assert [o["checksum"] for o in doc["outputs"]] == [o["checksum"] for o in first["outputs"]]


def test_outputs_outside_the_workspace_are_not_read(odrun, tmp_path: Path) -> None:
    spec = serial_spec(tmp_path, {"a": ["mkdir -p out && echo ok > out/result.txt"]})
    escaping = "files: [out/result.txt, /etc/hostname, ../../../x]"
    spec.write_text(spec.read_text().replace("files: [out/result.txt]", escaping))
    result = odrun("run", str(tmp_path), "--runtime", "host", "--json")
    assert result.code == 0, result.err
    outputs = {o["path"]: o for o in result.json()["outputs"]}
    assert outputs["out/result.txt"]["size"] == 3
    assert outputs["/etc/hostname"]["missing"] is True
    assert outputs["../../../x"]["missing"] is True


def test_staging_the_analysis_folder_skips_run_folders(odrun, tmp_path: Path) -> None:
    spec = serial_spec(tmp_path, {"a": ["ls code > listing.txt"]})
    spec.write_text(spec.read_text().replace("files: [code/hello.txt]", "directories: [.]"))
    assert odrun("run", str(tmp_path), "--runtime", "host").code == 0
    second = odrun("run", str(tmp_path), "--runtime", "host", "--json")
    assert second.code == 0, second.err
    assert not (Path(second.json()["run_dir"]) / "workspace" / ".odrun").exists()


def test_from_reuses_an_earlier_run_and_target_skips_expectations(odrun, demo: Path) -> None:
    run_dir = demo.parent / "run"
    partial = odrun(
        "run", str(demo), "--runtime", "host", "--target", "select", "--workdir", str(run_dir)
    )
    assert partial.code == 0, partial.err  # no expectations checked on a partial run
    rest = odrun("run", str(demo), "--runtime", "host", "--from", "fit", "--workdir", str(run_dir),
                 "--verify", "--json")  # fmt: skip
    assert rest.code == 0, rest.err
    assert [s["name"] for s in rest.json()["steps"]] == ["fit", "plot"]
    assert rest.json()["verified"] is True


def test_failed_runtime_keeps_the_lock(odrun, demo: Path) -> None:
    assert odrun("run", str(demo), "--runtime", "host").code == 0
    before = (demo / "odrun.lock").read_bytes()
    result = odrun("run", str(demo), "--runtime", "apptainer")
    assert result.code == 8
    assert "apptainer is not installed" in result.err
    assert (demo / "odrun.lock").read_bytes() == before


def test_malformed_spec_and_lock(odrun, tmp_path: Path) -> None:
    write(tmp_path / "reana.yaml", "inputs: [a]\nworkflow: serial\n")
    assert odrun("validate", str(tmp_path)).code == 2
    serial_spec(tmp_path, {"a": ["awk '{print $1}' code/hello.txt"]})
    bad = odrun("validate", str(tmp_path))
    assert bad.code == 2
    assert "bad $ placeholder" in bad.out or "bad $ placeholder" in bad.err
    serial_spec(tmp_path, {"a": ["true"]})
    write(tmp_path / "odrun.lock", "[]")
    locked = odrun("run", str(tmp_path), "--runtime", "host", "--locked")
    assert locked.code == 11
    assert "is not an odrun lock file" in locked.err
