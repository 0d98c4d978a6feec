"""Per-file cost of a fetch: no thread hand-off for a file of one chunk, no mkdir per file.

The cache protocol (lock, part, verify, publish, metadata, link) stays as it is:
these tests pin what is cheap now, and that the cheap path still verifies.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from odrun.checksum import Checksum
from odrun.errors import ChecksumError
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer import engine as engine_module
from odrun.transfer.base import CHUNK
from odrun.transfer.fetch import Fetcher, State

from conftest import blob


def _record_file(src: Path, name: str, data: bytes, *, checksum: str | None = None) -> RecordFile:
    path = src / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    value = checksum or f"{zlib.adler32(data):08x}"
    return RecordFile(path.as_uri(), len(data), Checksum("adler32", value), name, name)


@pytest.fixture
def fetcher(tmp_path: Path) -> Iterator[Fetcher]:
    settings = Settings.load({"cache_dir": str(tmp_path / "cache"), "retry_backoff": 0.01})
    with Fetcher(settings) as f:
        yield f


@pytest.fixture
def prefetches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the engine's background reader threads (one list item each)."""
    calls: list[int] = []
    real = engine_module.prefetch

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "prefetch", counting)
    return calls


def test_a_file_of_one_chunk_needs_no_reader_thread(
    tmp_path: Path, fetcher: Fetcher, prefetches: list[int]
) -> None:
    small = [_record_file(tmp_path / "src", f"f{i}.bin", blob(i, 100_000)) for i in range(3)]
    report = fetcher.fetch_files(small, tmp_path / "dest", jobs=2)
    assert [r.state for r in report.results] == [State.DOWNLOADED] * 3
    assert prefetches == []
    # control: a file of more than one chunk still overlaps network reads and disk writes
    large = _record_file(tmp_path / "src", "large.bin", blob(9, CHUNK + 1000))
    report = fetcher.fetch_files([large], tmp_path / "dest")
    assert report.results[0].state is State.DOWNLOADED
    assert prefetches == [1]
    assert (tmp_path / "dest" / "large.bin").read_bytes() == blob(9, CHUNK + 1000)


@pytest.mark.parametrize("size", [1, 100_000, CHUNK])
def test_a_file_of_one_chunk_is_still_verified(tmp_path: Path, fetcher: Fetcher, size: int) -> None:
    bad = _record_file(tmp_path / "src", "bad.bin", blob(3, size), checksum="00000001")
    report = fetcher.fetch_files([bad], tmp_path / "dest")
    result = report.results[0]
    assert result.state is State.FAILED
    assert result.exit_code == ChecksumError.exit_code
    assert "00000001" in (result.reason or "")
    assert not (tmp_path / "dest" / "bad.bin").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix == ""]


def test_a_source_longer_than_declared_fails_on_the_one_chunk_path(
    tmp_path: Path, fetcher: Fetcher
) -> None:
    data = blob(4, 5000)
    f = _record_file(tmp_path / "src", "long.bin", data)
    (tmp_path / "src" / "long.bin").write_bytes(data + b"more")  # the server's copy grew
    result = fetcher.fetch_files([f], tmp_path / "dest").results[0]
    assert result.state is State.FAILED
    assert not (tmp_path / "dest" / "long.bin").exists()


def test_no_folder_is_made_again_for_every_file(
    tmp_path: Path, fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [_record_file(tmp_path / "src", f"f{i:02d}.bin", blob(i, 2000)) for i in range(20)]
    wasted: list[str] = []  # mkdir of a folder that is already there
    real = os.mkdir

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.isdir(path):
            wasted.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", counting)
    report = fetcher.fetch_files(files, tmp_path / "dest", jobs=1)
    assert {r.state for r in report.results} == {State.DOWNLOADED}
    # folders are made when missing (cache levels, destination), not tried again per file
    assert len(wasted) <= 2, wasted


def test_a_cache_folder_removed_under_a_fetch_is_made_again(
    tmp_path: Path, fetcher: Fetcher
) -> None:
    first = _record_file(tmp_path / "src", "a.bin", blob(1, 3000))
    assert fetcher.fetch_files([first], tmp_path / "dest").results[0].state is State.DOWNLOADED
    shutil.rmtree(tmp_path / "cache")
    shutil.rmtree(tmp_path / "dest")
    again = fetcher.fetch_files([first], tmp_path / "dest").results
    assert again[0].state is State.DOWNLOADED, again[0].reason
    assert (tmp_path / "dest" / "a.bin").read_bytes() == blob(1, 3000)
    meta = list((tmp_path / "cache").rglob("*.json"))
    assert len(meta) == 1
    assert oct(meta[0].stat().st_mode & 0o777) == "0o644"


# -- streams: several byte ranges only where a link limits one connection -------------------


@pytest.fixture
def ranged(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The stream count of every multi-stream transfer the engine starts."""
    calls: list[int] = []
    real = engine_module.fetch_ranges

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[5])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "fetch_ranges", counting)
    return calls


@pytest.mark.parametrize(
    ("uri", "streams"),
    [
        ("http://127.0.0.1:8000/f", 1),
        ("root://127.0.0.5:1094//f", 1),
        ("root://user@localhost//f", 1),
        ("https://[::1]:8443/f", 1),
        ("file:///data/f", 1),
        ("https://eospublic.cern.ch//eos/f", 4),
        ("root://eospublic.cern.ch:1094//eos/f", 4),
        ("http://10.0.0.7/f", 4),
        ("http://[2001:db8::1]/f", 4),
        ("http://127.0.0.1.example.org/f", 4),
    ],
)
def test_default_streams_are_one_on_this_machine_and_four_across_a_network(
    tmp_path: Path, uri: str, streams: int
) -> None:
    settings = Settings.load({"cache_dir": str(tmp_path)})
    assert engine_module.streams_for(settings, uri) == streams
    # an explicit choice (--streams, ODRUN_STREAMS, config) is taken as it is
    assert engine_module.streams_for(settings.with_(streams=3), uri) == 3


def test_a_local_large_file_comes_in_one_stream_unless_asked(
    tmp_path: Path, ranged: list[int]
) -> None:
    data = blob(5, 300_000)
    f = _record_file(tmp_path / "src", "big.bin", data)
    base = {"cache_dir": str(tmp_path / "cache"), "streams_min_size": 1000}
    with Fetcher(Settings.load(base)) as fetcher:
        assert fetcher.fetch_files([f], tmp_path / "one").results[0].state is State.DOWNLOADED
    assert ranged == []
    with Fetcher(Settings.load(dict(base, cache_dir=str(tmp_path / "c2"), streams=4))) as fetcher:
        assert fetcher.fetch_files([f], tmp_path / "four").results[0].state is State.DOWNLOADED
    assert ranged == [4]
    assert (tmp_path / "four" / "big.bin").read_bytes() == data


def test_threads_placing_into_one_new_folder_all_succeed(tmp_path: Path) -> None:
    """place() makes a missing folder on demand: when two threads find it missing at once,
    the one that loses the mkdir race must still place its file (it used to take the
    folder it then saw for proof that its source was missing)."""
    import threading

    from odrun._fs import place

    src = tmp_path / "src"
    src.mkdir()
    names = [f"f{i}" for i in range(16)]
    for name in names:
        (src / name).write_bytes(name.encode())
    for round_ in range(40):
        dest = tmp_path / f"dest{round_}" / "sub"
        barrier = threading.Barrier(len(names))
        errors: list[BaseException] = []

        def one(
            name: str,
            dest: Path = dest,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                place(src / name, dest / name)
            except BaseException as exc:  # collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(p.name for p in dest.iterdir()) == sorted(names)
