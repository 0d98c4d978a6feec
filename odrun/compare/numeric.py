"""How much two versions of an output differ: JSON key paths, CSV cells, histograms.

JSON documents are compared key path by key path (``a.b.0``, as ``expect:`` addresses
them); CSV cells are keyed ``<row>.<column>`` (rows counted from 0 after the header).
Numbers get an absolute and a relative difference (relative to run A's value), strings
are equal or not. Histograms (a JSON object with ``edges`` and ``counts``, a CSV with
``bin_low, bin_high, count`` columns: :mod:`odrun.workflow.histograms`) are compared bin
by bin and by the chi2 test expectations use (:mod:`odrun.workflow.stats`), run A as the
reference; so are the 1-D histograms (TH1) two ROOT files both hold (``odrun[root]``).
Both files come from runs that may be someone else's: each must be a regular file no
larger than ``max_bytes`` (the caller checks), every parse error is a note, never an
exception.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from odrun import untrusted
from odrun.compare.model import HistogramDiff, NumericDiff, ValueDiff
from odrun.errors import HistogramError
from odrun.workflow.histograms import (
    ROOT_HINT,
    Histogram,
    Tolerance,
    compare,
    read_histogram,
    same_binning,
)
from odrun.workflow.rootfile import RootBudgetError, root_budget
from odrun.workflow.stats import chi2_test

#: differing values listed per output (all are counted)
MAX_ITEMS = 20
#: key paths or cells compared per file; beyond it the comparison stops (and says so)
MAX_VALUES = 1_000_000
#: histograms compared per JSON file
MAX_HISTOGRAMS = 20
#: the largest JSON or CSV file read (the caller compares larger ones by checksum only)
MAX_TEXT_BYTES = 16 * 1024 * 1024
_TEXT = 80


class NotComparableError(Exception):
    """The two files cannot be compared number by number; the message says why."""


def _float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an int of 400 digits
        return math.inf if value > 0 else -math.inf


def _short(value: Any) -> str:
    if isinstance(value, dict):  # never str() a container: it may be huge, or nested deep
        return f"(object of {len(value)} keys)"
    if isinstance(value, list):
        return f"(array of {len(value)} values)"
    text = untrusted.printable(str(value))
    return text if len(text) <= _TEXT else text[: _TEXT - 3] + "..."


class _Tally:
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.compared = self.differing = self.only_a = self.only_b = self.strings = 0
        self.max_abs = self.max_rel = 0.0
        self.worst: str | None = None
        self.items: list[ValueDiff] = []

    def number(self, key: str, a: float, b: float) -> None:
        self.compared += 1
        if a == b or (math.isnan(a) and math.isnan(b)):
            return
        self.differing += 1
        diff = abs(b - a)
        if math.isnan(diff):
            diff = math.inf
        rel = diff / abs(a) if a != 0 else math.inf
        if self.worst is None or diff > self.max_abs:
            self.max_abs, self.worst = diff, key
        self.max_rel = max(self.max_rel, rel)
        if len(self.items) < MAX_ITEMS:
            self.items.append(ValueDiff(key, a, b, diff, rel))

    def other(self, key: str, a: Any, b: Any) -> None:
        self.compared += 1
        if a != b or type(a) is not type(b):  # true is not 1
            self.strings += 1
            if len(self.items) < MAX_ITEMS:
                self.items.append(ValueDiff(key, _short(a), _short(b)))

    def result(self, **extra: Any) -> NumericDiff:
        return NumericDiff(
            self.fmt, self.compared, self.differing, self.max_abs, self.max_rel, self.worst,
            self.only_a, self.only_b, self.strings, items=self.items, **extra,
        )  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _histogram_keys(doc: Any) -> list[str]:
    """Dotted keys of the objects in ``doc`` that look like histograms (edges + counts)."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack and len(found) < MAX_HISTOGRAMS:
        prefix, node = stack.pop()
        if isinstance(node, dict):
            if "edges" in node and ("counts" in node or "values" in node):
                found.append(prefix)
                continue
            stack.extend((f"{prefix}.{k}" if prefix else str(k), v) for k, v in node.items())
    return sorted(found)


def histogram_diff(key: str, a: Histogram, b: Histogram) -> HistogramDiff:
    """Run B's histogram against run A's (the reference), as expectations compare them."""
    binning = same_binning(b, a)
    if not binning.ok:
        return HistogramDiff(key, len(b.counts), False, binning.detail)
    detail = compare(b, a, Tolerance()).detail
    try:
        chi2 = chi2_test(b, a)
    except ValueError:
        return HistogramDiff(key, len(a.counts), True, detail)
    return HistogramDiff(key, len(a.counts), True, detail, chi2.chi2, chi2.ndf, chi2.p_value)


