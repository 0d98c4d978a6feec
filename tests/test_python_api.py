"""The public Python API: lazy and light, typed, complete; docs/python-api.md's example runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "python-api.md"
API = ("resolve", "fetch", "run", "verify", "submit", "diff")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_documented_example_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every python block of docs/python-api.md, in order, in one namespace (as a notebook
    runs its cells), from a copy of the repository's workflows: the bundled mirror only."""
    for name in ("dimuon-demo", "mirror"):
        shutil.copytree(ROOT / "workflows" / name, tmp_path / "workflows" / name,
                        ignore=shutil.ignore_patterns(".odrun"))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ODRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ODRUN_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text("")
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5, "the notebook example lost its cells"
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for n, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} block {n}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "verdict: all expectations hold" in out
    assert "PASS Z peak fit" in out
    assert "InvalidReferenceError 2" in out
    assert "latest run: run " in out
    assert "diff: runs agree: 3 outputs identical" in out
    assert (tmp_path / "data" / "900001" / "Dimuon_generated.csv").is_file()


def test_api_is_exported_typed_and_documented() -> None:
    import odrun
    from odrun import api

    for name in API:
        assert name in odrun.__all__, name
        assert name in dir(odrun), name
        func = getattr(odrun, name)
        assert callable(func), name
        if name != "resolve":  # odrun.resolve is odrun.records.resolve (the README's example)
            assert "Example::" in (func.__doc__ or ""), f"{name} has no example"
        assert name in DOC.read_text(encoding="utf-8"), name
    assert odrun.fetch is api.fetch
    assert odrun.run is api.run
    for name in odrun.__all__:
        assert getattr(odrun, name) is not None, name
    assert set(odrun.__all__) <= set(dir(odrun))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = odrun.nope  # type: ignore[attr-defined]
    assert (ROOT / "odrun" / "py.typed").is_file()


def test_api_returns_dataclasses() -> None:
    import dataclasses
    import typing

    import odrun

    for name in API:
        hints = typing.get_type_hints(getattr(odrun, name))
        returned = hints["return"]
        assert dataclasses.is_dataclass(returned), f"odrun.{name} returns {returned}"


def test_import_odrun_stays_light() -> None:
    code = (
        "import sys, odrun; "
        "print(' '.join(m for m in ('httpx', 'rich', 'jsonschema', 'click', 'yaml', "
        "'odrun.records', 'odrun.workflow', 'odrun.api') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "", f"import odrun loaded: {proc.stdout.strip()}"


def test_wheel_ships_py_typed(tmp_path: Path) -> None:
    """The wheel holds odrun/py.typed (PEP 561), so type checkers use odrun's annotations."""
    wheel = pytest.importorskip("hatchling.builders.wheel")
    import zipfile

    (built,) = wheel.WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    names = zipfile.ZipFile(built).namelist()
    assert "odrun/py.typed" in names
    assert "odrun/api.py" in names


def test_fetch_raises_typed_errors_and_writes_no_bad_file(tmp_path: Path) -> None:
    import odrun
    from odrun.errors import ChecksumError

    mirror = tmp_path / "mirror"
    shutil.copytree(ROOT / "workflows" / "mirror", mirror)
    data = mirror / "files" / "900001" / "Dimuon_generated.csv"
    data.write_bytes(data.read_bytes()[:-3] + b"999")  # same size, wrong checksum
    settings = odrun.Settings.load(
        {"portal_url": mirror.as_uri(), "cache_dir": str(tmp_path / "cache")}
    )
    notes: list[str] = []
    with pytest.raises(ChecksumError) as err:
        odrun.fetch("900001", tmp_path / "out", settings=settings, say=notes.append)
    assert err.value.exit_code == 4
    assert not (tmp_path / "out" / "Dimuon_generated.csv").exists()
