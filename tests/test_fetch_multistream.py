"""Multi-stream transfers: one file in concurrent byte ranges, resumable range by range."""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections import Counter
from pathlib import Path

import pytest

from odrun.checksum import adler32_combine
from odrun.transfer import multistream
from odrun.transfer.multistream import Ledger, piece_size

from conftest import api_doc, blob
from fault_server import Fault

KIB = 1024
PIECE = 256 * KIB
SIZE = 8 * PIECE + 12345  # 9 pieces, the last one short


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 256 KiB and multi-stream from 1 byte up, so small files take the path."""
    monkeypatch.setattr(multistream, "MIN_PIECE", PIECE)
    monkeypatch.setattr(multistream, "MAX_PIECE", PIECE)
    monkeypatch.setenv("ODRUN_STREAMS_MIN_SIZE", "1")
    monkeypatch.setenv("ODRUN_RETRY_BACKOFF", "0")


@pytest.fixture
def serve_record(fresh_portal, faults, monkeypatch, small_pieces):
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)

    def publish(name: str, data: bytes, fault: Fault | None = None) -> str:
        uri = faults.add(f"/eos/{name}", data, fault)
        fresh_portal.overrides["900"] = api_doc("900", [(uri, data)])
        return "900"

    return publish


def pieces(size: int = SIZE) -> list[str]:
    return [f"bytes={a}-{min(size, a + PIECE) - 1}" for a in range(0, size, PIECE)]


def cache_leftovers(cache: Path) -> list[Path]:
    return [p for p in (cache / "files").rglob("*") if p.name.endswith((".part", ".ranges"))]


def test_file_arrives_in_ranges(odrun, serve_record, faults, tmp_path, isolated_env) -> None:
    data = blob(1, SIZE)
    rec = serve_record("a.root", data)
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "4", "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "a.root").read_bytes() == data
    assert sorted(faults.ranges) == sorted(pieces())  # each piece asked for once
    assert faults.gets["/eos/a.root"] == len(pieces())
    assert not cache_leftovers(isolated_env)


def test_streams_from_the_environment(
    odrun, serve_record, faults, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = blob(2, SIZE)
    rec = serve_record("b.root", data)
    monkeypatch.setenv("ODRUN_STREAMS", "1")
    result = odrun("fetch", rec, "--dest", str(tmp_path))
    assert result.code == 0, result.err
    assert faults.gets["/eos/b.root"] == 1  # one stream: one GET of the whole file
    assert faults.ranges == []


def test_sha1_is_checked_over_the_whole_file(
    odrun, serve_record, fresh_portal, faults, tmp_path, monkeypatch
) -> None:
    data = blob(3, SIZE)
    rec = serve_record("c.root", data)
    entry = fresh_portal.overrides[rec]["metadata"]["files"][0]
    entry["checksum"] = f"sha1:{hashlib.sha1(data).hexdigest()}"
    assert odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "3").code == 0
    assert (tmp_path / "c.root").read_bytes() == data
    entry["checksum"] = f"sha1:{hashlib.sha1(b'other').hexdigest()}"
    monkeypatch.setenv("ODRUN_REFRESH", "1")
    result = odrun("fetch", rec, "--dest", str(tmp_path / "again"), "--streams", "3")
    # the cache key is the checksum: another checksum is another file, fetched and refused
    assert result.code == 4, result.err
    assert "does not match" in result.err


def test_one_stream_failing_refetches_only_its_range(
    odrun, serve_record, faults, tmp_path, isolated_env
) -> None:
    data = blob(4, SIZE)
    rec = serve_record("d.root", data, Fault(drop_after=64 * KIB, drops=1))
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "4", "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "d.root").read_bytes() == data
    asked = Counter(faults.ranges)
    assert set(asked) == set(pieces())
    assert sorted(asked.values()) == [1] * (len(pieces()) - 1) + [2]  # only the broken one twice
    # the retry kept what the other streams finished
    assert 0 < result.json()["results"][0]["resumed_from"] <= SIZE - PIECE
    assert not cache_leftovers(isolated_env)


def _interrupted(odrun, rec: str, tmp_path: Path, isolated_env: Path, monkeypatch) -> Ledger:
    """One multi-stream attempt that fails (no retries): part and range record are kept."""
    monkeypatch.setenv("ODRUN_RETRIES", "0")
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "2")
    assert result.code == 5, result.err
    monkeypatch.delenv("ODRUN_RETRIES")
    (record,) = (isolated_env / "files").rglob("*.part.ranges")
    ledger = Ledger.load(record, SIZE)
    assert ledger is not None
    return ledger


def test_resume_fetches_only_missing_ranges(
    odrun, serve_record, faults, tmp_path, isolated_env, monkeypatch
) -> None:
    data = blob(5, SIZE)
    rec = serve_record("e.root", data, Fault(drop_after=PIECE // 2, drops=1))
    # one stream dies half-way into its range; the other finishes its own: some pieces are
    # recorded and some are not
    ledger = _interrupted(odrun, rec, tmp_path, isolated_env, monkeypatch)
    missing = [r for i, r in enumerate(pieces()) if i not in ledger.done]
    assert missing, "the failure left nothing to resume"
    faults.ranges.clear()
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "2", "--json")
    assert result.code == 0, result.err
    assert sorted(faults.ranges) == sorted(missing)
    assert result.json()["results"][0]["resumed_from"] == ledger.held()
    assert (tmp_path / "e.root").read_bytes() == data
    assert not cache_leftovers(isolated_env)


def test_resume_refetches_a_recorded_range_whose_bytes_changed(
    odrun, serve_record, faults, tmp_path, isolated_env, monkeypatch
) -> None:
    data = blob(6, SIZE)
    rec = serve_record("f.root", data, Fault(stall_after=0, stalls=1))
    monkeypatch.setenv("ODRUN_TIMEOUT", "1")
    ledger = _interrupted(odrun, rec, tmp_path, isolated_env, monkeypatch)
    monkeypatch.delenv("ODRUN_TIMEOUT")
    (part,) = (isolated_env / "files").rglob("*.part")
    index = min(ledger.done)
    with part.open("r+b") as fh:  # one recorded piece rots on disk
        fh.seek(index * PIECE + 10)
        fh.write(b"\0rot\0")
    faults.ranges.clear()
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "2")
    assert result.code == 0, result.err
    assert pieces()[index] in faults.ranges
    assert (tmp_path / "f.root").read_bytes() == data


def test_server_without_range_falls_back_to_one_stream(
    odrun, serve_record, faults, tmp_path, isolated_env
) -> None:
    data = blob(7, SIZE)
    rec = serve_record("g.root", data, Fault(ignore_range=True))
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "4", "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "g.root").read_bytes() == data
    assert result.json()["results"][0]["resumed_from"] == 0
    # at most one refused range request per stream, then one whole-file GET
    assert 2 <= faults.gets["/eos/g.root"] <= 5
    assert not cache_leftovers(isolated_env)


def test_range_of_another_file_is_refused(odrun, serve_record, faults, tmp_path) -> None:
    data = blob(8, SIZE)
    rec = serve_record("h.root", data, Fault(range_total_delta=1))
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "4")
    assert result.code == 4, result.err
    assert "more bytes than the record declares" in result.err
    assert not (tmp_path / "h.root").exists()


def test_multi_stream_part_resumes_in_one_stream(
    odrun, serve_record, faults, tmp_path, isolated_env, monkeypatch
) -> None:
    """A part with holes is cut to its contiguous prefix before a single-stream resume."""
    data = blob(9, SIZE)
    rec = serve_record("i.root", data, Fault(drop_after=PIECE // 2, drops=1))
    ledger = _interrupted(odrun, rec, tmp_path, isolated_env, monkeypatch)
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "1", "--json")
    assert result.code == 0, result.err
    assert result.json()["results"][0]["resumed_from"] == ledger.prefix()
    assert (tmp_path / "i.root").read_bytes() == data
    assert not cache_leftovers(isolated_env)


def test_single_stream_part_is_reused_by_ranges(
    odrun, serve_record, faults, tmp_path, isolated_env, monkeypatch
) -> None:
    data = blob(10, SIZE)
    rec = serve_record("j.root", data, Fault(drop_after=3 * PIECE + 100, drops=1))
    monkeypatch.setenv("ODRUN_RETRIES", "0")
    assert odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "1").code == 5
    monkeypatch.delenv("ODRUN_RETRIES")
    faults.ranges.clear()
    result = odrun("fetch", rec, "--dest", str(tmp_path), "--streams", "4", "--json")
    assert result.code == 0, result.err
    assert result.json()["results"][0]["resumed_from"] == 3 * PIECE  # whole pieces kept
    assert sorted(faults.ranges) == sorted(pieces()[3:])
    assert (tmp_path / "j.root").read_bytes() == data


@pytest.mark.parametrize(("value", "code"), [("0", 8), ("x", 8), ("65", 8)])
def test_bad_streams_setting(odrun, tmp_path, monkeypatch, value: str, code: int) -> None:
    monkeypatch.setenv("ODRUN_STREAMS", value)
    result = odrun("fetch", "1", "--dest", str(tmp_path))
    assert result.code == code
    assert "streams" in result.err
    assert "Traceback" not in result.err


def test_bad_streams_option(odrun, tmp_path) -> None:
    result = odrun("fetch", "1", "--dest", str(tmp_path), "--streams", "0")
    assert result.code == 2
    assert "--streams" in result.err


def test_adler32_combine_matches_zlib() -> None:
    rng = random.Random(1)
    for _ in range(200):
        a = rng.randbytes(rng.randrange(0, 70000))
        b = rng.randbytes(rng.choice([0, 1, 65521, 65522, rng.randrange(0, 300000)]))
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_ledger_round_trip_and_prefix(tmp_path) -> None:
    ledger = Ledger(10, 4, {0: 1, 2: 3})
    path = tmp_path / "x.part.ranges"
    ledger.save(path)
    again = Ledger.load(path, 10)
    assert again == ledger
    assert again.prefix() == 4
    assert again.held() == 6
    assert Ledger.load(path, 11) is None  # another size: another file
    path.write_text(json.dumps({"size": 10}))
    assert Ledger.load(path, 10) is None


def test_piece_size_bounds() -> None:
    mib = 1024 * 1024
    assert piece_size(1, 8) == multistream.MIN_PIECE
    assert piece_size(1 << 40, 8) == multistream.MAX_PIECE
    assert piece_size(512 * mib, 4) == 32 * mib


def test_cache_maintenance_knows_the_range_record(
    odrun, serve_record, faults, tmp_path, isolated_env, monkeypatch
) -> None:
    """`cache ls` never lists a range record as an entry; `cache gc` removes it with its part."""
    data = blob(11, SIZE)
    rec = serve_record("k.root", data, Fault(drop_after=PIECE // 2, drops=1))
    _interrupted(odrun, rec, tmp_path, isolated_env, monkeypatch)
    listed = odrun("cache", "ls", "--json")
    assert listed.code == 0, listed.err
    assert ".ranges" not in listed.out
    gc = odrun("cache", "gc", "--parts-older-than", "0")
    assert gc.code == 0, gc.err
    assert not cache_leftovers(isolated_env)
