"""One large file over root://: read sizes that stay in the CPU cache, one open per stream."""

from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from odrun.settings import Settings
from odrun.transfer import multistream, xrootd
from odrun.transfer.multistream import fetch_ranges

MIB = 1024 * 1024
OK = SimpleNamespace(ok=True)


class FakeFile:
    """The bindings' ``File`` over ``data``, counting opens, closes and read lengths.

    ``need`` models a link's bandwidth-delay product: the server answers (in order,
    from a thread of its own, as XrdCl does) only while at least ``need`` bytes are
    asked for, or everything up to the end of the file is.
    """

    def __init__(self, data: bytes, log: dict[str, Any], need: int = 0) -> None:
        self.data, self.log, self.need = data, log, need
        self.opened = False
        self.asked: list[tuple[Any, int, int]] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def open(self, url: str, flags: Any, timeout: int = 0) -> tuple[Any, None]:
        with self.changed:
            self.log["opens"] += 1
        self.opened = True
        return OK, None

    def stat(self, timeout: int = 0) -> tuple[Any, Any]:
        return OK, SimpleNamespace(size=len(self.data))

    def read(self, offset: int, length: int, timeout: int = 0, callback: Any = None) -> Any:
        with self.changed:
            self.log["lengths"].append(length)
            self.asked.append((callback, offset, length))
            self.changed.notify_all()
        return OK

    def _serve(self) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(self._answerable)
                callback, offset, length = self.asked.pop(0)
            callback(OK, self.data[offset : offset + length], None)

    def _answerable(self) -> bool:
        if not self.asked:
            return False
        _, offset, length = self.asked[-1]
        outstanding = sum(n for _, _, n in self.asked)
        return outstanding >= self.need or offset + length >= len(self.data)

    def close(self, timeout: int = 0) -> None:
        with self.changed:
            self.log["closes"] += 1
        self.opened = False

    def is_open(self) -> bool:
        return self.opened


def new_log() -> dict[str, Any]:
    return {"opens": 0, "closes": 0, "lengths": []}


def test_reads_are_small_enough_to_stay_in_the_cpu_cache_yet_fill_a_wan_link() -> None:
    """A 4 MiB read is cold in the CPU cache by the time it is hashed and written: the
    write into the page cache took 43% of a 512 MiB fetch's CPU (1.3 s) with 4 MiB reads,
    4% with 1 MiB (perf). The reads in flight must still cover a 1 Gbit/s link with a
    50 ms round trip (6.25 MB): the fake server answers only while 8 MiB are asked for."""
    data = os.urandom(40 * MIB + 5)
    log = new_log()
    handle = FakeFile(data, log, need=8 * MIB)
    got = b"".join(xrootd._pipelined(handle, "root://h//f", 0, len(data), 1))
    assert got == data
    assert max(log["lengths"]) <= 1 * MIB


def test_a_stream_opens_the_file_once_for_all_its_ranges(tmp_path: Path, monkeypatch) -> None:
    """Over a WAN every open and close is a round trip of idle link per range; a stream
    keeps its file open from one range to the next and closes it when it ends."""
    data = os.urandom(6 * MIB + 3)
    log = new_log()
    transport = xrootd.XRootDTransport(Settings.load({}))
    transport.client = SimpleNamespace(File=lambda: FakeFile(data, log))
    monkeypatch.setattr(multistream, "MIN_PIECE", 256 * 1024)
    monkeypatch.setattr(multistream, "MAX_PIECE", 256 * 1024)
    part = tmp_path / "f.part"
    done = fetch_ranges(
        transport, "root://h//f", part, len(data), "adler32", 2, threading.Event(), lambda _: None
    )
    assert part.read_bytes() == data
    assert done.checksum.value == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    assert log["opens"] <= 2  # one per stream, not one per range (25 ranges)
    assert log["closes"] == log["opens"]


def test_a_failed_range_closes_its_file_and_the_retry_resumes(tmp_path: Path, monkeypatch) -> None:
    """A read failing mid-range stops the streams; every file they kept open is closed
    (none left for the next attempt, whose threads are new) and that attempt resumes."""
    import pytest

    from odrun.errors import TransientError

    data = os.urandom(3 * MIB + 1)
    log = new_log()
    failures = [2 * MIB + 512 * 1024]  # one read at this offset fails, once

    class Flaky(FakeFile):
        def _serve(self) -> None:
            while True:
                with self.changed:
                    self.changed.wait_for(self._answerable)
                    callback, offset, length = self.asked.pop(0)
                if offset in failures:
                    failures.remove(offset)
                    callback(SimpleNamespace(ok=False, errno=3005, message="boom"), None, None)
                else:
                    callback(OK, self.data[offset : offset + length], None)

    transport = xrootd.XRootDTransport(Settings.load({}))
    transport.client = SimpleNamespace(File=lambda: Flaky(data, log))
    monkeypatch.setattr(multistream, "MIN_PIECE", 512 * 1024)
    monkeypatch.setattr(multistream, "MAX_PIECE", 512 * 1024)
    part = tmp_path / "f.part"

    def attempt() -> Any:
        never, quiet = threading.Event(), lambda _: None
        return fetch_ranges(transport, "root://h//f", part, len(data), "adler32", 3, never, quiet)

    with pytest.raises(TransientError, match="boom"):
        attempt()
    assert log["closes"] == log["opens"]
    assert not [h for h in xrootd._OPEN if h.is_open()]
    done = attempt()
    assert part.read_bytes() == data
    assert done.checksum.value == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    assert 0 < done.resumed_from < len(data)
    assert log["closes"] == log["opens"]
