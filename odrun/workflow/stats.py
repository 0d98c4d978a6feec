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

With the reference's covariance matrix ``V`` (a measurement's correlated uncertainties,
published as a HEPData table: :mod:`odrun.hepdata.matrix`) the bins are not independent:
``chi2 = d^T C^-1 d`` with ``d_i = a_i - s r_i`` and ``C = diag(var a) + s^2 V``, solved by
the Cholesky factor of ``C`` (a ``C`` that is not positive definite is refused, never
inverted approximately). A correlation matrix ``rho`` gives ``V_ij = rho_ij σ_i σ_j``
with the reference's errors ``σ``, each on the side of its bin's deviation. The matrix
replaces the reference's own errors; the output's variances stay uncorrelated.
"""

from __future__ import annotations

import math
from bisect import bisect_right
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


def ecdf_points(
    sample: Sequence[float], reference: Sequence[float], points: int = 200
) -> tuple[list[float], list[float], list[float]]:
    """Both empirical CDFs at no more than about ``points`` of the pooled samples'
    distinct values (evenly spaced in rank, and the last), for a plot:
    (x, F_sample(x), F_reference(x))."""
    a, b = sorted(sample), sorted(reference)
    pooled = sorted(set(a) | set(b))
    if not pooled:
        return [], [], []
    step = max(1, math.ceil(len(pooled) / points))
    xs = pooled[::step]
    if xs[-1] != pooled[-1]:  # the last value, where both CDFs reach 1
        xs.append(pooled[-1])
    return (
        xs,
        [bisect_right(a, x) / len(a) if a else 0.0 for x in xs],
        [bisect_right(b, x) / len(b) if b else 0.0 for x in xs],
    )


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
    correlated: str = ""  # "covariance" or "correlation" when the bins were correlated

    def describe(self, worst: int = 3) -> str:
        scaled = f", reference scaled by {self.scale:.4g}" if self.scale != 1.0 else ""
        skipped = f", {self.skipped} empty bins skipped" if self.skipped else ""
        if self.correlated:
            skipped += f", with the reference's {self.correlated} matrix"
        bins = "; ".join(b.describe() for b in self.worst[:worst])
        return (
            f"chi2 {self.chi2:.2f}, ndf {self.ndf}, chi2/ndf {self.chi2 / max(self.ndf, 1):.3f}, "
            f"p-value {self.p_value:.3g}{scaled}{skipped}; worst bins: {bins}"
        )


def _actual_variance(actual: Histogram, i: int, a: float, r: float, s: float) -> float:
    """Variance of the output's bin ``i`` when the reference has errors of its own."""
    if actual.errors is not None:
        err_a = actual.error_toward(i, s * r - a)
        return err_a * err_a  # not ** 2: inf, not OverflowError
    return s * r if s * r > 0 else max(a, 0.0)


def _variances(actual: Histogram, reference: Histogram, s: float) -> list[float]:
    """Variance of ``a_i - s r_i`` per bin (see the module docstring)."""
    out = []
    for i, (a, r) in enumerate(zip(actual.counts, reference.counts, strict=True)):
        if actual.errors is None and reference.errors is None:
            out.append(s * (a + r))  # pooled: E[r] = (a + r) / (1 + s), E[a] = s E[r]
            continue
        var_a = _actual_variance(actual, i, a, r, s)
        if reference.errors is not None:
            err_r = reference.error_toward(i, a - s * r)  # asymmetric: the side of a
            var_r = err_r * err_r
        else:
            var_r = a / s if a > 0 else max(r, 0.0)
        out.append(var_a + s * s * var_r)
    return out


def cholesky(matrix: Sequence[Sequence[float]]) -> list[list[float]]:
    """The lower triangular ``L`` with ``L L^T = matrix`` (symmetric); ValueError naming
    the row where the matrix shows it is not positive definite."""
    n = len(matrix)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        row_i = low[i]
        for j in range(i + 1):
            row_j = low[j]
            total = matrix[i][j] - math.fsum(row_i[k] * row_j[k] for k in range(j))
            if i == j:
                if not total > 0 or not math.isfinite(total):
                    raise ValueError(f"the matrix is not positive definite (at bin {i})")
                row_i[i] = math.sqrt(total)
            else:
                row_i[j] = total / row_j[j]
    return low


