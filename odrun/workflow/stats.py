"""Distribution-level tests with a stated size: chi2 of two histograms, Kolmogorov-Smirnov.

Pure Python (no scipy): chi2 p-values from the regularised upper incomplete gamma function
(series below ``a + 1``, Lentz continued fraction above), Kolmogorov-Smirnov p-values from
the Kolmogorov distribution's series (the two-sample asymptotic form, with Stephens'
finite-sample correction ``(sqrt(n_e) + 0.12 + 0.11 / sqrt(n_e)) * D``).

Chi2 of two histograms (:func:`chi2_test`), bin by bin
``(a_i - s r_i)^2 / (var a_i + s^2 var r_i)``, where ``s`` is 1, or ``sum a / sum r``
with ``normalize`` (the ndf then loses one):

- a histogram with errors (from the file) uses them; asymmetric errors (a HEPData
  table) count on the side of the deviation: the reference's upward error when the
  output lies above it, the downward one when below;
- a histogram without errors is Poisson, with the variance of its *expected* content
  under the hypothesis that both agree, estimated from both (pooled, as ROOT's
  ``TH1::Chi2Test`` does), not from its own count: an empty bin beside a filled one still
  has a variance, and a downward fluctuation does not shrink its own error;
- bins empty in both are skipped; the p-value is asymptotic, so bins with fewer than about
  5 expected entries make it approximate (merge them, or compare unbinned values with KS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from odrun.workflow.histograms import Histogram

_EPS = 1e-15
_TINY = 1e-300


def _gamma_series(a: float, x: float) -> float:
    """Regularised lower incomplete gamma P(a, x) by its series (converges fast for x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) by its continued fraction (x >= a + 1)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma function Q(a, x) = 1 - P(a, x), for a > 0."""
    if a <= 0:
        raise ValueError(f"gamma_q needs a > 0, got {a}")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _gamma_series(a, x))
    return min(1.0, _gamma_fraction(a, x))


def chi2_sf(chi2: float, ndf: int) -> float:
    """P(X >= chi2) for X chi2-distributed with ``ndf`` degrees of freedom."""
    if ndf <= 0:
        raise ValueError(f"chi2 needs ndf > 0, got {ndf}")
    if math.isnan(chi2):
        return 0.0
    return gamma_q(ndf / 2.0, chi2 / 2.0)


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution (limit of sqrt(n) D_n)."""
    if lam <= 0:
        return 1.0
    if lam < 1.18:  # the theta-function form converges fast for small lam
        y = math.exp(-(math.pi**2) / (8.0 * lam * lam))
        total = sum(y ** ((2 * j - 1) ** 2) for j in range(1, 8))
        return max(0.0, min(1.0, 1.0 - math.sqrt(2.0 * math.pi) / lam * total))
    total = 0.0
    for j in range(1, 101):
        term = math.exp(-2.0 * j * j * lam * lam)
        total += term if j % 2 else -term
        if term < _EPS * total:
            break
    return max(0.0, min(1.0, 2.0 * total))


@dataclass(frozen=True)
class KSResult:
    statistic: float  # D, the largest distance between the two empirical CDFs
    n: int
    m: int
    p_value: float
    at: float  # where D is reached

    def describe(self) -> str:
        return (
            f"KS D {self.statistic:.4g} at {self.at:g} (n {self.n}, reference n {self.m}), "
            f"p-value {self.p_value:.3g}"
        )


def ks_min_p_value(n: int, m: int) -> float:
    """The smallest p-value :func:`ks_2samp` can give for samples of ``n`` and ``m`` values
    (at D = 1, disjoint samples): a p_min at or below it can never fail."""
    en = math.sqrt(n * m / (n + m))
    return kolmogorov_sf(en + 0.12 + 0.11 / en)


