"""Fault injection: what fetch does when a server misbehaves; each test asserts the end state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from conftest import api_doc, blob
from fault_server import Fault

MB = 1024 * 1024


@pytest.fixture
def serve_record(fresh_portal, faults, monkeypatch):
    """Publish files on the fault server as record 900 of a fresh portal."""
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)

    def publish(*files: tuple[str, bytes, Fault | None]) -> str:
        uris = [(faults.add(f"/eos/{name}", data, fault), data) for name, data, fault in files]
        fresh_portal.overrides["900"] = api_doc("900", uris)
        return "900"

    return publish


def cache_files(cache: Path) -> list[Path]:
    files = cache / "files"
    return [p for p in files.rglob("*") if p.is_file() and p.suffix not in (".json", ".lock")]


def test_dropped_connection_resumes(odrun, serve_record, faults, tmp_path) -> None:
    data = blob(1, 3 * MB)
    rec = serve_record(("a.root", data, Fault(drop_after=MB, drops=2)))
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--json")
    assert result.code == 0, result.err
    (entry,) = result.json()["results"]
    assert entry["state"] == "downloaded"
    assert entry["resumed_from"] >= MB  # the last attempt continued from the part file
    assert (tmp_path / "a.root").read_bytes() == data
    assert faults.gets["/eos/a.root"] == 3
    assert faults.ranges[-1] == f"bytes={entry['resumed_from']}-{len(data) - 1}"


def test_503_burst_then_success(odrun, serve_record, faults, tmp_path) -> None:
    data = blob(2, 5000)
    rec = serve_record(("b.root", data, Fault(unavailable=3)))
    result = odrun("fetch", rec, "--dest", str(tmp_path))
    assert result.code == 0, result.err
    assert (tmp_path / "b.root").read_bytes() == data
    assert faults.gets["/eos/b.root"] == 4


def test_503_forever_gives_up(odrun, serve_record, faults, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ODRUN_RETRIES", "2")
    rec = serve_record(("c.root", blob(3, 100), Fault(unavailable=99)))
    result = odrun("fetch", rec, "--dest", str(tmp_path))
    assert result.code == 5
    assert "HTTP 503" in result.err
    assert "gave up after 3 attempts" in result.err
    assert faults.gets["/eos/c.root"] == 3
    assert not (tmp_path / "c.root").exists()


def test_stalled_response_times_out_and_resumes(
    odrun, serve_record, faults, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("ODRUN_TIMEOUT", "2")
    data = blob(4, 2 * MB)
    rec = serve_record(("d.root", data, Fault(stall_after=256 * 1024)))
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--json")
    assert result.code == 0, result.err
    assert result.json()["results"][0]["resumed_from"] >= 256 * 1024
    assert (tmp_path / "d.root").read_bytes() == data


def test_wrong_bytes_fail_after_one_fresh_retry(
    odrun, serve_record, faults, tmp_path, isolated_env
) -> None:
    data = blob(5, 100_000)
    wrong = bytearray(data)
    wrong[500] ^= 1
    rec = serve_record(("e.root", data, Fault(wrong_bytes=bytes(wrong))))
    result = odrun("fetch", rec, "--dest", str(tmp_path))
    assert result.code == 4
    assert "e.root" in result.err
    assert f"adler32:{zlib.adler32(data):08x}" in result.err
    assert f"adler32:{zlib.adler32(bytes(wrong)):08x}" in result.err
    assert faults.gets["/eos/e.root"] == 2  # first try + one retry from scratch
    assert not (tmp_path / "e.root").exists()
    assert cache_files(isolated_env) == []  # no part, no entry: nothing unverified kept


def test_too_long_body_is_a_mismatch(odrun, serve_record, faults, tmp_path, isolated_env) -> None:
    data = blob(6, 10_000)
    rec = serve_record(("f.root", data, Fault(wrong_bytes=data + b"extra")))
    result = odrun("fetch", rec, "--dest", str(tmp_path))
    assert result.code == 4
    assert "more bytes than the record declares" in result.err
    assert cache_files(isolated_env) == []


def test_too_short_body_is_retried_then_fails(
    odrun, serve_record, faults, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("ODRUN_RETRIES", "1")
    data = blob(7, 10_000)
    rec = serve_record(("g.root", data, Fault(wrong_bytes=data[:9000])))
    result = odrun("fetch", rec, "--dest", str(tmp_path))
    assert result.code == 5
    assert "nothing from byte 9000 on" in result.err
    assert "shorter than the record declares" in result.err
    assert not (tmp_path / "g.root").exists()


def test_server_ignoring_range(odrun, serve_record, faults, tmp_path) -> None:
    data = blob(8, 2 * MB)
    rec = serve_record(("h.root", data, Fault(drop_after=MB, ignore_range=True)))
    result = odrun("fetch", rec, "--dest", str(tmp_path))
    assert result.code == 0, result.err
    assert (tmp_path / "h.root").read_bytes() == data


def test_404_is_not_retried(odrun, serve_record, faults, tmp_path, fresh_portal) -> None:
    serve_record(("i.root", b"x", None))
    fresh_portal.overrides["900"]["metadata"]["files"][0]["uri"] = f"{faults.url}/eos/none.root"
    result = odrun("fetch", "900", "--dest", str(tmp_path))
    assert result.code == 3
    assert faults.gets["/eos/none.root"] == 1


def _default_sigint() -> None:
    """In the child, before exec: a runner in the background (``cmd &``) ignores SIGINT, and a
    Python started with SIGINT ignored never installs its KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _odrun_process(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "odrun", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,  # noqa: PLW1509 - no threads touch the fork here
    )


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)  # polling an observable condition (file size), bounded


