"""Fidelity: the real reana-client 0.9.6 (its own venv) drives the local REANA test server.

reana-client pins snakemake 7 and jsonschema 3, so it lives in a venv of its own
(``/var/tmp/odrun-reana-client-venv``, made by tests/run or here, reused when
present). Its bravado client checks the server's answers against the same
OpenAPI document; the server checks the client's requests. One relaxation: the
client sends an undeclared ``file_name`` query parameter on downloads, so
undeclared query parameters are not flagged in this test.

The ``*_as_reana_client_sends_it`` tests create the same analysis with
``reana-client create`` and with ``odrun submit`` and compare the specifications
the server received (``ReanaServer.created_specs``): equal, but for the Snakemake
job graph reana-client computes with its own Snakemake 7 (see there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import reana_server

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("ODRUN_REANA_CLIENT_VENV", "/var/tmp/odrun-reana-client-venv"))
REANA_CLIENT = VENV / "bin" / "reana-client"


def reana_client() -> Path:
    """The reana-client executable; made (once per machine) if missing, else a clear skip."""
    if REANA_CLIENT.is_file():
        return REANA_CLIENT
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "-q", "setuptools<81", "reana-client==0.9.6"],
            check=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(VENV, ignore_errors=True)
        pytest.skip(f"cannot create the reana-client venv at {VENV}: {exc}")
    return REANA_CLIENT


@pytest.mark.timeout(900)  # the first run on a machine may build the venv (~3 min)
def test_reana_client_drives_the_test_server(tmp_path: Path) -> None:
    exe = reana_client()
    work = tmp_path / "analysis"
    shutil.copytree(
        REPO / "workflows" / "dimuon-demo", work, ignore=shutil.ignore_patterns(".odrun")
    )
    data = work / "data" / "900001"
    data.mkdir(parents=True)
    shutil.copy(REPO / "workflows/mirror/files/900001/Dimuon_generated.csv", data)
    with reana_server.serve(tmp_path / "srv", strict_query=False) as server:
        env = dict(os.environ, REANA_SERVER_URL=server.url, REANA_ACCESS_TOKEN=server.token)
        env["PYTHONWARNINGS"] = "ignore"

        def rc(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(exe), *args],
                check=False,
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        ping = rc("ping")
        assert ping.returncode == 0, ping.stderr
        assert "Connected" in ping.stdout
        created = rc("create", "-w", "demo", "-f", "reana.yaml")
        assert created.returncode == 0, created.stdout + created.stderr
        assert "demo.1" in created.stdout
        upload = rc("upload", "-w", "demo.1", "analysis/dimuon.py", str(data.relative_to(work)))
        assert upload.returncode == 0, upload.stdout + upload.stderr
        (wf,) = server.workflows.values()
        assert (wf.workspace / "data/900001/Dimuon_generated.csv").is_file()
        assert (wf.workspace / "reana.yaml").is_file()  # create uploads the spec itself
        assert wf.spec["workflow"]["type"] == "serial"
        started = rc("start", "-w", "demo.1")
        assert started.returncode == 0, started.stdout + started.stderr
        deadline = time.monotonic() + 120
        while True:
            status = rc("status", "-w", "demo.1", "--json")
            assert status.returncode == 0, status.stderr
            state = json.loads(status.stdout)[0]
            if state["status"] in ("finished", "failed"):
                break
            assert time.monotonic() < deadline, "workflow did not end"
            time.sleep(0.2)
        assert state["status"] == "finished"
        assert state["progress"] == "3/3"
        out = tmp_path / "out"
        got = rc("download", "-w", "demo.1", "results/fit.json", "-o", str(out))
        assert got.returncode == 0, got.stdout + got.stderr
        fit = json.loads((out / "results" / "fit.json").read_text())
        assert abs(fit["mass"] - 91.1876) < 0.5
        wrong = dict(env, REANA_ACCESS_TOKEN="not-the-token")
        denied = subprocess.run(
            [str(exe), "ping"],
            check=False,
            cwd=work,
            env=wrong,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "INVALID ACCESS TOKEN" in denied.stdout + denied.stderr
        assert server.violations == []


SNAKEFILE = """\
rule all:
    input: "results/greeting.txt"

rule greet:
    input: "data/names.txt"
    output: "results/greeting.txt"
    params: word=config["word"], times=config["times"]
    shell: "for i in $(seq {params.times}); do echo {params.word} $(cat {input}); done > {output}"
