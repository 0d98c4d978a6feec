"""Check a run's outputs against odrun.yaml ``expect``: checksums, numbers, histograms.

Numbers are addressed by dotted keys: ``a.b.0`` in JSON, ``<row>.<column>`` in CSV
(rows counted from 0 after the header). A number passes when it is within
``max(abs, rel * |value|)`` of ``value``, or, with ``sigma: {n, error | error_key}``,
within ``n`` standard deviations: the declared ``error`` or the number at ``error_key``
in the same output file, combined in quadrature with the expected value's own ``error``.
An output cannot widen its own tolerance: its ``error_key`` error must not exceed
``sigma.max_error`` (default ``|value|``), or the check fails.

Histograms are compared with a reference file (``reference: path[#key]``, relative to
the analysis folder; formats in :mod:`odrun.workflow.histograms`): bin by bin
(``abs``/``rel``/``pull``) and/or by a chi2 test (``chi2: {p_min, normalize}``, see
:mod:`odrun.workflow.stats`); ``normalize: true`` scales the reference to the actual
total first; ``covariance`` (a HEPData covariance or correlation table) makes the chi2
treat the bins as correlated. A reference may be a HEPData table
(``hepdata:ins1234567/Table 3@1`` or a local table file; see
:mod:`odrun.workflow.references`). Unbinned values are compared
with a reference sample by a two-sample Kolmogorov-Smirnov test
(``ks: {column, reference: path[#column], p_min}``).

Produces one :class:`Check` per expectation item; ``junit_xml`` renders them for CI.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from odrun import untrusted
from odrun._fs import confine
from odrun.checksum import checksum_file, parse_checksum
from odrun.errors import HistogramError, MetadataError, OdrunError
from odrun.hepdata import TablePin
from odrun.hepdata.matrix import Matrix
from odrun.settings import Settings
from odrun.workflow.histograms import (
    Histogram,
    Tolerance,
    compare,
    read_histogram,
    same_binning,
)
from odrun.workflow.references import hepdata_histogram, hepdata_matrix, uses_hepdata
from odrun.workflow.samples import SampleError, read_sample
from odrun.workflow.stats import chi2_test, ecdf_points, ks_2samp, ks_min_p_value

BIN_BY_BIN = ("abs", "rel", "pull")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: the numbers behind the verdict, for reports (see :data:`CHECK_DATA_KINDS`): e.g.
    #: ``{"kind": "value", "value": 91.2, "expected": 91.19, "tolerance": 0.02, ...}`` or a
    #: histogram's per-bin output and reference, statistic and p-value; empty when none
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok, "detail": self.detail}
        if self.data:
            out["data"] = self.data
        return out


#: what ``Check.data["kind"]`` may be, and the keys each kind holds (all optional but kind):
#: value: value, expected, tolerance (the allowed difference), sigma, n_sigma, pull;
#: checksum: value, expected; present: size;
#: histogram: key, label (the x axis's), reference, edges, counts, errors, reference_counts,
#: reference_errors (the reference as compared: scaled when normalised), scale, pulls (per
#: bin, None: not used), statistic (chi2), ndf, p_value, p_min, tolerance ({abs, rel, pull});
#: ks: column, statistic (D), p_value, p_min, n, m
CHECK_DATA_KINDS = ("value", "checksum", "present", "histogram", "ks")


def _load_table(path: Path) -> Any:
    """JSON as is; CSV as a list of rows (dicts by header), so keys read ``<row>.<column>``."""
    text = untrusted.read_text(path)  # bounded: an output is untrusted
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    return untrusted.load_json(text)


def _lookup(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        index = untrusted.count(part)  # not int(): '²'.isdigit() is True
        if isinstance(doc, list) and index is not None and index < len(doc):
            doc = doc[index]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise KeyError(dotted)
    return doc


def _sigma(want: dict[str, Any], doc: Any) -> tuple[float, str]:
    """The standard deviation ``want['sigma']`` declares, and how it was made up."""
    spec = want["sigma"]
    parts: list[tuple[float, str]] = []
    if "error" in spec:
        parts.append((float(spec["error"]), "declared"))
    if "error_key" in spec:
        key = str(spec["error_key"])
        try:
            own = float(_lookup(doc, key))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"sigma error_key {key} missing or not a number") from None
        # the output must not widen its own tolerance: its error is capped by the author
        cap = float(spec.get("max_error", abs(float(want["value"]))))
        if own > cap:
            hint = "" if "max_error" in spec else " (default: |value|; set sigma.max_error)"
            raise ValueError(f"sigma from {key} {own:g} is above max_error {cap:g}{hint}")
        parts.append((own, key))
    if "error" in want:
        parts.append((float(want["error"]), "expected value's error"))
    if not parts:
        raise ValueError("sigma needs error or error_key (or the value's own error)")
    for err, what in parts:
        if not math.isfinite(err) or err < 0:
            raise ValueError(f"sigma from {what} is {err:g}, not a finite error >= 0")
    sigma = math.sqrt(sum(err * err for err, _ in parts))
    made = " ⊕ ".join(f"{what} {err:g}" for err, what in parts)
    return sigma, made


def _number(x: float) -> float | None:
    """``x`` for JSON (None when not finite: run.json stays strict JSON)."""
    return x if math.isfinite(x) else None


def check_value(
    actual: float, want: dict[str, Any], doc: Any = None, data: dict[str, Any] | None = None
) -> tuple[bool, str]:
    """``actual`` against ``want``; ``doc`` is the output file that holds ``sigma.error_key``.
    ``data``, when given, is filled with the numbers (:data:`CHECK_DATA_KINDS` value)."""
    data = {} if data is None else data
    value = float(want["value"])
    tol = max(float(want.get("abs", 0.0)), float(want.get("rel", 0.0)) * abs(value))
    diff = abs(actual - value)
    data.update(
        kind="value", value=_number(actual), expected=_number(value), tolerance=_number(tol)
    )
    if "sigma" not in want:
        ok = math.isfinite(actual) and diff <= tol
        return ok, f"{actual:g} vs expected {value:g} ± {tol:g}"
    n = float(want["sigma"].get("n", 1.0))
    try:
        sigma, made = _sigma(want, doc)
    except ValueError as exc:
        return False, str(exc)
    allowed = max(tol, n * sigma)
    ok = math.isfinite(actual) and diff <= allowed
    pull = f"{(actual - value) / sigma:+.2f}" if sigma > 0 else ("0" if diff == 0 else "inf")
    data.update(
        tolerance=_number(allowed),
        sigma=_number(sigma),
        n_sigma=_number(n),
        pull=_number((actual - value) / sigma) if sigma > 0 else None,
    )
    return ok, (
        f"{actual:g} vs expected {value:g} ± {allowed:g} ({n:g} sigma, sigma {sigma:.4g} = "
        f"{made}); pull {pull} sigma"
    )


def check_histogram(
    path: Path,
    key: str,
    want: dict[str, Any],
    base: Path,
    data: dict[str, Any] | None = None,
    settings: Settings | None = None,
    hepdata_versions: Mapping[str, TablePin | int] | None = None,
) -> tuple[bool, str]:
    """Compare the histogram ``key`` of ``path`` with ``want['reference']`` under ``base``
    (a HEPData table: :mod:`odrun.workflow.references`); ``data``, when given, is filled
    with both histograms and the statistic."""
    data = {} if data is None else data
    data.update(kind="histogram", key=key, reference=str(want["reference"]))
    if want.get("label"):
        data["label"] = str(want["label"])
    source = ""
    if uses_hepdata(want):
        try:
            actual = read_histogram(path, key)
            reference, source = hepdata_histogram(want, base, settings, hepdata_versions)
        except HistogramError as exc:
            return False, str(exc)
        source = f" [reference {source}]"
    else:
        ref_file, _, ref_key = str(want["reference"]).partition("#")
        try:
            ref_path = confine(base, ref_file, "histogram reference")
        except OdrunError as exc:
            return False, f"reference {ref_file} is not inside the analysis folder: {exc.message}"
        if not ref_path.is_file():
            return False, f"reference {ref_file} not found in {base}"
        try:
            actual = read_histogram(path, key)
            reference = read_histogram(ref_path, ref_key or key)
        except HistogramError as exc:
            return False, str(exc)
    binning = same_binning(actual, reference)
    if not binning.ok:
        return False, binning.detail + source
    chi2 = want.get("chi2")
    matrix: Matrix | None = None
    if want.get("covariance") is not None:
        if chi2 is None:
            return False, "covariance is used by the chi2 test only: add chi2 (e.g. chi2: {})"
        try:
            matrix = hepdata_matrix(want, reference.edges, base, settings, hepdata_versions)
        except HistogramError as exc:
            return False, str(exc) + source
        if matrix is not None:
            source += f" [{matrix.described}]"
            data["covariance"] = matrix.described
    normalize = bool(want.get("normalize") or (chi2 or {}).get("normalize"))
    results: list[tuple[bool, str]] = []
    _histogram_data(data, actual, reference, normalize)
    if chi2 is None or any(k in want for k in BIN_BY_BIN):
        scaled = _normalized(actual, reference) if normalize else reference
        tol = Tolerance.of(want)
        data["tolerance"] = {"abs": tol.abs, "rel": tol.rel, "pull": tol.pull}
        result = compare(actual, scaled, tol)
        results.append((result.ok, result.detail))
    if chi2 is not None:
        results.append(_chi2(actual, reference, chi2, normalize, data, matrix))
    return all(ok for ok, _ in results), "; ".join(detail for _, detail in results) + source


def _histogram_data(
    data: dict[str, Any], actual: Histogram, reference: Histogram, normalize: bool
) -> None:
    """Both histograms into ``data``: the reference as compared (scaled when normalised),
    and each bin's pull ``(a - s r) / sqrt(var_a + s^2 var_r)``."""
    total_a, total_r = sum(actual.counts), sum(reference.counts)
    scale = total_a / total_r if normalize and total_a > 0 and total_r > 0 else 1.0
    pulls: list[float | None] = []
    for i, (a, r) in enumerate(zip(actual.counts, reference.counts, strict=True)):
        sigma = math.hypot(actual.error(i), scale * reference.error(i))
        pulls.append(_number((a - scale * r) / sigma) if sigma > 0 else None)
    data.update(
        edges=list(actual.edges),
        counts=list(actual.counts),
        errors=[actual.error(i) for i in range(len(actual.counts))],
        reference_counts=[_number(scale * r) for r in reference.counts],
        reference_errors=[_number(scale * reference.error(i)) for i in range(len(pulls))],
        scale=_number(scale),
        pulls=pulls,
    )


