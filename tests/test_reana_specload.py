"""What odrun submit builds before it creates a workflow (odrun/reana/specload.py), without
reana-client: the tools it needs (cwltool, yadage) and the errors when they are missing or
the workflow does not load. tests/test_reana_client.py compares the results with reana-client.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reana_server

REPO = Path(__file__).resolve().parent.parent
ANALYSES = REPO / "tests" / "data" / "reana-analyses"
specload = importlib.import_module("odrun.reana.specload")


@pytest.fixture
def reana(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[reana_server.ReanaServer]:
    with reana_server.serve(tmp_path / "reana-srv") as server:
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        yield server
        assert server.violations == []


def copy_analysis(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(ANALYSES / name, folder)
    return folder


def without(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make ``module`` look not installed to odrun's lazy checks."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        specload.importlib.util, "find_spec", lambda name: None if name == module else real(name)
    )


def test_cwl_is_packed_and_its_job_file_loaded(
    odrun: Any, reana: reana_server.ReanaServer, tmp_path: Path
) -> None:
    folder = copy_analysis("cwl", tmp_path)
    res = odrun("submit", str(folder), "--json")
    assert res.code == 0, res.err
    (wf,) = reana.workflows.values()
    graph = wf.spec["workflow"]["specification"]["$graph"]
    main = next(p for p in graph if p["id"] == "#main")
    assert main["class"] == "Workflow"
    assert [s["id"] for s in main["steps"]] == ["#main/generate", "#main/summarise"]
    assert wf.spec["inputs"]["parameters"] == {
        "count_tool": {"class": "File", "location": "../../code/count.sh"},
        "lines": 5,
    }
    assert "reana.yaml" in wf.uploaded


def test_cwl_without_cwltool_is_a_config_error_before_anything_is_created(
    odrun: Any, reana: reana_server.ReanaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = copy_analysis("cwl", tmp_path)
    without(monkeypatch, "cwltool")
    res = odrun("submit", str(folder))
    assert res.code == 8, res.err
    assert "needs cwltool" in res.err
    assert "pip install 'odrun[cwl]'" in res.err
    assert reana.workflows == {}


def test_a_broken_cwl_workflow_is_a_spec_error_before_anything_is_created(
    odrun: Any, reana: reana_server.ReanaServer, tmp_path: Path
) -> None:
    folder = copy_analysis("cwl", tmp_path)
    (folder / "workflow/cwl/summarise.cwl").unlink()  # a step's tool is missing
    res = odrun("submit", str(folder))
    assert res.code == 2, res.err
    # validation names the missing tool before cwltool is asked to pack it
    assert "workflow/cwl/summarise.cwl does not exist" in res.err
    assert "Traceback" not in res.err
    assert reana.workflows == {}


@pytest.mark.parametrize("case", ["nothing", "missing python", "python without yadage"])
def test_yadage_without_yadage_is_a_config_error_before_anything_is_created(
    odrun: Any,
    reana: reana_server.ReanaServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    folder = copy_analysis("yadage", tmp_path)
    without(monkeypatch, "yadageschemas")
    monkeypatch.delenv("ODRUN_YADAGE_PYTHON", raising=False)
    if case == "missing python":
        monkeypatch.setenv("ODRUN_YADAGE_PYTHON", str(tmp_path / "no-venv" / "bin" / "python"))
    elif case == "python without yadage":
        without_yadage = tmp_path / "bin" / "python"
        without_yadage.parent.mkdir()
        without_yadage.write_text(f'#!/bin/sh\nexec {sys.executable} -I "$@"\n')
        without_yadage.chmod(0o755)
        monkeypatch.setenv("ODRUN_YADAGE_PYTHON", str(without_yadage))
    res = odrun("submit", str(folder))
    assert res.code == 8, res.err
    assert "ODRUN_YADAGE_PYTHON" in res.err
    assert "pip install yadage" in res.err
    assert reana.workflows == {}


def test_the_yadage_python_setting_expands_the_home_folder() -> None:
    from odrun.settings import Settings

    settings = Settings.load(environ={"ODRUN_YADAGE_PYTHON": "~/venv/bin/python"})
    assert settings.yadage_python == Path.home() / "venv/bin/python"
    assert Settings.load(environ={}).yadage_python is None


def test_upload_set_follows_reana_client(tmp_path: Path) -> None:
    from odrun.workflow import load_analysis

    folder = tmp_path / "ana"
    for rel in ("code/a.py", "code/a.pyc", "code/.odrun/runs/x", "code/sub/b.py", "in.txt"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(rel)
    (folder / ".reanaignore").write_text("*.pyc\n")
    (folder / "reana-serial.yaml").write_text(
        "version: 0.9.0\ninputs:\n  files: [in.txt, in.txt]\n  directories: [code, code/sub]\n"
        "workflow:\n  type: serial\n  specification:\n    steps: [{commands: [ls]}]\n"
    )
    analysis = load_analysis(folder / "reana-serial.yaml")
    got = [rel for rel, _ in specload.upload_set(analysis)]
    assert got == ["reana-serial.yaml", "in.txt", "code/a.py", "code/sub/b.py"]


@pytest.mark.parametrize("case", ["no snakemake", "input not there yet"])
def test_a_snakemake_job_graph_that_cannot_be_built_is_left_out_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    from odrun.settings import Settings
    from odrun.workflow import load_analysis

    folder = tmp_path / "smk"
    folder.mkdir()
    (folder / "Snakefile").write_text(
        'rule all:\n    input: "data/900001/x.csv"\n    output: "out.txt"\n'
        '    shell: "cp {input} {output}"\n'
    )
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\nworkflow:\n  type: snakemake\n  file: Snakefile\n"
    )
    if case == "no snakemake":
        without(monkeypatch, "snakemake")
    said: list[str] = []
    spec = specload.build_spec(load_analysis(folder), Settings(), said.append)
    assert "specification" not in spec["workflow"]
    assert len(said) == 1
    assert "job graph" in said[0]
    assert not (folder / ".snakemake").exists()  # Snakemake's own folder is not left behind
    if case == "input not there yet":
        (folder / "data/900001").mkdir(parents=True)
        (folder / "data/900001/x.csv").write_text("1\n")
        spec = specload.build_spec(load_analysis(folder), Settings(), said.append)
        assert spec["workflow"]["specification"]["job_dependencies"] == {"all": []}
        assert not (folder / ".snakemake").exists()


@pytest.mark.parametrize("where", ["submit", "run"])
def test_an_analysis_never_sees_the_reana_token(
    odrun: Any, reana: reana_server.ReanaServer, tmp_path: Path, where: str
) -> None:
    """A Snakefile's own Python (run on the host to build the job graph for ``submit``) and a
    host step of ``run`` get the environment without REANA_ACCESS_TOKEN: analysis code
    cannot read (and, with the network, send) the user's token."""
    folder = tmp_path / "ana"
    folder.mkdir()
    seen = tmp_path / "seen.txt"
    (folder / "Snakefile").write_text(
        f"import os\nopen({str(seen)!r}, 'a').write(os.environ.get('REANA_ACCESS_TOKEN', '-'))\n"
        'rule all:\n    output: "out.txt"\n    shell: "echo ok > {output}"\n'
    )
    serial = (
        "version: 0.9.0\nworkflow:\n  type: serial\n  specification:\n    steps:\n"
        f"      - environment: docker.io/library/python:3.11-slim\n"
        f"        commands: ['printenv REANA_ACCESS_TOKEN >> {seen} || echo - >> {seen}']\n"
    )
    smk = "version: 0.9.0\nworkflow:\n  type: snakemake\n  file: Snakefile\n"
    (folder / "reana.yaml").write_text(smk if where == "submit" else serial)
    if where == "submit":
        res = odrun("submit", str(folder), "--json")
    else:
        res = odrun("run", str(folder), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert res.code == 0, res.err
    assert seen.read_text().split() in (["-"], ["-", "-"])
    assert reana.token not in seen.read_text()


SMK_REANA = b"version: 0.9.0\nworkflow:\n  type: snakemake\n  file: Snakefile\n"


@pytest.mark.parametrize("how", ["spec files", "code archive"])
def test_submit_never_runs_a_records_snakefile_on_the_host_unless_trusted(
    odrun: Any,
    reana: reana_server.ReanaServer,
    fresh_portal: Any,
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    how: str,
) -> None:
    """``odrun submit`` builds the Snakemake job graph by running the Snakefile's Python on
    the host. For an analysis fetched from a record (``odrun run DOI`` left it in
    ``record-<recid>/``) that is refused (exit 8, nothing created on the server) until the
    user says ``--trust-snakefile``; re-running the folder by its path stays untrusted."""
    import io
    import tarfile

    from conftest import api_doc

    ran = tmp_path / "snakefile-ran.txt"
    snakefile = (
        f"open({str(ran)!r}, 'a').write('ran\\n')\n"
        'rule all:\n    output: "out.txt"\n    shell: "echo ok > {output}"\n'
    ).encode()
    files = {"reana.yaml": SMK_REANA, "Snakefile": snakefile}
    recid = "904" if how == "spec files" else "905"
    if how == "code archive":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in files.items():
                info = tarfile.TarInfo(f"ana/{name}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        files = {"ana.tar.gz": buf.getvalue()}
    uris = [(faults.add(f"/eos/{recid}/{name}", data), data) for name, data in files.items()]
    fresh_portal.overrides[recid] = api_doc(recid, uris)
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)
    monkeypatch.chdir(tmp_path)
    fetched = odrun("run", recid)  # fetched, then refused: a record's Snakefile under auto
    assert fetched.code == 8, fetched.err
    assert not ran.exists()
    folder = tmp_path / f"record-{recid}" / ("ana" if how == "code archive" else "")
    res = odrun("submit", str(folder))
    assert res.code == 8, res.err
    assert "--trust-snakefile" in res.err
    assert not ran.exists()
    assert reana.workflows == {}
    again = odrun("run", str(folder))  # by its path: still the record's analysis
    assert again.code == 8, again.err
    assert not ran.exists()
    res = odrun("submit", str(folder), "--trust-snakefile", "--json")
    assert res.code == 0, res.err
    assert ran.exists()


@pytest.mark.parametrize("how", ["absolute", "climbing"])
def test_submit_never_packs_a_cwl_document_from_outside_the_analysis(
    odrun: Any, reana: reana_server.ReanaServer, tmp_path: Path, how: str
) -> None:
    """``cwltool --pack`` reads every document a workflow names; submit sends what it packed
    to the server. A document outside the analysis folder (a host file) is refused before
    anything is packed or created, as ``odrun run`` refuses it."""
    outside = tmp_path / "host" / "secret.cwl"
    outside.parent.mkdir()
    outside.write_text(
        "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [echo, HOSTSECRET]\n"
        "inputs: []\noutputs: []\n"
    )
    folder = tmp_path / "a"
    folder.mkdir()
    run = str(outside) if how == "absolute" else "../host/secret.cwl"
    (folder / "wf.cwl").write_text(
        "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\n"
        f"steps:\n  s:\n    run: {run}\n    in: {{}}\n    out: []\n"
    )
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  files: [wf.cwl]\nworkflow:\n  type: cwl\n  file: wf.cwl\n"
    )
    res = odrun("submit", str(folder), "--json")
    assert res.code == 2, res.err
    assert "secret.cwl" in res.err
    assert reana.workflows == {}
