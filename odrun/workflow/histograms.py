"""Read 1-D histograms from JSON, CSV or ROOT files and compare them bin by bin.

Formats:

- JSON: an object ``{"edges": [n+1 numbers], "counts": [n numbers]}`` (``values`` is an
  alias of ``counts``; optional ``errors`` or ``variances``), found at a dotted key
  (``a.b``; empty for the whole document);
- CSV: one row per bin with columns ``bin_low``, ``bin_high`` and ``count`` (or ``low``,
  ``high``, ``value``; optional ``error``) - the key is only a label;
- ROOT: a TH1 at an object path (``dir/name``), read with uproot (``odrun[root]``).

Bins agree when ``|a - r| <= max(abs, rel * |r|)``, or, with ``pull`` set, when the
difference is within ``pull`` standard deviations (errors from the files, else Poisson
``sqrt(count)``; a reference with asymmetric errors, a HEPData table, contributes its
error on the side of the difference: the upward one when the output lies above). Edges
must agree to 1e-9 relative. The distribution-level chi2 test lives in
:mod:`odrun.workflow.stats`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odrun import untrusted
from odrun.errors import (
    ConfigError,
    HistogramError,
)
from odrun.workflow.rootfile import root_budget

ROOT_HINT = "pip install 'odrun[root]' (uproot reads ROOT files)"


@dataclass(frozen=True)
class Histogram:
    edges: tuple[float, ...]
    counts: tuple[float, ...]
    errors: tuple[float, ...] | None = None
    #: (down, up) per bin when the errors are asymmetric (a HEPData table); ``errors``
    #: then holds their mean, and comparisons use :meth:`error_toward`
    asymmetric: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.counts) + 1 or not self.counts:
            raise HistogramError(
                f"{len(self.counts)} bins need {len(self.counts) + 1} edges, got {len(self.edges)}"
            )
        if self.errors is not None and len(self.errors) != len(self.counts):
            raise HistogramError(f"{len(self.errors)} errors for {len(self.counts)} bins")
        if self.asymmetric is not None:
            if len(self.asymmetric) != len(self.counts):
                raise HistogramError(
                    f"{len(self.asymmetric)} asymmetric errors for {len(self.counts)} bins"
                )
            bad_side = next((i for i, (d, u) in enumerate(self.asymmetric)
                             if not (math.isfinite(d) and math.isfinite(u))), None)  # fmt: skip
            if bad_side is not None:
                raise HistogramError(f"asymmetric error {bad_side} is not finite")
        for what, numbers in (("edge", self.edges), ("count", self.counts),
                              ("error", self.errors or ())):  # fmt: skip
            bad = next((i for i, v in enumerate(numbers) if not math.isfinite(v)), None)
            if bad is not None:  # an infinite error makes every pull 0: nothing could fail
                raise HistogramError(f"{what} {bad} is {numbers[bad]:g}, not finite")

    def error(self, i: int) -> float:
        if self.errors is not None:
            return self.errors[i]
        return math.sqrt(max(self.counts[i], 0.0))

    def error_toward(self, i: int, deviation: float) -> float:
        """The error of bin ``i`` on the side of ``deviation`` (the other value minus this
        count): the upward error when the other value lies above, else the downward one.
        Symmetric errors are the same on both sides."""
        if self.asymmetric is not None:
            down, up = self.asymmetric[i]
            return up if deviation > 0 else down
        return self.error(i)

    def scaled(self, factor: float) -> Histogram:
        """Counts and errors times ``factor`` (errors become explicit: Poisson of the
        unscaled counts, scaled)."""
        errors = tuple(factor * self.error(i) for i in range(len(self.counts)))
        asym = self.asymmetric
        if asym is not None:
            asym = tuple((abs(factor) * d, abs(factor) * u) for d, u in asym)
        return Histogram(self.edges, tuple(factor * c for c in self.counts), errors, asym)


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0
    pull: float | None = None

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Tolerance:
        pull = spec.get("pull")
        return cls(float(spec.get("abs", 0.0)), float(spec.get("rel", 0.0)),
                   None if pull is None else float(pull))  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    ok: bool
    detail: str


def _floats(values: Any, what: str) -> tuple[float, ...]:
    if not isinstance(values, list):
        raise HistogramError(f"{what} must be a list of numbers")
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int of 400 digits
        raise HistogramError(f"{what} must be a list of numbers") from None


def _from_mapping(doc: Any, where: str) -> Histogram:
    if not isinstance(doc, dict) or "edges" not in doc:
        raise HistogramError(f"{where} is not a histogram object with 'edges' and 'counts'")
    counts = doc.get("counts", doc.get("values"))
    errors: tuple[float, ...] | None = None
    if "errors" in doc:
        errors = _floats(doc["errors"], f"{where} errors")
    elif "variances" in doc:
        errors = tuple(math.sqrt(max(v, 0.0)) for v in _floats(doc["variances"], where))
    return Histogram(_floats(doc["edges"], f"{where} edges"),
                     _floats(counts, f"{where} counts"), errors)  # fmt: skip


def _column(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if row.get(name) not in (None, ""):
            return row[name]
    return None


def _from_csv(text: str, where: str) -> Histogram:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise HistogramError(f"{where} has no bins")
    edges: list[float] = []
    counts: list[float] = []
    errors: list[float] = []
    for n, row in enumerate(rows):
        low = _column(row, ("bin_low", "low"))
        high = _column(row, ("bin_high", "high"))
        count = _column(row, ("count", "value", "counts"))
        if low is None or high is None or count is None:
            raise HistogramError(f"{where} row {n} needs bin_low, bin_high and count columns")
        err = _column(row, ("error", "errors"))
        try:
            numbers = [float(v) for v in (low, high, count, err) if v is not None]
        except ValueError:
            raise HistogramError(f"{where} row {n} holds a value that is not a number") from None
        if edges and not math.isclose(numbers[0], edges[-1], rel_tol=1e-9, abs_tol=1e-12):
            raise HistogramError(f"{where} row {n}: bin_low {low} does not follow the last bin")
        if not edges:
            edges.append(numbers[0])
        edges.append(numbers[1])
        counts.append(numbers[2])
        errors.extend(numbers[3:])
    return Histogram(tuple(edges), tuple(counts), tuple(errors) if errors else None)


def _from_root(path: Path, key: str, where: str) -> Histogram:
    try:
        import uproot  # noqa: PLC0415 - optional, heavy
    except ImportError:
        raise ConfigError(f"{where}: reading ROOT files needs uproot", hint=ROOT_HINT) from None
    try:
        with root_budget(where), uproot.open(path) as root_file:
            obj = root_file[key]
            values, edges = obj.to_numpy(flow=False)
            variances = obj.variances(flow=False)
    except HistogramError:
        raise  # a RootBudgetError: the file asked for more than the budget
    except KeyError:
        raise HistogramError(f"{where}: no object {key!r} in the file") from None
    except Exception as exc:  # uproot on a corrupt file: zlib.error, struct.error, ...
        raise HistogramError(
            f"{where} is not a readable 1-D ROOT histogram: "
            f"{untrusted.printable(str(exc))[:300] or type(exc).__name__}"
        ) from None
    if getattr(values, "ndim", 1) != 1:
        raise HistogramError(f"{where} is not a 1-D histogram")
    errors = (
        tuple(math.sqrt(max(float(v), 0.0)) for v in variances) if variances is not None else None
    )
    return Histogram(tuple(float(e) for e in edges), tuple(float(v) for v in values), errors)


def read_histogram(path: Path, key: str = "") -> Histogram:
    """The histogram at ``key`` in ``path``; HistogramError names what is wrong."""
    where = f"{path.name}#{key}" if key else path.name
    suffix = path.suffix.lower()
    if suffix == ".root":
        if not key:
            raise HistogramError(f"{path.name}: a ROOT file needs an object name (file#name)")
        return _from_root(path, key, where)
    try:
        text = untrusted.read_text(path)  # bounded, regular files only; BOM dropped
    except (OSError, ValueError) as exc:
        raise HistogramError(f"{where} is not readable: {exc}") from None
    if suffix == ".csv":
        return _from_csv(text, where)
    try:
        doc: Any = untrusted.load_json(text)
    except ValueError:
        raise HistogramError(f"{where} is not JSON, CSV or ROOT") from None
    for part in [p for p in key.split(".") if p]:
        index = untrusted.count(part)  # not int(): '²'.isdigit() is True
        if isinstance(doc, list) and index is not None and index < len(doc):
            doc = doc[index]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise HistogramError(f"{where}: no key {key!r}")
    return _from_mapping(doc, where)


def same_binning(actual: Histogram, reference: Histogram) -> Comparison:
    """Same number of bins and edges (to 1e-9 relative) as the reference."""
    n = len(reference.counts)
    if len(actual.counts) != n:
        return Comparison(False, f"{len(actual.counts)} bins vs {n} in the reference")
    for i, (a, r) in enumerate(zip(actual.edges, reference.edges, strict=True)):
        if not math.isclose(a, r, rel_tol=1e-9, abs_tol=1e-12):
            return Comparison(False, f"edge {i} is {a:g}, the reference has {r:g}")
    return Comparison(True, f"{n} bins")


def compare(actual: Histogram, reference: Histogram, tol: Tolerance) -> Comparison:
    """Bin-by-bin agreement of ``actual`` with ``reference`` within ``tol``."""
    n = len(reference.counts)
    binning = same_binning(actual, reference)
    if not binning.ok:
        return binning
    bad: list[int] = []
    worst, worst_score = 0, -1.0
    for i, (a, r) in enumerate(zip(actual.counts, reference.counts, strict=True)):
        diff = abs(a - r)
        allowed = max(tol.abs, tol.rel * abs(r))
        sigma = math.hypot(actual.error_toward(i, r - a), reference.error_toward(i, a - r))
        pull = diff / sigma if sigma > 0 else (0.0 if diff == 0 else math.inf)
        ok = diff <= allowed or (tol.pull is not None and pull <= tol.pull)
        score = pull if tol.pull is not None else (diff - allowed)
        if not ok:
            bad.append(i)
        if score > worst_score:
            worst, worst_score = i, score
    a, r = actual.counts[worst], reference.counts[worst]
    low, high = reference.edges[worst], reference.edges[worst + 1]
    sigma = math.hypot(actual.error_toward(worst, r - a), reference.error_toward(worst, a - r))
    pull_txt = f", pull {abs(a - r) / sigma:.2f}" if sigma > 0 else ""
    worst_txt = f"bin {worst} [{low:g}, {high:g}): {a:g} vs {r:g}{pull_txt}"
    if not bad and all(a == r for a, r in zip(actual.counts, reference.counts, strict=True)):
        return Comparison(True, f"{n} bins identical to the reference")
    if bad:
        return Comparison(
            False, f"{len(bad)} of {n} bins differ beyond tolerance; worst {worst_txt}"
        )
    return Comparison(True, f"{n} bins agree; largest difference {worst_txt}")
