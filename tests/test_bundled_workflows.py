"""The analyses bundled in workflows/: valid, self-contained, and runnable up to the network.

workflows/dimuon-cms reads a real CMS record (5201) from the live portal; offline it must
get as far as resolving that record and fail there with a transport error (exit 5), never
with a specification error.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
SPECS = ("reana.yaml", "odrun.yaml")
BUNDLED = sorted(p.name for p in WORKFLOWS.iterdir() if any((p / s).is_file() for s in SPECS))


@pytest.fixture
def workflows(tmp_path: Path) -> Path:
    """A copy of workflows/ as it is in the repository: links stay links."""
    shutil.copytree(WORKFLOWS, tmp_path / "workflows", symlinks=True,
                    ignore=shutil.ignore_patterns(".odrun"))  # fmt: skip
    return tmp_path / "workflows"


def test_the_bundled_analyses_are_found() -> None:
    assert {"dimuon-demo", "dimuon-cms"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_analysis_is_valid_and_self_contained(odrun, name: str) -> None:
    folder = WORKFLOWS / name
    result = odrun("validate", str(folder))
    assert result.code == 0, result.out + result.err
    assert "0 errors" in result.err
    top = folder.resolve()
    for path in folder.rglob("*"):
        if ".odrun" in path.parts:
            continue
        assert path.resolve().is_relative_to(top), f"{path} leads outside {folder}"


def test_dimuon_cms_shares_the_demo_code_byte_for_byte() -> None:
    """The analysis code is copied in (a link out of the folder cannot be staged): the
    copy must not drift from the demo's."""
    cms = WORKFLOWS / "dimuon-cms" / "analysis" / "dimuon.py"
    assert not cms.is_symlink()
    assert cms.read_bytes() == (WORKFLOWS / "dimuon-demo" / "analysis" / "dimuon.py").read_bytes()


def assert_failed_at_the_record(odrun_result, cms: Path, why: str) -> None:
    assert odrun_result.code == 5, odrun_result.err  # transport, not 2 (spec) or 7 (step)
    assert "invalid specification" not in odrun_result.err
    assert why in odrun_result.err
    (run_dir,) = sorted((cms / ".odrun" / "runs").iterdir())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed"
    assert record["steps"] == []  # no step ran
    assert (run_dir / "workspace" / "analysis" / "dimuon.py").is_file()  # code was staged


def test_dimuon_cms_offline_fails_at_the_record_not_the_spec(odrun, workflows: Path) -> None:
    cms = workflows / "dimuon-cms"
    assert odrun("validate", str(cms)).code == 0
    result = odrun("--offline", "run", str(cms), "--runtime", "host", "--verify")
    assert_failed_at_the_record(result, cms, "--offline")
    assert "5201" in result.err


def test_dimuon_cms_portal_unreachable_is_a_transport_error(
    odrun, workflows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ODRUN_RETRIES", "0")
    cms = workflows / "dimuon-cms"
    result = odrun("--portal", f"http://127.0.0.1:{port}", "run", str(cms), "--runtime", "host")
    assert_failed_at_the_record(result, cms, f"127.0.0.1:{port}")