def _normalized(actual: Histogram, reference: Histogram) -> Histogram:
    """The reference scaled to the actual total; both totals must be positive (an empty
    output would scale the reference to zero bins and match it)."""
    total_a, total_r = sum(actual.counts), sum(reference.counts)
    if total_a <= 0 or total_r <= 0:
        raise HistogramError(
            f"normalize needs two histograms with positive totals: the output's is {total_a:g}, "
            f"the reference's {total_r:g}"
        )
    return reference.scaled(total_a / total_r)


def _chi2(
    actual: Histogram,
    reference: Histogram,
    spec: dict[str, Any],
    normalize: bool,
    data: dict[str, Any],
    matrix: Matrix | None = None,
) -> tuple[bool, str]:
    p_min = float(spec.get("p_min", 0.01))
    data["p_min"] = p_min
    try:
        result = chi2_test(
            actual,
            reference,
            normalize=normalize,
            matrix=matrix.rows if matrix is not None else None,
            correlation=matrix is not None and matrix.kind == "correlation",
        )
    except ValueError as exc:
        return False, f"chi2 test impossible: {exc}"
    pulls: list[float | None] = [None] * len(actual.counts)
    for pull in result.worst:  # the test's own pulls (its variances), every bin it used
        pulls[pull.index] = _number(pull.pull)
    data.update(
        statistic=_number(result.chi2), ndf=result.ndf, p_value=_number(result.p_value), pulls=pulls
    )
    ok = result.p_value >= p_min
    verdict = "compatible" if ok else "INCOMPATIBLE"
    return ok, f"{verdict} (p_min {p_min:g}): {result.describe()}"


