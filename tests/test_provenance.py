"""The provenance record passes the RO-Crate community validator (Workflow Run Crate 0.5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rocrate_validator

PROFILE = "workflow-run-crate-0.5"


@pytest.fixture(scope="session")
def validator() -> None:
    reason = rocrate_validator.ensure()
    if reason:
        pytest.skip(f"roc-validator unavailable: {reason}")


@pytest.fixture
def crate_dir(odrun, demo: Path) -> Path:
    run = odrun("run", str(demo), "--runtime", "host", "--json")
    assert run.code == 0, run.err
    return Path(run.json()["run_dir"])


def test_run_crate_passes_the_validator(validator: None, crate_dir: Path) -> None:
    report = rocrate_validator.validate(crate_dir, PROFILE)
    assert report["issues"] == []
    assert report["passed"] is True
    stats = report["statistics"]
    assert PROFILE in stats["profiles"]
    assert "ro-crate-1.1" in stats["profiles"]
    assert stats["total_passed_requirements"] >= 20
    assert stats["total_failed_requirements"] == 0


def test_validator_catches_a_broken_crate(validator: None, crate_dir: Path) -> None:
    path = crate_dir / "ro-crate-metadata.json"
    crate = json.loads(path.read_text())
    root = next(n for n in crate["@graph"] if n["@id"] == "./")
    del root["description"]
    root["hasPart"] = root["hasPart"][:1]  # the records and files no longer linked
    path.write_text(json.dumps(crate))
    report = rocrate_validator.validate(crate_dir, PROFILE)
    assert report["passed"] is False
    messages = " ".join(issue["message"] for issue in report["issues"])
    assert "MUST have a `description`" in messages
