"""Shared fixtures: an isolated environment, a local portal on 127.0.0.1, a file:// mirror."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# ODRUN_TEST_STRICT=1: skips fail, at run time and at collection (tests/strict_mode.py)
from strict_mode import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

from odrun.cli import main

import portal_server

RECIDS = portal_server.all_recids()
REPO = Path(__file__).resolve().parent.parent


LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def no_remote_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach a host other than loopback (unless marked network)."""
    import socket

    if request.node.get_closest_marker("network"):
        return
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not str(host).startswith(LOOPBACK):
            raise socket.gaierror(f"test guard: no network access to {host!r} in tests")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user config, a fresh cache, fast retries; nothing from the developer's shell."""
    import os

    for key in list(os.environ):
        if key.startswith("ODRUN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("ODRUN_CACHE_DIR", str(cache))
    monkeypatch.setenv("ODRUN_RETRY_BACKOFF", "0.01")
    monkeypatch.setenv("ODRUN_TIMEOUT", "5")
    # XRootD reads these once per process: the same values for every test, whatever the order
    monkeypatch.setenv("XRD_CONNECTIONWINDOW", "2")
    monkeypatch.setenv("XRD_CONNECTIONRETRY", "1")
    return cache


@pytest.fixture(scope="session")
def portal() -> Iterator[portal_server.PortalServer]:
    with portal_server.serve() as server:
        yield server


@pytest.fixture
def fresh_portal() -> Iterator[portal_server.PortalServer]:
    """A portal of the test's own, for counting requests and injecting faults."""
    with portal_server.serve() as server:
        yield server


@pytest.fixture(scope="session")
def raw_portal() -> Iterator[portal_server.PortalServer]:
    """A portal that lists raw index.json files instead of expanding them."""
    with portal_server.serve(raw=True) as server:
        yield server


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A copy of the demo analysis and the bundled mirror (runs write into the analysis)."""
    import shutil

    shutil.copytree(REPO / "workflows" / "dimuon-demo", tmp_path / "dimuon-demo",
                    ignore=shutil.ignore_patterns(".odrun"))  # fmt: skip
    shutil.copytree(REPO / "workflows" / "mirror", tmp_path / "mirror")
    return tmp_path / "dimuon-demo"


@pytest.fixture(scope="session")
def podman_ready() -> str:
    """The local test image (built once from debootstrap, no registry); skip if podman can't."""
    import podman_image

    reason = podman_image.ensure_image()
    if reason:
        pytest.skip(reason)
    return podman_image.IMAGE


@pytest.fixture(scope="session")
def podman_node_ready(podman_ready: str) -> str:
    """The local test image with node in it (a CWL expression engine), no registry."""
    import podman_image

    reason = podman_image.ensure_node_image()
    if reason:
        pytest.skip(reason)
    return podman_image.NODE_IMAGE


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Any]:
    """A private Docker daemon (tests/docker_daemon.py) for the session, or a clear skip."""
    import docker_daemon

    reason = docker_daemon.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with docker_daemon.run_dockerd() as daemon:
        yield daemon


@pytest.fixture
def docker_ready(dockerd: Any, podman_ready: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The podman test image loaded into the private dockerd, and DOCKER_HOST pointing at it
    (the docker CLI odrun starts reads it; odrun itself does not)."""
    import docker_daemon

    reason = docker_daemon.load_image(dockerd, podman_ready)
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    return podman_ready


@pytest.fixture(scope="session")
def mirror_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return portal_server.write_mirror(tmp_path_factory.mktemp("mirror"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def odrun(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run the real CLI entry point in-process; returns exit code, stdout, stderr."""

    def run(*args: str) -> Result:
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Result(code if isinstance(code, int) else 1, captured.out, captured.err)

    return run


@dataclass(frozen=True)
class Expected:
    uris: list[str]
    total_size: int
    complete: bool
    doi: str | None


def expected(recid: str) -> Expected:
    """What a record's file list must be, computed straight from the fixture files."""
    source = portal_server.load_source(recid)
    uris, size, complete = [], 0, True
    index_uris: list[str] = []
    for f in source.get("files", []):
        kind = f.get("type")
        if kind == "index.json":
            copy_ = portal_server.index_copy(recid, f["uri"])
            if copy_ is None:
                complete = False
                continue
            for entry in json.loads(copy_.read_text()):
                index_uris.append(entry["uri"])
                size += entry["size"]
        elif kind != "index.txt":
            uris.append(f["uri"])
            size += f["size"]
    return Expected(uris + index_uris, size, complete, source.get("doi") or None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``network`` need the live portal: skipped unless ODRUN_TEST_NETWORK=1."""
    import os

    if os.environ.get("ODRUN_TEST_NETWORK") == "1":
        return
    skip = pytest.mark.skip(reason="needs the live network; set ODRUN_TEST_NETWORK=1 to run")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


def api_doc(recid: str, files: list[tuple[str, bytes]], *, indexed: bool = False) -> dict[str, Any]:
    """An API record document listing ``files`` (URI, content) with their real adler32."""
    import zlib

    entries = [
        {"uri": uri, "size": len(data), "checksum": f"adler32:{zlib.adler32(data):08x}"}
        for uri, data in files
    ]
    meta: dict[str, Any] = {
        "recid": recid,
        "title": f"generated test record {recid}",
        "experiment": ["CMS"],
        "type": {"primary": "Dataset", "secondary": ["Derived"]},
        "files": [] if indexed else entries,
        "_file_indices": [{"key": f"r{recid}_file_index", "files": entries}] if indexed else [],
    }
    return {"id": recid, "metadata": meta}


def blob(seed: int, size: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="session")
def xrd() -> Iterator[Any]:
    """The real xrootd daemon on loopback (root:// + HTTP), or a clear skip."""
    import shutil
    import tempfile

    import xrootd_server

    reason = xrootd_server.unavailable_reason()
    if reason:
        pytest.skip(reason)
    # not under pytest's basetemp: another pytest session resets that tree to mode 0700,
    # and the daemon (its own user) must traverse every parent folder
    base = Path(tempfile.mkdtemp(prefix="odrun-xrootd-", dir="/var/tmp"))
    try:
        with xrootd_server.run_xrootd(base / "srv") as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def faults() -> Iterator[Any]:
    import fault_server

    with fault_server.serve() as server:
        yield server