def _histograms(path_a: Path, path_b: Path, keys: list[str]) -> list[HistogramDiff]:
    out = []
    for key in keys:
        try:
            hist_a, hist_b = read_histogram(path_a, key), read_histogram(path_b, key)
        except HistogramError:  # not a valid histogram in one of them: the numbers still count
            continue
        out.append(histogram_diff(key, hist_a, hist_b))
    return out


def _within_budget(text: str, what: str, *separators: str) -> str:
    """``text`` if it cannot hold more than MAX_VALUES values: a count of its separators
    (an upper bound: a separator inside a string counts too), checked *before* the parse,
    which would cost ~60 bytes of memory per value of 1 to 3 bytes of file."""
    bound = 1 + sum(text.count(sep) for sep in separators)
    if bound > MAX_VALUES:
        raise NotComparableError(f"more than {MAX_VALUES} {what}: checksum only")
    return text


def _read(path: Path) -> str:
    """The text of a regular file of at most MAX_TEXT_BYTES, read once and bounded (a file
    that grew after the caller measured it, a FIFO put in its place: refused)."""
    try:
        return untrusted.read_text(path, MAX_TEXT_BYTES)  # a BOM (Excel, pandas) dropped
    except OSError as exc:
        raise NotComparableError(f"not readable ({exc.__class__.__name__})") from None
    except ValueError as exc:
        raise NotComparableError(f"{exc}: checksum only") from None


_LEAVES = (int, float, str, bool, type(None))


def _walk(tally: _Tally, doc_a: Any, doc_b: Any) -> None:
    """Compare two JSON documents in parallel, key path by key path (no recursion; key
    strings are made only for containers and for values that differ)."""
    stack: list[tuple[str, Any, Any]] = [("", doc_a, doc_b)]
    budget = MAX_VALUES
    while stack:
        key, a, b = stack.pop()
        budget -= 1
        if isinstance(a, dict) and isinstance(b, dict):
            budget -= len(a)
            for name, value in a.items():
                if name in b:
                    stack.append((f"{key}.{name}" if key else name, value, b[name]))
                else:
                    tally.only_a += 1
            tally.only_b += sum(1 for name in b if name not in a)
        elif isinstance(a, list) and isinstance(b, list):
            n = min(len(a), len(b))
            budget -= n
            tally.only_a += len(a) - n
            tally.only_b += len(b) - n
            for i in range(n):
                x, y = a[i], b[i]
                kind = type(x)
                if kind is type(y) and kind in _LEAVES and x == y:
                    tally.compared += 1  # the common case: equal values, no key made
                else:
                    stack.append((f"{key}.{i}" if key else str(i), x, y))
        elif _is_number(a) and _is_number(b):
            tally.number(key, _float(a), _float(b))
        else:
            tally.other(key, a, b)
        if budget < 0:
            raise NotComparableError(f"more than {MAX_VALUES} values: checksum only")


def compare_json(path_a: Path, path_b: Path) -> NumericDiff:
    try:
        doc_a, doc_b = (
            untrusted.load_json(_within_budget(_read(path), "values", ",", "[", "{"))
            for path in (path_a, path_b)
        )
    except ValueError as exc:
        raise NotComparableError(f"not valid JSON in both runs ({exc})") from None
    tally = _Tally("json")
    _walk(tally, doc_a, doc_b)
    keys = sorted(set(_histogram_keys(doc_a)) & set(_histogram_keys(doc_b)))
    return tally.result(histograms=_histograms(path_a, path_b, keys))


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        rows = list(csv.reader(io.StringIO(_within_budget(_read(path), "cells", ",", "\n"))))
    except csv.Error as exc:
        raise NotComparableError(f"not valid CSV ({exc})") from None
    if not rows:
        return [], []
    if sum(len(row) for row in rows) > MAX_VALUES:
        raise NotComparableError(f"more than {MAX_VALUES} cells: checksum only")
    return rows[0], rows[1:]


