"""odrun run TARGET: records that ship their analysis (spec files, or a code archive)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from conftest import api_doc

REANA = b"""\
inputs:
  files: [code.py]
  parameters: {who: record}
workflow:
  type: serial
  specification:
    steps:
      - name: hello
        environment: docker.io/library/python:3.11-slim
        commands: ["mkdir -p out && python3 code.py $who > out/result.txt"]
outputs:
  files: [out/result.txt]
"""
CODE = b"import sys\nprint('hello from the', sys.argv[1])\n"


def tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def publish(fresh_portal, faults, monkeypatch, tmp_path):
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)
    monkeypatch.chdir(tmp_path)

    def put(recid: str, files: dict[str, bytes]) -> str:
        uris = [(faults.add(f"/eos/{recid}/{name}", data), data) for name, data in files.items()]
        fresh_portal.overrides[recid] = api_doc(recid, uris)
        return recid

    return put


def test_record_shipping_its_spec(odrun, publish, tmp_path: Path, faults) -> None:
    rec = publish("901", {"reana.yaml": REANA, "code.py": CODE, "big-data.root": b"x" * 5000})
    result = odrun("run", rec, "--runtime", "host", "--json")
    assert result.code == 0, result.err
    out = Path(result.json()["run_dir"]) / "workspace" / "out" / "result.txt"
    assert out.read_text() == "hello from the record\n"
    assert (tmp_path / "record-901" / "reana.yaml").read_bytes() == REANA
    assert faults.gets["/eos/901/big-data.root"] == 0  # not an input of the analysis
    assert not (tmp_path / "record-901" / "big-data.root").exists()


def test_record_shipping_a_code_archive(odrun, publish, tmp_path: Path) -> None:
    archive = tarball({"analysis/reana.yaml": REANA, "analysis/code.py": CODE})
    rec = publish("902", {"analysis.tar.gz": archive, "README.txt": b"read me"})
    result = odrun("run", rec, "--runtime", "host", "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "record-902" / "analysis" / "code.py").read_bytes() == CODE


def test_archive_escaping_its_folder_is_refused(odrun, publish, tmp_path: Path) -> None:
    rec = publish("903", {"evil.tar.gz": tarball({"../../escaped.txt": b"x", "reana.yaml": REANA})})
    result = odrun("run", rec, "--runtime", "host")
    assert result.code == 9, result.err
    assert "would escape" in result.err
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_record_without_analysis(odrun, publish) -> None:
    rec = publish("904", {"data.csv": b"a,b\n1,2\n"})
    result = odrun("run", rec, "--runtime", "host")
    assert result.code == 3
    assert "record 904 ships no analysis" in result.err


def test_record_analysis_never_falls_back_to_the_host_silently(
    odrun, publish, tmp_path: Path, monkeypatch
) -> None:
    rec = publish("905", {"reana.yaml": REANA, "code.py": CODE})
    (tmp_path / "no-containers").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-containers"))  # no podman/docker/apptainer
    result = odrun("run", rec, "--runtime", "auto")
    assert result.code == 8, result.err
    assert "would run on the host" in result.err
    assert "--runtime host" in result.err


def test_run_by_recid_option(odrun, publish, tmp_path: Path) -> None:
    """cernopendata-client's --recid names the record whose analysis runs, as TARGET does."""
    rec = publish("903", {"reana.yaml": REANA, "code.py": CODE})
    result = odrun("run", "--recid", rec, "--runtime", "host", "--json")
    assert result.code == 0, result.err
    out = Path(result.json()["run_dir"]) / "workspace" / "out" / "result.txt"
    assert out.read_text() == "hello from the record\n"
    assert (tmp_path / "record-903" / "reana.yaml").read_bytes() == REANA
