"""Reading ROOT files someone else wrote (``odrun diff``, ``expect:`` on a ROOT histogram)
is bounded: a compression bomb (a block that inflates far beyond what its header declares,
or honest blocks that add up to gigabytes) is refused with one clear message before the
memory is spent; text outputs a diff compares are read through the bounded reader.
"""

from __future__ import annotations

import os
import tracemalloc
import zlib
from pathlib import Path

import pytest

from odrun.compare.numeric import NotComparableError, compare_files
from odrun.errors import HistogramError
from odrun.workflow.histograms import read_histogram

np = pytest.importorskip("numpy")
uproot = pytest.importorskip("uproot")

#: what the bomb inflates to (the header of its block declares ~320 kB)
BOMB_BYTES = 250 * 1024 * 1024


def _honest(path: Path, counts: object, bins: int) -> Path:
    with uproot.recreate(path) as out:
        out["h"] = (counts, np.linspace(0.0, 1.0, bins + 1))
    return path


def zlib_bomb(path: Path) -> Path:
    """A TH1D whose one compressed block inflates to BOMB_BYTES while its header and the
    key declare the honest ~320 kB: the bomb stream replaces the block's stream in place."""
    bins = 40_000
    rng = np.random.default_rng(1)
    honest = _honest(path.with_name("honest-" + path.name), rng.random(bins), bins)
    with uproot.open(honest) as root_file:
        key = root_file.key("h")
        start, length = key.fSeekKey + key.fKeylen, key.fNbytes - key.fKeylen
    data = honest.read_bytes()
    bomb = zlib.compress(b"\0" * BOMB_BYTES, 9)
    assert data[start : start + 2] == b"ZL"
    assert len(bomb) <= length - 9
    stream = bomb + b"\0" * (length - 9 - len(bomb))  # zlib ignores what follows its end
    path.write_bytes(data[: start + 9] + stream + data[start + length :])
    return path


def _peak_while(call: object) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        call()  # type: ignore[operator]
    except Exception as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


def test_a_zlib_bomb_in_a_histogram_is_refused_before_it_inflates(tmp_path: Path) -> None:
    bomb = zlib_bomb(tmp_path / "bomb.root")
    error, peak = _peak_while(lambda: read_histogram(bomb, "h"))
    assert isinstance(error, HistogramError), error
    assert "bomb.root" in error.message, error.message
    assert "compress" in error.message, error.message
    assert peak < 64 * 1024 * 1024, f"{peak >> 20} MiB held while refusing"


def test_diff_of_a_zlib_bomb_says_so_and_stays_small(tmp_path: Path) -> None:
    bomb = zlib_bomb(tmp_path / "b.root")
    honest = tmp_path / "honest-b.root"
    error, peak = _peak_while(lambda: compare_files(honest, bomb))
    assert isinstance(error, NotComparableError), error
    assert "compress" in str(error), str(error)
    assert peak < 64 * 1024 * 1024, f"{peak >> 20} MiB held while refusing"


def test_honest_blocks_adding_up_beyond_the_budget_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many well-formed blocks (a histogram of 3 million empty bins: 24 MB from a few kB)
    are refused once the total passes the budget, here lowered to 8 MiB."""
    from odrun.workflow import rootfile

    monkeypatch.setattr(rootfile, "MAX_ROOT_BYTES", 8 * 1024 * 1024)
    big = _honest(tmp_path / "big.root", np.zeros(3_000_000), 3_000_000)
    assert big.stat().st_size < 1024 * 1024
    with pytest.raises(HistogramError, match=r"big\.root.*more than 8 MiB"):
        read_histogram(big, "h")
    with pytest.raises(NotComparableError, match="more than 8 MiB"):
        compare_files(big, big)
    # within the budget it is read as before
    small = _honest(tmp_path / "small.root", np.ones(1000), 1000)
    assert read_histogram(small, "h").counts[:2] == (1.0, 1.0)
    assert compare_files(small, small).histograms[0].key == "h"


def test_a_corrupt_root_file_is_a_histogram_error_not_a_crash(tmp_path: Path) -> None:
    """A block that is not a valid stream (zlib.error is no ValueError) names the file."""
    path = _honest(tmp_path / "h.root", np.arange(1000.0), 1000)
    with uproot.open(path) as root_file:
        key = root_file.key("h")
        start = key.fSeekKey + key.fKeylen
    data = bytearray(path.read_bytes())
    data[start + 9 : start + 60] = os.urandom(51)
    path.write_bytes(bytes(data))
    with pytest.raises(HistogramError, match=r"h\.root"):
        read_histogram(path, "h")


def test_diff_reads_text_outputs_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO or a file that grew past the limit after it was measured is not read whole."""
    from odrun.compare import numeric

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"x": 1}')
    b.write_text('{"x": ' + " " * 4096 + "2}")
    monkeypatch.setattr(numeric, "MAX_TEXT_BYTES", 1024)
    with pytest.raises(NotComparableError, match="larger than 1024 bytes"):
        compare_files(a, b)
    fifo = tmp_path / "c.csv"
    os.mkfifo(fifo)
    (tmp_path / "d.csv").write_text("x\n1\n")
    with pytest.raises(NotComparableError, match="not a regular file"):
        compare_files(fifo, tmp_path / "d.csv")