def ks_2samp(sample: Sequence[float], reference: Sequence[float]) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test (asymptotic p-value, Stephens' correction)."""
    a, b = sorted(sample), sorted(reference)
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        raise ValueError("KS needs two non-empty samples")
    i = j = 0
    d, at = 0.0, a[0]
    while i < n and j < m:
        x = min(a[i], b[j])
        while i < n and a[i] == x:  # ties move both CDFs before measuring
            i += 1
        while j < m and b[j] == x:
            j += 1
        gap = abs(i / n - j / m)
        if gap > d:
            d, at = gap, x
    en = math.sqrt(n * m / (n + m))
    p = kolmogorov_sf((en + 0.12 + 0.11 / en) * d)
    return KSResult(d, n, m, p, at)


@dataclass(frozen=True)
class BinPull:
    index: int
    low: float
    high: float
    actual: float
    expected: float  # the reference, scaled when normalised
    pull: float

    def describe(self) -> str:
        return (
            f"bin {self.index} [{self.low:g}, {self.high:g}): {self.actual:g} vs "
            f"{self.expected:.4g}, pull {self.pull:+.2f}"
        )


@dataclass(frozen=True)
class Chi2Result:
    chi2: float
    ndf: int
    p_value: float
    scale: float  # what multiplied the reference (1 unless normalised)
    skipped: int  # bins empty in both histograms
    worst: tuple[BinPull, ...]  # largest |pull| first

    def describe(self, worst: int = 3) -> str:
        scaled = f", reference scaled by {self.scale:.4g}" if self.scale != 1.0 else ""
        skipped = f", {self.skipped} empty bins skipped" if self.skipped else ""
        bins = "; ".join(b.describe() for b in self.worst[:worst])
        return (
            f"chi2 {self.chi2:.2f}, ndf {self.ndf}, chi2/ndf {self.chi2 / max(self.ndf, 1):.3f}, "
            f"p-value {self.p_value:.3g}{scaled}{skipped}; worst bins: {bins}"
        )


def _variances(actual: Histogram, reference: Histogram, s: float) -> list[float]:
    """Variance of ``a_i - s r_i`` per bin (see the module docstring)."""
    out = []
    for i, (a, r) in enumerate(zip(actual.counts, reference.counts, strict=True)):
        if actual.errors is None and reference.errors is None:
            out.append(s * (a + r))  # pooled: E[r] = (a + r) / (1 + s), E[a] = s E[r]
            continue
        if actual.errors is not None:
            err_a = actual.error_toward(i, s * r - a)
            var_a = err_a * err_a  # not ** 2: inf, not OverflowError
        else:
            var_a = s * r if s * r > 0 else max(a, 0.0)
        if reference.errors is not None:
            err_r = reference.error_toward(i, a - s * r)  # asymmetric: the side of a
            var_r = err_r * err_r
        else:
            var_r = a / s if a > 0 else max(r, 0.0)
        out.append(var_a + s * s * var_r)
    return out


def chi2_test(actual: Histogram, reference: Histogram, normalize: bool = False) -> Chi2Result:
    """Chi2 compatibility of two histograms with the same binning (edges not checked here)."""
    if len(actual.counts) != len(reference.counts):
        raise ValueError(f"{len(actual.counts)} bins vs {len(reference.counts)}")
    scale = 1.0
    if normalize:
        total_a, total_r = sum(actual.counts), sum(reference.counts)
        if total_a <= 0 or total_r <= 0:
            raise ValueError("normalize needs two histograms with positive totals")
        scale = total_a / total_r
    chi2, used, skipped = 0.0, 0, 0
    pulls: list[BinPull] = []
    variances = _variances(actual, reference, scale)
    for i, (a, r) in enumerate(zip(actual.counts, reference.counts, strict=True)):
        expected, var = scale * r, variances[i]
        if a == 0 and r == 0:
            skipped += 1
            continue
        if not math.isfinite(var) or not math.isfinite(expected):  # a pull of 0 would pass
            raise ValueError(f"bin {i}: the variance {var:g} or expectation is not finite")
        used += 1
        diff = a - expected
        if var > 0:
            pull = diff / math.sqrt(var)
        else:
            pull = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        chi2 += pull * pull
        pulls.append(BinPull(i, reference.edges[i], reference.edges[i + 1], a, expected, pull))
    ndf = used - (1 if normalize else 0)
    if ndf <= 0:
        raise ValueError(f"{used} non-empty bins leave no degree of freedom")
    pulls.sort(key=lambda b: -abs(b.pull))
    return Chi2Result(chi2, ndf, chi2_sf(chi2, ndf), scale, skipped, tuple(pulls))