def test_sigint_then_resume(odrun, serve_record, faults, tmp_path, isolated_env) -> None:
    data = blob(9, 16 * MB)
    fault = Fault(rate=2 * MB)  # 8 s to transfer: a wide window for the interrupt
    rec = serve_record(("big.root", data, fault))
    env = dict(os.environ)
    proc = _odrun_process("fetch", rec, "--dest", str(tmp_path), env=env)

    def part_size() -> int:
        parts = list((isolated_env / "files").rglob("*.part"))
        return parts[0].stat().st_size if parts else 0

    _wait_for(lambda: part_size() >= MB)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert not (tmp_path / "big.root").exists()
    kept = part_size()
    assert MB <= kept < len(data)
    fault.rate = None
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--json")
    assert result.code == 0, result.err
    assert result.json()["results"][0]["resumed_from"] == kept
    assert (tmp_path / "big.root").read_bytes() == data


def test_two_processes_share_one_cache(serve_record, faults, tmp_path) -> None:
    files = [(f"p{i}.root", blob(20 + i, 2 * MB), Fault(rate=8 * MB)) for i in range(3)]
    rec = serve_record(*files)
    env = dict(os.environ)
    procs = [
        _odrun_process("fetch", rec, "--dest", str(tmp_path / f"d{n}"), "--json", env=env)
        for n in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    for name, data, _ in files:
        assert faults.gets[f"/eos/{name}"] == 1  # fetched once, shared through the cache
        for n in range(2):
            assert (tmp_path / f"d{n}" / name).read_bytes() == data


def test_modified_destination_does_not_poison_the_cache(odrun, serve_record, tmp_path) -> None:
    data = blob(30, 50_000)
    rec = serve_record(("j.root", data, None))
    first = tmp_path / "first"
    assert odrun("fetch", rec, "--dest", str(first)).code == 0
    target = first / "j.root"
    target.chmod(0o644)
    with target.open("r+b") as fh:  # writes through the hard link, into the cache entry
        fh.write(b"XXXX")
    second = tmp_path / "second"
    result = odrun("fetch", rec, "--dest", str(second), "--json")
    assert result.code == 0, result.err
    assert result.json()["results"][0]["state"] == "downloaded"  # not served from the cache
    assert (second / "j.root").read_bytes() == data


def test_one_bad_uri_does_not_stop_the_others(odrun, serve_record, fresh_portal, tmp_path) -> None:
    good = blob(31, 1000)
    serve_record(("k.root", good, None), ("l.root", b"x", None))
    fresh_portal.overrides["900"]["metadata"]["files"][1]["uri"] = "http://127.0.0.1:8:9/l.root"
    result = odrun("fetch", "900", "--dest", str(tmp_path), "--json")
    assert result.code == 6
    states = {r["path"]: r["state"] for r in result.json()["results"]}
    assert states == {"k.root": "downloaded", "l.root": "failed"}


# -- what is kept for resuming, files without a checksum -----------------------------------


def _no_checksum(fresh_portal, *indices: int) -> None:
    for i in indices:
        fresh_portal.overrides["900"]["metadata"]["files"][i]["checksum"] = None


@pytest.mark.parametrize("without_length", [False, True])
def test_error_page_is_never_kept_as_first_bytes(
    odrun, serve_record, fresh_portal, faults, tmp_path, isolated_env, without_length
) -> None:
    """A 200 with a short HTML page, then correct answers: the page must not stay in the file."""
    data = blob(40, 300_000)
    fault = Fault(html_page=1, html_without_length=without_length)
    rec = serve_record(("nock.root", data, fault))
    _no_checksum(fresh_portal, 0)
    result = odrun("fetch", rec, "--dest", str(tmp_path / "d"), "--json")
    assert result.code == 0, result.err
    (entry,) = result.json()["results"]
    assert (tmp_path / "d" / "nock.root").read_bytes() == data
    assert entry["resumed_from"] == 0  # nothing of the error page was resumed from
    assert faults.ranges == []
    assert entry["integrity"] == "unverified"
    assert result.json()["unverified"] == 1


def test_unverified_files_are_said_so(odrun, serve_record, fresh_portal, tmp_path) -> None:
    rec = serve_record(("ck.root", blob(41, 1000), None), ("nock.root", blob(42, 2000), None))
    _no_checksum(fresh_portal, 1)
    dest = tmp_path / "d"
    fetched = odrun("fetch", rec, "--dest", str(dest), "--json")
    assert fetched.code == 0, fetched.err
    integrity = {r["path"]: r["integrity"] for r in fetched.json()["results"]}
    assert integrity == {"ck.root": "verified", "nock.root": "unverified"}
    human = odrun("fetch", rec, "--dest", str(dest))
    assert "1 unverified (no checksum declared)" in human.err
    checked = odrun("verify-files", str(dest), rec, "--json")
    assert checked.code == 0, checked.err
    verdicts = {f["path"]: f["verdict"] for f in checked.json()["files"]}
    assert verdicts == {"ck.root": "ok", "nock.root": "unverified"}
    assert checked.json()["unverified"] == 1
    lines = odrun("verify-files", str(dest), rec).out.splitlines()
    (line,) = [x for x in lines if "nock.root" in x]
    assert "unverified (no checksum declared)" in line
    assert not line.lower().startswith("ok")
    cache = odrun("cache", "verify")
    assert cache.code == 0
    assert "unverified (no checksum declared)" in cache.out
    assert odrun("cache", "verify", "--json").json()["unverified"] == 1
    # a size the record declares is still checked without a checksum
    wrong = dest / "nock.root"
    wrong.unlink()
    wrong.write_bytes(b"short")
    assert odrun("verify-files", str(dest), rec).code == 4


@pytest.mark.parametrize(
    "lie", [{"range_total_delta": 10}, {"range_total_delta": -10}, {"range_start_delta": -1}]
)
def test_resume_needs_a_matching_content_range(
    odrun, serve_record, fresh_portal, faults, tmp_path, lie
) -> None:
    """A 206 whose Content-Range names another length (or start) is refused, and the bytes
    kept so far are not trusted: the file starts again from byte 0 with a plain GET."""
    data = blob(43, 400_000)
    rec = serve_record(("cr.root", data, Fault(drop_after=128 * 1024, **lie)))
    _no_checksum(fresh_portal, 0)
    result = odrun("fetch", rec, "--dest", str(tmp_path / "d"), "--json")
    assert result.code == 0, result.err
    assert faults.ranges  # a resume was asked for, and its answer refused
    (entry,) = result.json()["results"]
    assert entry["resumed_from"] == 0
    assert (tmp_path / "d" / "cr.root").read_bytes() == data


def test_same_name_twice_is_never_one_file(
    odrun, serve_record, fresh_portal, tmp_path, isolated_env
) -> None:
    """Two different files a record names alike: distinct paths or a metadata error."""
    rec = serve_record(("one.root", blob(44, 1000), None), ("two.root", blob(45, 1000), None))
    for entry in fresh_portal.overrides["900"]["metadata"]["files"]:
        entry["filename"] = "same.root"
    result = odrun("fetch", rec, "--dest", str(tmp_path / "d"), "--json")
    assert result.code == 9, result.out
    assert "same.root" in result.err
    assert not (tmp_path / "d").exists()
