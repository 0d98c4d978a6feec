"""ODRUN_TEST_STRICT=1 (CI sets it): a skip is a failure, unless the test is marked ``network``.

CI must run the real xrootd, podman, Slurm, reana-client, lint and build tests, not skip
them because a tool failed to install. Both kinds of skip count: a test that skips while
it runs, and a module skipped while it is collected (a module-level
``pytest.importorskip`` or ``pytest.skip(allow_module_level=True)``), which no
per-test hook sees. tests/conftest.py imports these hooks; tests/test_strict_mode.py
loads this module as a plugin (``-p strict_mode``) to prove they fail a run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

#: read once at start-up: isolated_env clears ODRUN_* variables while a test runs
STRICT = os.environ.get("ODRUN_TEST_STRICT") == "1"

#: a module that marks all its tests ``network`` (its marks are unknown when it skips
#: while being imported, so its source says it)
_NETWORK_MODULE = re.compile(r"^pytestmark\s*=.*\bmark\.network\b", re.MULTILINE)


def _reason(longrepr: object) -> str:
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def _failed_skip(reason: str) -> str:
    return f"skipped, but ODRUN_TEST_STRICT=1 requires it to run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that skipped while running fails (network-marked tests excepted)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    wanted = "network" not in item.keywords and not hasattr(report, "wasxfail")
    if STRICT and report.skipped and wanted:
        report.outcome = "failed"
        report.longrepr = _failed_skip(_reason(report.longrepr))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """A module skipped while collected fails (network modules excepted)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (STRICT and report.skipped) or _network_module(collector):
        return
    report.outcome = "failed"
    report.longrepr = _failed_skip(_reason(report.longrepr))


def _network_module(collector: pytest.Collector) -> bool:
    if any(True for _ in collector.iter_markers("network")):
        return True
    path = getattr(collector, "path", None)
    if not isinstance(path, Path) or not path.is_file():
        return False
    try:
        return bool(_NETWORK_MODULE.search(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError):
        return False
