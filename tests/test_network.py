"""Optional checks against the live CERN Open Data portal (run with ODRUN_TEST_NETWORK=1)."""

from __future__ import annotations

import pytest

from odrun import Settings, resolve

pytestmark = pytest.mark.network


def test_live_portal_resolves_doi() -> None:
    record = resolve("10.7483/OPENDATA.CMS.A342.9982", Settings.load())
    assert record.recid == "1"
    assert record.file_count == 2916
    assert record.files_complete


def test_live_portal_record_3005() -> None:
    record = resolve("3005", Settings.load())
    assert record.files[0].size == 3644
    assert str(record.files[0].checksum) == "adler32:be83a186"


def test_dimuon_analysis_on_real_cms_data(odrun, tmp_path) -> None:
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent / "workflows"
    shutil.copytree(repo / "dimuon-cms", tmp_path / "dimuon-cms", symlinks=False)
    result = odrun("run", str(tmp_path / "dimuon-cms"), "--runtime", "host", "--verify", "--json")
    assert result.code == 0, result.err
    assert result.json()["verified"] is True


def test_provenance_passes_the_ro_crate_validator(odrun, tmp_path) -> None:
    """The official validator fetches the JSON-LD context, so it needs the network."""
    import shutil
    import subprocess
    from pathlib import Path

    validator = shutil.which("rocrate-validator")
    if validator is None:
        pytest.skip("pip install roc-validator to run this check")
    repo = Path(__file__).resolve().parent.parent / "workflows"
    shutil.copytree(repo / "dimuon-demo", tmp_path / "dimuon-demo")
    shutil.copytree(repo / "mirror", tmp_path / "mirror")
    run = tmp_path / "run"
    assert (
        odrun("run", str(tmp_path / "dimuon-demo"), "--runtime", "host", "--workdir", str(run)).code
        == 0
    )
    proc = subprocess.run(
        [validator, "-y", "validate", "-p", "ro-crate-1.1", "--no-paging", str(run)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]
