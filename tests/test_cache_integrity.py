"""The cache under pressure: maintenance racing transfers, parts changed behind a fetch, full disks.

Disk-full tests mount a small tmpfs of their own (root only) and unmount it in a finally.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from odrun.checksum import Checksum
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer.engine import Engine
from odrun.transfer.store import FileStore, cache_key

from conftest import api_doc, blob
from fault_server import Fault

KB = 1024
MB = 1024 * KB


def _wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)  # polling an observable condition (file size), bounded


# -- maintenance takes the entry lock ---------------------------------------------------------


def _old_part(store: FileStore, key: str, data: bytes) -> Path:
    part = store.part(key)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    old = time.time() - 30 * 86400
    os.utime(part, (old, old))
    return part


def test_gc_leaves_a_part_alone_while_a_fetch_holds_its_lock(odrun, isolated_env: Path) -> None:
    store = FileStore(isolated_env)
    key = "adler32/ab/abcdef01-2000000000"
    part = _old_part(store, key, b"x" * 1000)
    with store.lock(key):  # a fetch resuming this part
        busy = odrun("cache", "gc", "--json")
        assert busy.code == 0, busy.err
        assert part.exists()
        assert busy.json()["skipped"] == [key]
        assert busy.json()["removed"] == []
    free = odrun("cache", "gc", "--json")
    assert not part.exists()
    assert free.json()["removed"] == [str(part)]


def test_gc_and_verify_skip_busy_entries(odrun, isolated_env: Path) -> None:
    store = FileStore(isolated_env)
    data = b"y" * 5000
    f = RecordFile("file:///x", len(data), Checksum("adler32", "00000001"), "x", "x")
    key = cache_key(f)  # a corrupt entry: verify would remove it, gc would evict it
    part = store.part(key)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    store.commit(part, key, {})
    with store.lock(key):
        verify = odrun("cache", "verify", "--remove-bad", "--json")
        assert verify.json()["busy"] == [key]
        gc = odrun("cache", "gc", "--max-size", "1", "--json")
        assert gc.json()["skipped"] == [key]
        assert store.has(key)
    assert odrun("cache", "verify", "--remove-bad").code == 0
    assert not store.has(key)


def test_gc_during_a_running_fetch(odrun, publish, isolated_env: Path, tmp_path: Path) -> None:
    """The reported race, end to end: gc while another process is writing the part."""
    data = blob(56, 8 * MB)
    rec = publish(("slow.root", data), fault=Fault(rate=4 * MB))  # about 2 s
    fetch = subprocess.Popen(
        [sys.executable, "-m", "odrun", "fetch", rec, "--dest", str(tmp_path / "d")],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def part_size() -> int:
        parts = list((isolated_env / "files").glob("*/*/*.part"))
        return parts[0].stat().st_size if parts else 0

    try:
        _wait_for(lambda: part_size() >= MB, timeout=30)
        gc = odrun("cache", "gc", "--parts-older-than", "0", "--json")
    finally:
        _, err = fetch.communicate(timeout=60)
    assert gc.code == 0, gc.err
    assert gc.json()["removed"] == []
    assert len(gc.json()["skipped"]) == 1
    assert fetch.returncode == 0, err
    assert (tmp_path / "d" / "slow.root").read_bytes() == data


# -- the committed bytes are the bytes on disk ------------------------------------------------


class _RogueTransport:
    """Streams a file in two halves; on the first stream, changes the part file behind the
    engine's back once the first half is on disk (what a lock-ignoring gc or editor would do)."""

    name = "fake"
    schemes = frozenset({"fake"})

    def __init__(self, data: bytes, part: Path, action: str) -> None:
        self.data, self.part, self.action = data, part, action
        self.calls = 0

    def available(self) -> bool:
        return True

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        self.calls += 1
        half = len(self.data) // 2
        if self.calls > 1 or offset:
            yield self.data[offset:]
            return
        yield self.data[:half]
        _wait_for(lambda: self.part.exists() and self.part.stat().st_size >= half)
        if self.action == "replace":
            self.part.unlink()
            self.part.write_bytes(b"")
        else:
            os.truncate(self.part, 0)
        yield self.data[half:]


