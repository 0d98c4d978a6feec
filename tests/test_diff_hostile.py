"""``odrun diff`` of outputs someone else made: parsing stops at the value budget."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from odrun.compare import numeric
from odrun.compare.numeric import NotComparableError, compare_files


@pytest.mark.parametrize("shape", ["one row", "many rows"])
def test_a_csv_beyond_the_value_budget_is_not_parsed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """A CSV of a million short cells (3 bytes each, far below the size limit) cost
    ~60 bytes of memory per cell before the budget was checked: parsing stops there."""
    monkeypatch.setattr(numeric, "MAX_VALUES", 1000)
    cells = 400_000
    text = "ab," * cells if shape == "one row" else "ab,cd\n" * (cells // 2)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(text)
    b.write_text(text.replace("ab", "ac"))
    tracemalloc.start()
    try:
        with pytest.raises(NotComparableError, match="more than 1000 cells"):
            compare_files(a, b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(text), peak  # the text itself, once or twice; not its cells


def test_a_csv_within_the_budget_is_compared(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n3,4\n")
    b.write_text("x,y\n1,2\n3,5\n")
    found = compare_files(a, b)
    assert found.compared == 4
    assert found.differing == 1


@pytest.mark.parametrize("item", ["{}", "[]", "0", '""'])
def test_a_json_beyond_the_value_budget_is_not_parsed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, item: str
) -> None:
    """``[{},{},…]``: 3 bytes of file, ~70 bytes of memory per value once parsed; the
    budget is checked before the parse."""
    monkeypatch.setattr(numeric, "MAX_VALUES", 1000)
    text = "[" + ",".join([item] * 300_000) + "]"
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(text)
    b.write_text(text[:-1] + ",1]")
    tracemalloc.start()
    try:
        with pytest.raises(NotComparableError, match="more than 1000 values"):
            compare_files(a, b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(text), peak


def test_a_json_within_the_budget_is_compared(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"x": [1, 2, {"y": "a,b,c"}]}')
    b.write_text('{"x": [1, 3, {"y": "a,b,c"}]}')
    found = compare_files(a, b)
    assert found.differing == 1


@pytest.mark.parametrize(("limit", "grows_past"), [(50, True), (200, False)])
def test_read_text_allocates_the_file_not_the_limit_and_sees_growth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, grows_past: bool
) -> None:
    """A file that is longer than fstat said when it was opened (it grew) is read to its
    end within the limit, and refused beyond it; a small file costs its size, not the
    limit (read(limit) preallocated 16 MiB for every diff of a small CSV)."""
    import os

    from odrun import untrusted

    path = tmp_path / "t.txt"
    path.write_text("x" * 100)
    real = os.fstat

    class Shrunk:
        def __init__(self, info: os.stat_result) -> None:
            self.st_mode, self.st_size = info.st_mode, 10

    monkeypatch.setattr(untrusted.os, "fstat", lambda fd: Shrunk(real(fd)))
    if grows_past:
        with pytest.raises(ValueError, match="it grew"):
            untrusted.read_text(path, limit)
    else:
        assert untrusted.read_text(path, limit) == "x" * 100
    monkeypatch.setattr(untrusted.os, "fstat", real)
    tracemalloc.start()
    try:
        assert untrusted.read_text(path, 1 << 30) == "x" * 100
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
