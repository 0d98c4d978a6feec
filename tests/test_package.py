"""The installed package: python -m odrun, console script, version, public API, schemas."""

from __future__ import annotations

import subprocess
import sys

import odrun
from odrun.specs import load_spec


def test_python_m_odrun_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "odrun", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"odrun, version {odrun.__version__}"


def test_public_api() -> None:
    """The names docs/python-api.md documents are exported, are the library's own objects, and
    the documented example works (against the bundled mirror: no network)."""
    from pathlib import Path

    from odrun import errors, records, settings
    from odrun.records import model

    expected = {
        "resolve": records.resolve,
        "Resolver": records.Resolver,
        "Record": model.Record,
        "RecordFile": model.RecordFile,
        "Settings": settings.Settings,
        "OdrunError": errors.OdrunError,
    }
    for name, obj in expected.items():
        assert name in odrun.__all__, name
        assert getattr(odrun, name) is obj, name
    mirror = Path(__file__).parent.parent / "workflows" / "mirror"
    config = odrun.Settings.load({"portal_url": mirror.as_uri(), "offline": True})
    record = odrun.resolve("10.7483/OPENDATA.CMS.A342.9982", config)
    assert isinstance(record, odrun.Record)
    assert record.file_count == 2916
    assert all(isinstance(f, odrun.RecordFile) for f in record.files)
    assert issubclass(errors.NotFoundError, odrun.OdrunError)


def test_specs_are_valid_json_schemas() -> None:
    import jsonschema

    for name in ("record.schema.json", "portal-record.schema.json"):
        jsonschema.Draft202012Validator.check_schema(load_spec(name))


def test_bundled_demo_mirror(odrun) -> None:
    from pathlib import Path

    mirror = Path(__file__).parent.parent / "workflows" / "mirror"
    result = odrun(
        "--portal", f"file://{mirror}", "info", "10.7483/OPENDATA.CMS.A342.9982", "--json"
    )
    assert result.code == 0, result.err
    assert result.json()["file_count"] == 2916


def test_global_options_after_the_command(odrun, mirror_dir, tmp_path) -> None:
    result = odrun("files", "3005", "--portal", f"file://{mirror_dir}", "--offline", "--json")
    assert result.code == 0, result.err
    assert result.json()["files"][0]["size"] == 3644
