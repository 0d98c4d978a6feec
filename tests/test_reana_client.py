"""Fidelity: the real reana-client 0.9.6 (its own venv) drives the local REANA test server.

reana-client pins snakemake 7 and jsonschema 3, so it lives in a venv of its own
(``/var/tmp/odrun-reana-client-venv``, made by tests/run or here, reused when
present). Its bravado client checks the server's answers against the same
OpenAPI document; the server checks the client's requests. One relaxation: the
client sends an undeclared ``file_name`` query parameter on downloads, so
undeclared query parameters are not flagged in this test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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