def check_ks(
    path: Path, spec: dict[str, Any], base: Path, data: dict[str, Any] | None = None
) -> tuple[bool, str]:
    """Two-sample KS test of ``spec['column']`` in ``path`` against ``spec['reference']``."""
    data = {} if data is None else data
    column = str(spec.get("column", ""))
    data.update(kind="ks", column=column, reference=str(spec["reference"]))
    ref_file, _, ref_column = str(spec["reference"]).partition("#")
    try:
        ref_path = confine(base, ref_file, "reference")
    except OdrunError as exc:
        return False, exc.message
    if not ref_path.is_file():
        return False, f"reference {ref_file} not found in {base}"
    try:
        sample = read_sample(path, column)
        reference = read_sample(ref_path, ref_column or column)
    except SampleError as exc:
        return False, str(exc)
    p_min = float(spec.get("p_min", 0.01))
    floor = ks_min_p_value(len(sample), len(reference))
    if floor >= p_min:  # even disjoint samples would pass: the test cannot fail
        return False, (
            f"sample too small for a KS test at p_min {p_min:g}: with n {len(sample)} "
            f"(reference n {len(reference)}) the smallest possible p-value is {floor:.3g}"
        )
    result = ks_2samp(sample, reference)
    xs, f_sample, f_reference = ecdf_points(sample, reference)
    data.update(
        statistic=_number(result.statistic),
        p_value=_number(result.p_value),
        p_min=p_min,
        n=result.n,
        m=result.m,
        at=_number(result.at),
        cdf={"x": [_number(x) for x in xs], "sample": f_sample, "reference": f_reference},
    )
    ok = result.p_value >= p_min
    verdict = "compatible" if ok else "INCOMPATIBLE"
    return ok, f"{verdict} (p_min {p_min:g}): {result.describe()}"