def _solve_lower(low: Sequence[Sequence[float]], b: Sequence[float]) -> list[float]:
    """``y`` with ``low y = b`` (forward substitution)."""
    y: list[float] = []
    for i, row in enumerate(low):
        y.append((b[i] - math.fsum(row[k] * y[k] for k in range(i))) / row[i])
    return y


def _covariance(
    actual: Histogram,
    reference: Histogram,
    s: float,
    used: Sequence[int],
    matrix: Sequence[Sequence[float]],
    correlation: bool,
) -> list[list[float]]:
    """``C = diag(var a) + s^2 V`` over the bins ``used`` (see the module docstring)."""
    a, r = actual.counts, reference.counts
    if correlation and reference.errors is None:
        raise ValueError("a correlation matrix needs the reference's errors")
    sigma = [reference.error_toward(i, a[i] - s * r[i]) if correlation else 1.0 for i in used]
    out = []
    for p, i in enumerate(used):
        row = []
        for q, j in enumerate(used):
            v = matrix[i][j] * (sigma[p] * sigma[q] if correlation else 1.0)
            row.append(s * s * v + (_actual_variance(actual, i, a[i], r[i], s) if p == q else 0.0))
        out.append(row)
    return out


def _correlated_chi2(
    diffs: Sequence[float], covariance: Sequence[Sequence[float]]
) -> tuple[float, list[float]]:
    """``d^T C^-1 d`` and each bin's own pull ``d_i / sqrt(C_ii)``."""
    for p, row in enumerate(covariance):
        if not all(math.isfinite(x) for x in row):
            raise ValueError(f"a covariance element of bin {p} is not finite")
    y = _solve_lower(cholesky(covariance), diffs)
    chi2 = math.fsum(v * v for v in y)
    pulls = [d / math.sqrt(covariance[p][p]) for p, d in enumerate(diffs)]
    return chi2, pulls


def chi2_test(
    actual: Histogram,
    reference: Histogram,
    normalize: bool = False,
    matrix: Sequence[Sequence[float]] | None = None,
    correlation: bool = False,
) -> Chi2Result:
    """Chi2 compatibility of two histograms with the same binning (edges not checked
    here); ``matrix``: the reference's covariance (or, with ``correlation``, its
    correlation) matrix over all its bins."""
    n = len(actual.counts)
    if len(reference.counts) != n:
        raise ValueError(f"{n} bins vs {len(reference.counts)}")
    if matrix is not None and (len(matrix) != n or any(len(row) != n for row in matrix)):
        raise ValueError(f"the reference's matrix is not {n} x {n}")
    scale = 1.0
    if normalize:
        total_a, total_r = sum(actual.counts), sum(reference.counts)
        if total_a <= 0 or total_r <= 0:
            raise ValueError("normalize needs two histograms with positive totals")
        scale = total_a / total_r
    used = [
        i for i, (a, r) in enumerate(zip(actual.counts, reference.counts, strict=True)) if a or r
    ]
    skipped = n - len(used)
    diffs = [actual.counts[i] - scale * reference.counts[i] for i in used]
    for i in used:
        if not math.isfinite(scale * reference.counts[i]):
            raise ValueError(f"bin {i}: the expectation is not finite")
    if matrix is not None:
        covariance = _covariance(actual, reference, scale, used, matrix, correlation)
        chi2, pull_list = _correlated_chi2(diffs, covariance)
    else:
        variances = _variances(actual, reference, scale)
        chi2, pull_list = 0.0, []
        for i, diff in zip(used, diffs, strict=True):
            var = variances[i]
            if not math.isfinite(var):  # a pull of 0 would pass
                raise ValueError(f"bin {i}: the variance {var:g} or expectation is not finite")
            if var > 0:
                pull = diff / math.sqrt(var)
            else:
                pull = 0.0 if diff == 0 else math.copysign(math.inf, diff)
            chi2 += pull * pull
            pull_list.append(pull)
    pulls = [
        BinPull(i, reference.edges[i], reference.edges[i + 1], actual.counts[i],
                scale * reference.counts[i], pull)
        for i, pull in zip(used, pull_list, strict=True)
    ]  # fmt: skip
    ndf = len(used) - (1 if normalize else 0)
    if ndf <= 0:
        raise ValueError(f"{len(used)} non-empty bins leave no degree of freedom")
    pulls.sort(key=lambda b: -abs(b.pull))
    kind = ("correlation" if correlation else "covariance") if matrix is not None else ""
    return Chi2Result(chi2, ndf, chi2_sf(chi2, ndf), scale, skipped, tuple(pulls), kind)
