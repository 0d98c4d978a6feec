"""Configuration comes only through Settings: no module reads the environment itself."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from odrun.settings import Settings

import reana_server

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "odrun"
#: settings.py is the door; transfer/xrootd.py sets XRootD's own variables (another change
#: moves it); apptainer_shim.py is a separate standard-library program Snakemake runs
ENV_ALLOWED = {
    "odrun/settings.py",
    "odrun/transfer/xrootd.py",
    "odrun/workflow/apptainer_shim.py",
}
ENV_ACCESS = re.compile(
    r"\bos\.(environ|getenv|putenv|unsetenv|environb)\b"
    r"|\bfrom os import\b.*\b(environ|getenv)\b"
    r"|\bgetenv\("
)


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_environment_only_through_settings(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    if rel in ENV_ALLOWED:
        return
    hits = [
        f"{rel}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ENV_ACCESS.search(line)
    ]
    assert not hits, "environment used outside odrun/settings.py (use Settings):\n" + "\n".join(
        hits
    )


def test_reana_and_cvmfs_variables_are_settings(tmp_path: Path) -> None:
    env = {
        "REANA_SERVER_URL": "https://reana.example",
        "REANA_ACCESS_TOKEN": "tok-123",
        "REANA_WORKON": "dimuon-demo.2",
        "ODRUN_CVMFS_ROOT": str(tmp_path),
        "ODRUN_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    settings = Settings.load(environ=env)
    assert settings.reana_server_url == "https://reana.example"
    assert settings.reana_access_token == "tok-123"
    assert settings.reana_workon == "dimuon-demo.2"
    assert settings.cvmfs_root == tmp_path
    assert "tok-123" not in repr(settings)  # a token never shows in a repr or a log
    bare = Settings.load(environ={"ODRUN_CONFIG": env["ODRUN_CONFIG"]})
    assert bare.reana_server_url is None
    assert bare.cvmfs_root == Path("/cvmfs")


def test_cvmfs_root_follows_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from odrun import cvmfs

    assert cvmfs.root(Settings(cvmfs_root=tmp_path)) == tmp_path
    monkeypatch.setenv("ODRUN_CVMFS_ROOT", str(tmp_path / "env"))
    assert cvmfs.root() == tmp_path / "env"


def test_reana_workon_names_the_workflow_when_run_is_omitted(
    odrun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with reana_server.serve(tmp_path / "srv") as server:
        wid = str(uuid.uuid4())
        workspace = tmp_path / "srv" / wid
        (workspace / "results").mkdir(parents=True)
        (workspace / "results" / "out.txt").write_text("done\n")
        server.workflows[wid] = reana_server.Workflow(
            wid, "worked-on", 1, {}, workspace, "2026-01-01T00:00:00", status="finished"
        )
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("REANA_WORKON", raising=False)
        missing = odrun("status")
        assert missing.code == 2, missing.err
        assert "REANA_WORKON" in missing.err
        monkeypatch.setenv("REANA_WORKON", "worked-on.1")
        status = odrun("status", "--json")
        assert status.code == 0, status.err
        assert status.json()["workflow_id"] == wid
        got = odrun("download", "--output-dir", "out")
        assert got.code == 0, got.err
        assert (tmp_path / "out" / "results" / "out.txt").read_text() == "done\n"
        assert server.violations == []