def compare_csv(path_a: Path, path_b: Path) -> NumericDiff:
    header_a, rows_a = _csv_rows(path_a)
    header_b, rows_b = _csv_rows(path_b)
    tally = _Tally("csv")
    index_b = {name: i for i, name in enumerate(header_b)}
    columns = [(name, i, index_b.get(name)) for i, name in enumerate(header_a)]
    tally.only_b += len(set(header_b) - set(header_a)) * len(rows_b)
    same_header = header_a == header_b and len(set(header_a)) == len(header_a)
    for r in range(max(len(rows_a), len(rows_b))):
        row_a = rows_a[r] if r < len(rows_a) else []
        row_b = rows_b[r] if r < len(rows_b) else []
        if same_header and row_a == row_b and len(row_a) <= len(header_a):
            tally.compared += len(row_a)  # the common case: an identical row
            continue
        for name, i, j in columns:
            if i >= len(row_a):
                if j is not None and j < len(row_b):
                    tally.only_b += 1
                continue
            a = row_a[i]
            if j is None or j >= len(row_b):
                tally.only_a += 1
                continue
            b = row_b[j]
            if a == b:
                tally.compared += 1  # the common case: the same text, no number parsed
                continue
            fa, fb = _cell(a), _cell(b)
            if fa is not None and fb is not None:
                tally.number(f"{r}.{name}", fa, fb)
            else:
                tally.other(f"{r}.{name}", a, b)
    histograms: list[HistogramDiff] = []
    if _histogram_columns(header_a) and _histogram_columns(header_b):
        try:
            hist_a, hist_b = read_histogram(path_a), read_histogram(path_b)
        except HistogramError:
            pass
        else:
            histograms.append(histogram_diff("", hist_a, hist_b))
    return tally.result(rows_a=len(rows_a), rows_b=len(rows_b), histograms=histograms)


def _histogram_columns(header: list[str]) -> bool:
    """The header of a histogram CSV (:mod:`odrun.workflow.histograms`): bin edges, count."""
    names = set(header)
    return bool(
        names & {"bin_low", "low"} and names & {"bin_high", "high"}
        and names & {"count", "value", "counts"}
    )  # fmt: skip


def _cell(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _root_histograms(path: Path) -> set[str]:
    """The 1-D histograms (TH1*) in a ROOT file, by object path without cycles."""
    try:
        import uproot  # noqa: PLC0415 - optional, heavy
    except ImportError:
        raise NotComparableError(
            f"a ROOT file: {ROOT_HINT} to compare its histograms; checksum and size only"
        ) from None
    try:
        with root_budget(path.name), uproot.open(path) as root_file:
            classes = root_file.classnames()
    except RootBudgetError as exc:
        raise NotComparableError(f"{exc.message}: checksum and size only") from None
    except Exception as exc:
        raise NotComparableError(f"not a readable ROOT file ({exc.__class__.__name__})") from None
    return {
        key.rpartition(";")[0] or key
        for key, cls in classes.items()
        if isinstance(cls, str) and cls.startswith("TH1")
    }


def compare_root(path_a: Path, path_b: Path) -> NumericDiff:
    """The 1-D histograms both ROOT files hold, bin by bin and by chi2; everything read
    from both files counts against one budget (:mod:`odrun.workflow.rootfile`)."""
    out: list[HistogramDiff] = []
    with root_budget(f"{path_a.name} and {path_b.name}"):
        keys_a, keys_b = _root_histograms(path_a), _root_histograms(path_b)
        for key in sorted(keys_a & keys_b)[:MAX_HISTOGRAMS]:
            try:
                hist_a, hist_b = read_histogram(path_a, key), read_histogram(path_b, key)
            except RootBudgetError as exc:
                raise NotComparableError(f"{exc.message}: checksum and size only") from None
            except HistogramError:
                continue
            out.append(histogram_diff(key, hist_a, hist_b))
    return NumericDiff(
        "root", only_a=len(keys_a - keys_b), only_b=len(keys_b - keys_a), histograms=out
    )


def compare_files(path_a: Path, path_b: Path) -> NumericDiff:
    """The numeric comparison of two versions of one output, chosen by its suffix;
    :class:`NotComparableError` says why there is none (a binary or malformed file)."""
    suffix = path_a.suffix.lower()
    if suffix == ".json":
        return compare_json(path_a, path_b)
    if suffix == ".csv":
        return compare_csv(path_a, path_b)
    if suffix == ".root":
        return compare_root(path_a, path_b)
    raise NotComparableError(f"{suffix or 'no suffix'}: compared by checksum and size only")


__all__ = ["MAX_ITEMS", "NotComparableError", "compare_files", "histogram_diff"]
