"""ODRUN_TEST_STRICT=1 (CI) turns every skip into a failure, collection-time skips included
(a module-level ``pytest.importorskip`` of a tool that failed to install), except for
tests marked ``network``. Checked by running pytest on small test files in a subprocess,
with the same hooks tests/conftest.py uses (tests/strict_mode.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

MISSING_AT_IMPORT = """\
import pytest

pytest.importorskip("odrun_no_such_module_for_this_test")


def test_never_collected() -> None:
    assert True
"""

NETWORK_MODULE = """\
import pytest

pytestmark = pytest.mark.network
pytest.importorskip("odrun_no_such_module_for_this_test")


def test_needs_the_internet() -> None:
    assert True
"""

SKIPPED_AT_RUN = """\
import pytest


def test_skips() -> None:
    pytest.skip("the tool is missing")
"""

PASSES = """\
def test_fine() -> None:
    assert True
"""


def pytest_run(
    tmp_path: Path, files: dict[str, str], strict: bool
) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    network: needs the live internet\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRUN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    if strict:
        env["ODRUN_TEST_STRICT"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "strict_mode", "-p", "no:cacheprovider",
         "-q", "-rA", "--rootdir", str(tmp_path), *files],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_module_level_importorskip_fails_in_strict_mode(tmp_path: Path) -> None:
    files = {"test_missing.py": MISSING_AT_IMPORT, "test_fine.py": PASSES}
    strict = pytest_run(tmp_path, files, strict=True)
    assert strict.returncode != 0, strict.stdout + strict.stderr
    assert "ODRUN_TEST_STRICT=1 requires it to run" in strict.stdout
    assert "odrun_no_such_module_for_this_test" in strict.stdout
    # the negative control: the same files without strict mode pass (a skip)
    relaxed = pytest_run(tmp_path, files, strict=False)
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    assert "1 passed, 1 skipped" in relaxed.stdout


def test_run_time_skip_fails_in_strict_mode(tmp_path: Path) -> None:
    strict = pytest_run(tmp_path, {"test_skips.py": SKIPPED_AT_RUN}, strict=True)
    assert strict.returncode != 0, strict.stdout
    assert "the tool is missing" in strict.stdout
    assert pytest_run(tmp_path, {"test_skips.py": SKIPPED_AT_RUN}, strict=False).returncode == 0


def test_network_module_may_skip_at_collection(tmp_path: Path) -> None:
    strict = pytest_run(tmp_path, {"test_net.py": NETWORK_MODULE, "test_fine.py": PASSES}, True)
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert "1 passed, 1 skipped" in strict.stdout