"""


RULES = """
rule fit:
    input: greeting="results/greeting.txt"
    output: fit="results/fit.txt"
    container: "docker://docker.io/library/python:3.11-slim"
    resources: kubernetes_memory_limit="256Mi", compute_backend="kubernetes"
    shell: "wc -c {input.greeting} > {output.fit}"

rule count:
    input: "results/greeting.txt"
    output: "results/count.txt"
    shell: "wc -l {input} > {output}"

rule unused:
    output: "results/unused.txt"
    shell: "touch {output}"
"""


def in_order(spec: Any) -> Any:
    """``spec`` with a Snakemake job graph's steps sorted by name: reana-client lists them in
    the order of a set of rules (Python's string hashing: it changes from run to run)."""
    graph = spec["workflow"].get("specification")
    if isinstance(graph, dict) and "steps" in graph:
        spec = json.loads(json.dumps(spec))
        spec["workflow"]["specification"]["steps"].sort(key=lambda step: step["name"])
    return spec


@dataclass
class Sent:
    """What one client sent to create a workflow: the spec and the uploaded workspace paths."""

    spec: Any
    files: set[str]


def sent_by_both(
    odrun: Any,
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec_file: str = "reana.yaml",
) -> tuple[Sent, Sent]:
    """What reana-client 0.9.6 sends for ``folder`` (``create -f SPEC`` then ``upload``, as
    ``reana-client run`` does), and what ``odrun submit`` sends."""
    exe = reana_client()
    with reana_server.serve(tmp_path / "srv-compare", strict_query=False) as server:
        env = dict(os.environ, REANA_SERVER_URL=server.url, REANA_ACCESS_TOKEN=server.token)
        env["PYTHONWARNINGS"] = "ignore"
        env["PATH"] = f"{exe.parent}{os.pathsep}{env.get('PATH', '')}"  # its own cwltool
        for args in (["create", "-w", "cmp", "-f", spec_file], ["upload", "-w", "cmp.1"]):
            done = subprocess.run(
                [str(exe), *args],
                check=False,
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        res = odrun("submit", str(folder / spec_file), "--name", "cmp", "--json")
        assert res.code == 0, res.err
        assert server.violations == []
        assert len(server.created_specs) == 2
        theirs, ours = server.workflows.values()
        assert len(theirs.uploaded) == len(set(theirs.uploaded))  # each file once
        assert len(ours.uploaded) == len(set(ours.uploaded))
        return (
            Sent(server.created_specs[0], set(theirs.uploaded)),
            Sent(server.created_specs[1], set(ours.uploaded)),
        )


@pytest.mark.timeout(900)
def test_demo_spec_as_reana_client_sends_it(
    odrun: Any, demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs, ours = sent_by_both(odrun, demo, tmp_path, monkeypatch)
    assert ours.spec == theirs.spec
    # odrun also uploads the record files odrun.yaml declares (reana-client knows no odrun.yaml)
    assert theirs.files == {"reana.yaml", "analysis/dimuon.py"}
    assert ours.files == theirs.files | {"data/900001/Dimuon_generated.csv"}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("inputs", ["config file", "inline parameters", "no inputs"])
def test_snakemake_spec_as_reana_client_sends_it(
    odrun: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: str
) -> None:
    folder = tmp_path / "smk"
    (folder / "workflow").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "data" / "names.txt").write_text("muons\n")
    (folder / "config.yaml").write_text("word: hello\ntimes: 2\n")
    snakefile = SNAKEFILE
    declared = {
        "config file": "inputs:\n  files: [data/names.txt]\n"
        "  parameters:\n    input: config.yaml\n",
        "inline parameters": "inputs:\n  parameters:\n    word: hi\n    times: 3\n",
        "no inputs": "",
    }[inputs]
    if inputs != "config file":  # the Snakefile sets the config itself
        snakefile = 'config.setdefault("word", "hey")\nconfig.setdefault("times", 1)\n' + snakefile
    (folder / "workflow" / "Snakefile").write_text(snakefile)
    (folder / "reana.yaml").write_text(
        f"version: 0.9.0\n{declared}workflow:\n  type: snakemake\n  file: workflow/Snakefile\n"
        "outputs:\n  files: [results/greeting.txt]\n"
    )
    sent, got = sent_by_both(odrun, folder, tmp_path, monkeypatch)
    theirs, ours = sent.spec, got.spec
    # reana-client uploads the spec file and inputs.files only; odrun also the workflow file
    # and the parameters file, which REANA's Snakemake engine reads from the workspace
    extras = {"workflow/Snakefile"} | ({"config.yaml"} if inputs == "config file" else set())
    assert got.files == sent.files | extras
    assert "reana.yaml" in sent.files
    # reana-client 0.9.6 runs its own Snakemake 7 on the Snakefile and sends the job graph it
    # finds as workflow.specification; odrun builds the same with Snakemake 9
    graph = theirs["workflow"]["specification"]
    assert graph["job_dependencies"] == {"all": ["greet"], "greet": []}
    assert [step["name"] for step in graph["steps"]] == ["greet"]
    assert in_order(ours) == in_order(theirs)
    if inputs == "config file":  # the parameters file, loaded in place of inputs.parameters
        assert ours["inputs"]["parameters"] == {"word": "hello", "times": 2}


@pytest.mark.timeout(900)
def test_serial_directories_and_typed_parameters_as_reana_client_sends_them(
    odrun: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (a serial workflow.file cannot be compared: reana-client 0.9.6 fails on it with
    # "'NoneType' object is not subscriptable", and odrun reads only the inline steps)
    folder = tmp_path / "ser"
    (folder / "code" / "sub").mkdir(parents=True)
    (folder / "code" / "sub" / "x.sh").write_text("echo x\n")
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  directories: [code]\n  parameters:\n    n: 3\n"
        "    f: 1.5\n    s: 'yes'\n    b: yes\n    l: [1, two]\n"
        "workflow:\n  type: serial\n  specification:\n    steps:\n"
        "      - name: one\n        environment: docker.io/library/bash:5.2\n"
        "        kubernetes_memory_limit: 256Mi\n"
        "        commands: ['bash code/sub/x.sh $n ${s} > out.txt']\n"
        "outputs:\n  files: [out.txt]\n  directories: [code]\n"
    )
    theirs, ours = sent_by_both(odrun, folder, tmp_path, monkeypatch)
    assert ours.spec == theirs.spec
    assert ours.files == theirs.files == {"reana.yaml", "code/sub/x.sh"}


ANALYSES = REPO / "tests" / "data" / "reana-analyses"


def copy_analysis(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(ANALYSES / name, folder)
    return folder


@pytest.mark.timeout(900)
@pytest.mark.parametrize("listed", [True, False])
def test_cwl_as_reana_client_sends_it(
    odrun: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listed: bool
) -> None:
    folder = copy_analysis("cwl", tmp_path)
    if not listed:  # as reana-demo-root6-roofit's reana-cwl.yaml: the workflow not uploaded
        spec = folder / "reana.yaml"
        spec.write_text(spec.read_text().replace("  directories:\n    - workflow/cwl\n", ""))
    theirs, ours = sent_by_both(odrun, folder, tmp_path, monkeypatch)
    assert ours.spec == theirs.spec
    packed = ours.spec["workflow"]["specification"]
    assert {p["id"] for p in packed["$graph"]} == {"#main", "#generate.cwl", "#summarise.cwl"}
    # the job file, loaded in place of inputs.parameters
    assert ours.spec["inputs"]["parameters"]["lines"] == 5
    if not listed:  # the packed spec is all REANA's CWL engine needs: nothing added
        assert ours.files == theirs.files == {"reana.yaml", "code/count.sh"}
        return
    assert ours.files == theirs.files == {
        "reana.yaml", "code/count.sh", "workflow/cwl/workflow.cwl", "workflow/cwl/generate.cwl",
        "workflow/cwl/summarise.cwl", "workflow/cwl/input.yml"}  # fmt: skip


@pytest.mark.timeout(900)
def test_yadage_as_reana_client_sends_it(
    odrun: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_analysis("yadage", tmp_path)
    # yadage conflicts with odrun's jsonschema: odrun loads the workflow with a yadage python
    # of its own; here reana-client's venv (it has yadage) stands in for it
    monkeypatch.setenv("ODRUN_YADAGE_PYTHON", str(reana_client().parent / "python"))
    theirs, ours = sent_by_both(odrun, folder, tmp_path, monkeypatch)
    assert ours.spec == theirs.spec
    assert "specification" in ours.spec["workflow"]
    assert ours.spec["workflow"]["specification"] is None
    assert ours.files == theirs.files == {
        "reana.yaml", "code/count.sh", "workflow/yadage/workflow.yaml"}  # fmt: skip


@pytest.mark.timeout(900)
def test_a_broken_yadage_workflow_is_refused_before_anything_is_created(
    odrun: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_analysis("yadage", tmp_path)
    wfile = folder / "workflow/yadage/workflow.yaml"
    wfile.write_text(wfile.read_text().replace("scheduler_type: singlestep-stage", "x: 7", 1))
    monkeypatch.setenv("ODRUN_YADAGE_PYTHON", str(reana_client().parent / "python"))
    with reana_server.serve(tmp_path / "srv") as server:
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        res = odrun("submit", str(folder))
        assert res.code == 2, res.err
        assert "yadage workflow workflow/yadage/workflow.yaml does not load" in res.err
        assert server.workflows == {}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec_file", ["reana.yaml", "reana-serial.yaml"])
def test_a_spec_with_no_files_as_reana_client_sends_it(
    odrun: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_file: str
) -> None:
    folder = tmp_path / "params-only"
    folder.mkdir()
    (folder / spec_file).write_text(
        "version: 0.9.0\ninputs:\n  parameters:\n    word: hello\n"
        "workflow:\n  type: serial\n  specification:\n    steps:\n"
        "      - environment: docker.io/library/bash:5.2\n"
        "        commands: ['echo $word > out.txt']\n"
        "outputs:\n  files: [out.txt]\n"
    )
    theirs, ours = sent_by_both(odrun, folder, tmp_path, monkeypatch, spec_file)
    assert ours.spec == theirs.spec
    assert ours.files == theirs.files == {spec_file}  # the spec file itself only


@pytest.mark.timeout(900)
def test_directories_and_ignore_files_as_reana_client_sends_them(
    odrun: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "smk"
    for rel, text in {
        "workflow/snakemake/Snakefile": SNAKEFILE.replace(
            'input: "results/greeting.txt"', 'input: "results/fit.txt", "results/count.txt"'
        )
        + RULES,
        "workflow/snakemake/inputs.yaml": "word: hello\ntimes: 2\n",
        "data/names.txt": "muons\n",
        "data/deep/er/more.txt": "more\n",
        "data/scratch.log": "ignored by .gitignore\n",
        "data/build/tmp.txt": "ignored by .gitignore\n",
        "data/keep.log": "kept again by !keep.log\n",
        "data/private.txt": "ignored by .reanaignore\n",
        "data/empty/.keep": "",
        ".gitignore": "*.log\nbuild/\n!keep.log\n",
        ".reanaignore": "private.txt\n",
        "notes.log": "ignored, but listed in inputs.files: uploaded\n",
    }.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    (folder / "reana-snakemake.yaml").write_text(
        "version: 0.9.0\ninputs:\n  files: [notes.log]\n"
        "  directories: [workflow/snakemake, data]\n"
        "  parameters:\n    input: workflow/snakemake/inputs.yaml\n"
        "workflow:\n  type: snakemake\n  file: workflow/snakemake/Snakefile\n"
        "outputs:\n  files: [results/greeting.txt]\n"
    )
    theirs, ours = sent_by_both(odrun, folder, tmp_path, monkeypatch, "reana-snakemake.yaml")
    assert in_order(ours.spec) == in_order(theirs.spec)
    graph = ours.spec["workflow"]["specification"]
    assert graph["job_dependencies"] == {
        "all": ["fit", "count"], "fit": ["greet"], "count": ["greet"], "greet": []}  # fmt: skip
    steps = {step["name"]: step for step in graph["steps"]}
    assert set(steps) == {"greet", "count", "fit", "unused"}  # every rule that runs, as REANA
    assert steps["fit"]["environment"] == "docker.io/library/python:3.11-slim"
    assert steps["fit"]["kubernetes_memory_limit"] == "256Mi"
    assert steps["fit"]["inputs"] == {"greeting": "results/greeting.txt"}
    assert ours.files == theirs.files == {
        "reana-snakemake.yaml", "notes.log", "workflow/snakemake/Snakefile",
        "workflow/snakemake/inputs.yaml", "data/names.txt", "data/deep/er/more.txt",
        "data/keep.log", "data/empty/.keep"}  # fmt: skip