@pytest.mark.parametrize("action", ["replace", "truncate"])
@pytest.mark.parametrize("with_checksum", [True, False])
def test_commit_checks_the_part_on_disk(tmp_path: Path, action: str, with_checksum: bool) -> None:
    data = blob(50, 1 * MB)
    checksum = Checksum("adler32", f"{zlib.adler32(data):08x}") if with_checksum else None
    f = RecordFile("fake://h/f.root", len(data), checksum, "f.root", "f.root")
    store = FileStore(tmp_path / "cache")
    key = cache_key(f)
    rogue = _RogueTransport(data, store.part(key), action)
    engine = Engine(Settings.load({"retry_backoff": 0.01}), store, [rogue])
    with store.lock(key):
        done = engine.download(f, key, [f.uri], {}, lambda _: None)
    assert done.entry.read_bytes() == data
    assert rogue.calls == 2  # the changed part was not trusted: fetched again


# -- disk full --------------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of the test's own."""
    where = tmp_path / "tiny"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path) -> None:
    with (folder / "filler").open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 64 * KB)
                fh.flush()
        except OSError:
            pass


def _temp_files(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        found += [p for p in root.rglob("*") if p.name.endswith(".odrun-link")]
        found += list(root.rglob(".*.part"))  # atomic_write's temp files
    return found


@pytest.fixture
def publish(fresh_portal, faults, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)

    def make(*files: tuple[str, bytes], fault: Fault | None = None) -> str:
        uris = [(faults.add(f"/eos/{name}", data, fault), data) for name, data in files]
        fresh_portal.overrides["910"] = api_doc("910", uris)
        return "910"

    return make


def _assert_disk_full_message(err: str, where: Path) -> None:
    (line,) = [x for x in err.splitlines() if x.startswith("odrun:")]  # one line, exit 13
    assert line.startswith("odrun: disk full: no space left on")
    assert str(where) in line
    assert "needed" in line
    assert "free" in line
    assert "Traceback" not in err


def test_full_cache_is_a_disk_full_error(odrun, publish, tiny_fs: Path, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ODRUN_CACHE_DIR", str(tiny_fs / "cache"))
    data = blob(51, 3 * MB)
    rec = publish(("big.root", data))
    result = odrun("fetch", rec, "--dest", str(tmp_path / "d"))
    assert result.code == 13, result.err
    _assert_disk_full_message(result.err, tiny_fs)
    assert not (tmp_path / "d" / "big.root").exists()
    assert _temp_files(tiny_fs, tmp_path / "d") == []
    # the part holds a verified beginning: with room made, the fetch resumes from it
    kept = sum(p.stat().st_size for p in tiny_fs.rglob("*.part"))
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_fs)], check=True)
    again = odrun("fetch", rec, "--dest", str(tmp_path / "d"), "--json")
    assert again.code == 0, again.err
    assert again.json()["results"][0]["resumed_from"] == kept
    assert (tmp_path / "d" / "big.root").read_bytes() == data


def test_full_destination_leaves_no_temp_files(
    odrun, publish, tiny_fs: Path, tmp_path: Path
) -> None:
    rec = publish(("big.root", blob(52, 3 * MB)))
    dest = tiny_fs / "dest"  # another filesystem than the cache: a copy, not a hard link
    for _ in range(2):
        result = odrun("fetch", rec, "--dest", str(dest))
        assert result.code == 13, result.err
        _assert_disk_full_message(result.err, tiny_fs)
        assert _temp_files(tiny_fs) == []
        assert not (dest / "big.root").exists()


def test_full_cache_does_not_fail_files_already_in_place(
    odrun, publish, tiny_fs: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("ODRUN_CACHE_DIR", str(tiny_fs / "cache"))
    files = [("a.root", blob(53, 20 * KB)), ("b.root", blob(54, 30 * KB))]
    rec = publish(*files)
    linked, copied = tiny_fs / "dest", tmp_path / "dest"
    assert odrun("fetch", rec, "--dest", str(linked)).code == 0
    assert odrun("fetch", rec, "--dest", str(copied)).code == 0
    _fill(tiny_fs)
    for dest in (linked, copied):
        result = odrun("fetch", rec, "--dest", str(dest), "--json")
        assert result.code == 0, result.out
        states = {r["state"] for r in result.json()["results"]}
        assert states <= {"cached", "present"}
    assert _temp_files(tiny_fs, copied) == []


@pytest.mark.parametrize("meta", ["[1, 2]", '"text"', "[" * 100_000, "\xff"])
def test_a_damaged_metadata_entry_reads_as_no_metadata(tmp_path: Path, meta: str) -> None:
    """A list or a deeply nested .json beside an entry: AttributeError/RecursionError before."""
    store = FileStore(tmp_path)
    key = "adler32/00/00000001-0"
    store.entry(key).parent.mkdir(parents=True)
    store.entry(key).write_bytes(b"")
    (store.root / f"{key}.json").write_text(meta, encoding="latin-1")
    assert store.read_meta(key) == {}
    (entry,) = store.entries()
    assert entry.last_used > 0
