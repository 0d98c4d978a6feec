"""odrun fetch against the real xrootd daemon: root:// (bindings and xrdcp) and its HTTP port."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from conftest import api_doc, blob

SIZES = [0, 1, 1000, 65_536, 1_000_003, 9 * 1024 * 1024 + 7]


@pytest.fixture(scope="session")
def dataset(xrd) -> list[tuple[str, bytes]]:
    files = []
    for i, size in enumerate(SIZES):
        data = blob(i, size)
        name = f"ds/run{i % 2}/file{i}.root"
        xrd.add(name, data)
        files.append((xrd.uri(name), data))
    return files


@pytest.fixture
def record(fresh_portal, xrd, dataset, monkeypatch) -> str:
    fresh_portal.overrides["777"] = api_doc("777", dataset, indexed=True)
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", xrd.protocol_map)
    return "777"


def assert_fetched(dest: Path, dataset: list[tuple[str, bytes]]) -> None:
    for uri, data in dataset:
        path = dest / uri.rsplit("/", 1)[-1]
        assert path.read_bytes() == data
    assert not list(dest.rglob("*.part"))


@pytest.mark.parametrize("protocol", ["root", "https", "auto"])
def test_fetch_verifies_and_caches(
    odrun, record, dataset, tmp_path, protocol, isolated_env
) -> None:
    dest = tmp_path / "d"
    result = odrun("fetch", record, "--dest", str(dest), "--protocol", protocol, "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["downloaded"] == len(SIZES)
    assert report["bytes_transferred"] == sum(SIZES)
    expected_transport = {"root": "xrootd", "https": "https", "auto": "xrootd"}[protocol]
    assert {r["transport"] for r in report["results"]} == {expected_transport}
    assert_fetched(dest, dataset)
    # again, elsewhere: everything comes from the shared cache as hard links
    other = tmp_path / "other"
    again = odrun("fetch", record, "--dest", str(other), "--json").json()
    assert again["cached"] == len(SIZES)
    assert again["bytes_transferred"] == 0
    assert_fetched(other, dataset)
    first = other / "file5.root"
    assert os.stat(first).st_ino == os.stat(dest / "file5.root").st_ino
    assert os.stat(first).st_nlink >= 3  # cache entry + two destinations


def test_xrdcp_fallback_without_bindings(odrun, record, dataset, tmp_path, monkeypatch) -> None:
    from odrun.transfer import xrootd

    monkeypatch.setattr(xrootd, "bindings", lambda: None)
    result = odrun("fetch", record, "--dest", str(tmp_path / "d"), "--protocol", "root", "--json")
    assert result.code == 0, result.err
    assert {r["transport"] for r in result.json()["results"]} == {"xrdcp"}
    assert_fetched(tmp_path / "d", dataset)


def test_auto_falls_back_to_https(odrun, fresh_portal, xrd, dataset, tmp_path, monkeypatch) -> None:
    import socket

    holder = socket.socket()  # bound, never listening: connections are refused
    holder.bind(("127.0.0.1", 0))
    request_cleanup = holder.close
    dead = f"root://127.0.0.1:{holder.getsockname()[1]}"
    moved = [(uri.replace(xrd.root_url, dead), data) for uri, data in dataset[1:4]]
    fresh_portal.overrides["778"] = api_doc("778", moved)
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", f"{dead}={xrd.http_url}")
    monkeypatch.setenv("XRD_CONNECTIONRETRY", "1")
    monkeypatch.setenv("XRD_CONNECTIONWINDOW", "2")
    result = odrun("--portal", fresh_portal.url, "fetch", "778", "--dest", str(tmp_path), "--json")
    assert result.code == 0, result.err
    request_cleanup()
    assert {r["transport"] for r in result.json()["results"]} == {"https"}, result.out


def test_missing_file_fails_clearly(
    odrun, fresh_portal, xrd, dataset, tmp_path, monkeypatch
) -> None:
    files = [*dataset[:2], (xrd.uri("ds/nope.root"), b"x")]
    fresh_portal.overrides["779"] = api_doc("779", files)
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", xrd.protocol_map)
    result = odrun("--portal", fresh_portal.url, "fetch", "779", "--dest", str(tmp_path), "--json")
    assert result.code == 6  # some failed, the rest are in place
    states = {r["path"]: r["state"] for r in result.json()["results"]}
    assert states["nope.root"] == "failed"
    assert not (tmp_path / "nope.root").exists()
    assert (tmp_path / "file0.root").exists()
    only_missing = api_doc("780", [(xrd.uri("ds/nope.root"), b"x")])
    fresh_portal.overrides["780"] = only_missing
    result = odrun("--portal", fresh_portal.url, "fetch", "780", "--dest", str(tmp_path))
    assert result.code == 3
    assert "nothing could be fetched" in result.err


def test_verify_files(odrun, record, dataset, tmp_path) -> None:
    dest = tmp_path / "v"
    assert odrun("fetch", record, "--dest", str(dest), "--protocol", "https").code == 0
    ok = odrun("verify-files", str(dest), record, "--json")
    assert ok.code == 0, ok.err
    assert {f["verdict"] for f in ok.json()["files"]} == {"ok"}
    victim = dest / "file4.root"
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.unlink()  # break the hard link: the cache entry stays intact
    victim.write_bytes(bytes(data))
    bad = odrun("verify-files", str(dest), record)
    assert bad.code == 4
    assert "checksum mismatch" in bad.out
    expected = f"adler32:{zlib.adler32(dataset[4][1]):08x}"
    assert expected in bad.out
    (dest / "file2.root").unlink()
    victim.unlink()
    missing = odrun("verify-files", str(dest), record)
    assert missing.code == 3
    cache_ok = odrun("cache", "verify")
    assert cache_ok.code == 0, cache_ok.err


def test_cache_commands(odrun, record, tmp_path, isolated_env) -> None:
    assert odrun("fetch", record, "--dest", str(tmp_path / "c")).code == 0
    listing = odrun("cache", "ls", "--json").json()
    assert len(listing) == len(SIZES)
    assert all(e["recid"] == record for e in listing)
    assert odrun("cache", "path").out.strip() == str(isolated_env)
    entry = Path(listing[0]["path"])
    entry.chmod(0o644)
    entry.write_bytes(b"corrupted")
    bad = odrun("cache", "verify")
    assert bad.code == 4
    assert odrun("cache", "verify", "--remove-bad").code == 0
    assert len(odrun("cache", "ls", "--json").json()) == len(SIZES) - 1
    gc = odrun("cache", "gc", "--max-size", "2M", "--json")
    assert gc.code == 0
    remaining = odrun("cache", "ls", "--json").json()
    assert sum(e["size"] for e in remaining) <= 2_000_000


def test_dry_run_transfers_nothing(odrun, record, tmp_path) -> None:
    result = odrun("fetch", record, "--dest", str(tmp_path / "dry"), "--dry-run", "--json")
    assert result.code == 0
    assert result.json()["planned"] == len(SIZES)
    assert not (tmp_path / "dry").exists()


def test_mirror_with_files_is_a_movable_fetch_source(odrun, record, dataset, tmp_path) -> None:
    mirror = tmp_path / "m"
    made = odrun("mirror", record, "--to", str(mirror), "--with-files", "--json")
    assert made.code == 0, made.err
    assert made.json()[0]["fetch"]["downloaded"] == len(SIZES)
    doc = (mirror / f"{record}.json").read_text()
    assert '"uri": "file:files/777/' in doc
    assert '"original_uri": "root://127.0.0.1:' in doc
    moved = tmp_path / "elsewhere"
    mirror.rename(moved)  # relative URIs: the mirror still works after a move
    dest = tmp_path / "from-mirror"
    result = odrun(
        "--portal", f"file://{moved}", "--offline", "--cache-dir", str(tmp_path / "air-gapped"),
        "fetch", record, "--dest", str(dest), "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert {r["transport"] for r in result.json()["results"] if r["size"]} == {"file"}
    assert_fetched(dest, dataset)
    info = odrun("--portal", f"file://{moved}", "files", record).out.splitlines()
    assert all(line.startswith(f"file://{moved}/files/777/") for line in info)


@pytest.mark.parametrize("protocol", ["root", "https"])
def test_multi_stream_against_xrootd(
    odrun, record, dataset, tmp_path, protocol, isolated_env, monkeypatch
) -> None:
    """Every file of at least 1 byte in 256 KiB ranges, 4 at once, from the real daemon."""
    from odrun.transfer import multistream

    monkeypatch.setattr(multistream, "MIN_PIECE", 256 * 1024)
    monkeypatch.setattr(multistream, "MAX_PIECE", 256 * 1024)
    monkeypatch.setenv("ODRUN_STREAMS_MIN_SIZE", "1")
    dest = tmp_path / "m"
    result = odrun(
        "fetch", record, "--dest", str(dest), "--protocol", protocol, "--streams", "4", "--json"
    )
    assert result.code == 0, result.err
    assert result.json()["downloaded"] == len(SIZES)
    assert_fetched(dest, dataset)
    assert not list((isolated_env / "files").rglob("*.ranges"))


def test_each_thread_reads_on_a_connection_of_its_own() -> None:
    """XrdCl multiplexes one connection per user@host:port: threads get their own login name."""
    import threading

    from odrun.settings import Settings
    from odrun.transfer.xrootd import XRootDTransport, _channel

    assert _channel("root://h:1094//a/b", 3) == "root://odrun-3@h:1094//a/b"
    assert _channel("root://me@h//a", 3) == "root://me@h//a"  # the user's own login is kept
    transport = XRootDTransport(Settings.load({}))
    slots: list[int] = []
    together = threading.Barrier(4)

    def worker() -> None:
        together.wait(timeout=10)  # all four alive at once: four distinct threads
        slots.append(transport._slot())
        together.wait(timeout=10)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(slots)) == 4
    mine = transport._slot()
    assert transport._slot() == mine  # one thread keeps its own


#: ``python -m odrun ARGS``, reporting on stderr when anything scans the whole heap
HEAP_PROBE = """
import gc, runpy, sys
real = gc.get_objects
def spy(*args, **kwargs):
    sys.stderr.write("HEAP SCANNED\\n")
    return real(*args, **kwargs)
gc.get_objects = spy
sys.argv = ["odrun", *sys.argv[1:]]
runpy.run_module("odrun", run_name="__main__", alter_sys=True)
"""


def test_a_cli_process_exits_without_the_bindings_heap_scan(
    record, dataset, tmp_path, isolated_env
) -> None:
    """The bindings' exit handler looks at every object on the heap for open files (0.1 s
    and more per process, growing with the record); the CLI closes its own and stops
    XrdCl's threads itself. The process still exits cleanly, with everything fetched."""
    import subprocess
    import sys

    dest = tmp_path / "d"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    args = ["fetch", record, "--dest", str(dest), "--protocol", "root", "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", HEAP_PROBE, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_fetched(dest, dataset)
    assert "HEAP SCANNED" not in proc.stderr