def _guarded(check: Callable[..., tuple[bool, str]], *args: Any) -> tuple[bool, str]:
    """``check(*args)``; a check whose arithmetic or input fails, fails (with the reason)
    instead of aborting the verdict: a crash here would leave a run without its record."""
    try:
        return check(*args)
    except (ArithmeticError, ValueError, OSError) as exc:  # HistogramError, SampleError too
        return False, f"cannot be checked: {exc}"


def evaluate(
    workspace: Path,
    expectations: list[dict[str, Any]],
    base: Path | None = None,
    settings: Settings | None = None,
    hepdata_versions: Mapping[str, TablePin | int] | None = None,
) -> list[Check]:
    """One Check per expectation; histogram references are read from ``base`` (the analysis
    folder; the workspace when not given), HEPData tables with ``settings`` (the cache,
    the HEPData URL; :meth:`Settings.load` when not given) at the versions a run pinned
    (``hepdata_versions``, for references without ``@version``)."""
    checks: list[Check] = []
    for item in expectations:
        rel = str(item["file"])
        label = str(item.get("name") or rel)
        try:  # a step may have left a link to a host file: never read through it
            path = confine(workspace, rel, "expectation file")
        except OdrunError as exc:
            checks.append(Check(label, False, f"{rel} is not a file inside the workspace: {exc}"))
            continue
        if not path.is_file():
            checks.append(Check(label, False, f"{rel} was not produced"))
            continue
        if "checksum" in item:
            try:
                want = parse_checksum(str(item["checksum"]), where=f"expect {rel}")
            except MetadataError as exc:
                checks.append(Check(f"{label} checksum", False, str(exc)))
            else:
                digest = checksum_file(path, want.algorithm)
                numbers = {"kind": "checksum", "value": str(digest), "expected": str(want)}
                checks.append(
                    Check(
                        f"{label} checksum", digest == want, f"{digest} vs expected {want}", numbers
                    )
                )
        values = item.get("values") or {}
        histograms = item.get("histograms") or {}
        ks = item.get("ks") or []
        ks = [ks] if isinstance(ks, dict) else list(ks)
        if "checksum" not in item and not values and not histograms and not ks:
            size = path.stat().st_size
            present = {"kind": "present", "size": size}
            checks.append(Check(label, True, f"{rel} present ({size} bytes)", present))
        doc: Any = None
        if values:
            try:
                doc = _load_table(path)
            except (OSError, ValueError, csv.Error) as exc:
                checks.append(Check(label, False, f"{rel} is not readable JSON/CSV: {exc}"))
                continue
        for key, want in values.items():
            try:
                actual = float(_lookup(doc, key))
            except (KeyError, TypeError, ValueError, OverflowError):
                checks.append(Check(f"{label} {key}", False, f"{key} missing or not a number"))
                continue
            data: dict[str, Any] = {}
            ok, detail = _guarded(check_value, actual, want, doc, data)
            checks.append(Check(f"{label} {key}", ok, detail, data))
        for key, want in histograms.items():
            data = {}
            ok, detail = _guarded(
                check_histogram,
                path,
                key,
                want,
                base or workspace,
                data,
                settings,
                hepdata_versions,
            )
            checks.append(Check(f"{label} {key}", ok, detail, data))
        for spec in ks:
            data = {}
            ok, detail = _guarded(check_ks, path, spec, base or workspace, data)
            column = spec.get("column")
            checks.append(Check(f"{label} ks{f' {column}' if column else ''}", ok, detail, data))
    return checks


def junit_xml(suite: str, checks: list[Check], seconds: float = 0.0) -> bytes:
    failures = sum(1 for c in checks if not c.ok)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        time=f"{seconds:.3f}",
    )
    for check in checks:
        case = ET.SubElement(root, "testcase", classname=suite, name=check.name)
        if not check.ok:
            ET.SubElement(case, "failure", message=check.detail).text = check.detail
        else:
            ET.SubElement(case, "system-out").text = check.detail
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data
