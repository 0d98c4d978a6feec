"""Statistical expectations: chi2 and KS p-values, the chi2 histogram test, sigma tolerances."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import jsonschema
import pytest
import yaml

from odrun.workflow.expect import check_value, evaluate
from odrun.workflow.histograms import Histogram
from odrun.workflow.samples import SampleError, read_sample
from odrun.workflow.stats import chi2_sf, chi2_test, gamma_q, kolmogorov_sf, ks_2samp

REPO = Path(__file__).resolve().parent.parent
EDGES = tuple(float(i) for i in range(6))

# Published tables: chi2 critical values (e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4) and the
# Kolmogorov distribution's (Smirnov 1948): value -> upper tail probability.
CHI2_TABLE = [
    (3.841, 1, 0.05), (6.635, 1, 0.01), (5.991, 2, 0.05), (18.307, 10, 0.05),
    (23.209, 10, 0.01), (43.773, 30, 0.05), (124.342, 100, 0.05), (135.807, 100, 0.01),
    (2.558, 10, 0.99),
]  # fmt: skip
KS_TABLE = [(1.2238, 0.10), (1.3581, 0.05), (1.4802, 0.025), (1.6276, 0.01), (1.9495, 0.001)]


@pytest.mark.parametrize(("x", "ndf", "p"), CHI2_TABLE)
def test_chi2_p_values_match_published_tables(x: float, ndf: int, p: float) -> None:
    assert chi2_sf(x, ndf) == pytest.approx(p, rel=2e-3)


@pytest.mark.parametrize(("lam", "p"), KS_TABLE)
def test_kolmogorov_p_values_match_published_tables(lam: float, p: float) -> None:
    assert kolmogorov_sf(lam) == pytest.approx(p, rel=2e-3)


def test_p_values_match_scipy_across_the_range() -> None:
    stats = pytest.importorskip("scipy.stats")
    for ndf in (1, 2, 3, 7, 30, 75, 79, 500):
        for x in (1e-3, 0.5, 1.0, 3.0, ndf * 0.5, ndf, ndf + 1.0, ndf * 2.0, ndf * 5.0):
            assert chi2_sf(x, ndf) == pytest.approx(float(stats.chi2.sf(x, ndf)), rel=1e-9)
    for lam in (0.1, 0.3, 0.6, 1.0, 1.17, 1.19, 1.5, 2.5, 4.0):
        assert kolmogorov_sf(lam) == pytest.approx(float(stats.kstwobign.sf(lam)), abs=1e-12)
    rng = random.Random(3)
    a = [rng.gauss(0, 1) for _ in range(400)]
    b = [rng.gauss(0.15, 1) for _ in range(2000)]
    ours, theirs = ks_2samp(a, b), stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(float(theirs.statistic), abs=1e-12)
    assert ours.p_value == pytest.approx(float(theirs.pvalue), abs=5e-3)


def test_incomplete_gamma_edges() -> None:
    assert gamma_q(3.0, 0.0) == 1.0
    assert gamma_q(3.0, math.inf) == 0.0
    assert gamma_q(1.0, 2.0) == pytest.approx(math.exp(-2.0))  # Q(1, x) = e^-x
    assert chi2_sf(1e4, 10) == 0.0 or chi2_sf(1e4, 10) < 1e-300
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


def test_chi2_of_identical_and_of_hand_computed_histograms() -> None:
    ref = Histogram(EDGES, (10.0, 20.0, 40.0, 20.0, 10.0))
    same = chi2_test(ref, ref)
    assert (same.chi2, same.ndf, same.p_value) == (0.0, 5, 1.0)
    moved = Histogram(EDGES, (10.0, 20.0, 60.0, 20.0, 10.0))
    result = chi2_test(moved, ref)  # Poisson both: (60 - 40)^2 / (60 + 40)
    assert result.chi2 == pytest.approx(4.0)
    assert result.ndf == 5
    assert result.p_value == pytest.approx(chi2_sf(4.0, 5))
    assert result.worst[0].index == 2
    assert result.worst[0].pull == pytest.approx(2.0)
    # errors from the files are used and combined in quadrature
    with_errors = Histogram(EDGES, ref.counts, (1.0, 1.0, 3.0, 1.0, 1.0))
    measured = Histogram(EDGES, moved.counts, (1.0, 1.0, 4.0, 1.0, 1.0))
    assert chi2_test(measured, with_errors).chi2 == pytest.approx(400 / 25)


def test_chi2_normalize_scales_the_reference_and_costs_one_ndf() -> None:
    shape = Histogram(EDGES, (0.1, 0.2, 0.4, 0.2, 0.1), (0.001,) * 5)  # a normalised reference
    data = Histogram(EDGES, (98.0, 205.0, 399.0, 203.0, 95.0))
    raw = chi2_test(data, shape)
    assert raw.p_value < 1e-10
    norm = chi2_test(data, shape, normalize=True)
    assert norm.ndf == 4
    assert norm.scale == pytest.approx(1000.0)
    assert norm.p_value > 0.5
    assert "reference scaled by 1000" in norm.describe()
    skewed = Histogram(EDGES, (150.0, 205.0, 399.0, 203.0, 45.0))
    assert chi2_test(skewed, shape, normalize=True).p_value < 1e-6  # shape, not size


def test_chi2_low_counts_empty_bins_and_pooled_poisson_errors() -> None:
    ref = Histogram(EDGES, (0.0, 3.0, 10.0, 0.0, 1.0))
    data = Histogram(EDGES, (0.0, 0.0, 12.0, 0.0, 2.0))
    result = chi2_test(data, ref)
    assert result.skipped == 2  # bins empty in both carry no information
    assert result.ndf == 3
    # the empty data bin beside 3 reference entries has a variance (pooled: 0 + 3), not 0
    assert math.isfinite(result.chi2)
    assert result.chi2 == pytest.approx(9 / 3 + 4 / 22 + 1 / 3)
    # a weighted reference: the data's Poisson variance is the reference's prediction
    weighted = Histogram(EDGES, (0.0, 3.0, 10.0, 0.0, 1.0), (0.0, 0.0, 0.0, 0.0, 0.0))
    assert chi2_test(data, weighted).chi2 == pytest.approx(9 / 3 + 4 / 10 + 1 / 1)
    with pytest.raises(ValueError, match="no degree of freedom"):
        chi2_test(Histogram(EDGES, (0.0,) * 5), Histogram(EDGES, (0.0,) * 5))


def test_chi2_test_has_its_stated_size() -> None:
    """Poisson samples of one shape fail p >= 0.05 about 5% of the time (not 0, not 50%)."""
    rng = random.Random(11)
    means = [5.0, 20.0, 60.0, 120.0, 60.0, 20.0, 5.0, 2.0]
    edges = tuple(float(i) for i in range(len(means) + 1))
    truth = Histogram(edges, tuple(means), (0.0,) * len(means))

    def poisson(mu: float) -> float:
        k, p, limit = 0, 1.0, math.exp(-mu)
        while True:
            p *= rng.random()
            if p < limit:
                return float(k)
            k += 1

    trials = 2000
    fails = sum(
        chi2_test(Histogram(edges, tuple(poisson(m) for m in means)), truth).p_value < 0.05
        for _ in range(trials)
    )
    assert 0.03 * trials < fails < 0.07 * trials


def test_ks_two_samples() -> None:
    rng = random.Random(5)
    a = [rng.gauss(91.2, 2.0) for _ in range(3000)]
    b = [rng.gauss(91.2, 2.0) for _ in range(30000)]
    shifted = [x * 1.01 for x in a]  # a 1% scale error
    assert ks_2samp(a, b).p_value > 0.01
    bad = ks_2samp(shifted, b)
    assert bad.p_value < 1e-10
    assert "KS D " in bad.describe()
    tied = ks_2samp([1.0, 1.0, 2.0], [1.0, 1.0, 2.0])
    assert tied.statistic == 0.0
    assert tied.p_value == 1.0
    with pytest.raises(ValueError):
        ks_2samp([], [1.0])


def test_samples_from_csv_json_and_text(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("mass,q\n91.0,1\n90.5,-1\n")
    (tmp_path / "one.csv").write_text("m\n1\n2\n")
    (tmp_path / "a.json").write_text(json.dumps({"fit": {"masses": [1, 2.5]}}))
    (tmp_path / "rows.json").write_text(json.dumps([{"mass": 1}, {"mass": 2}]))
    (tmp_path / "a.txt").write_text("1.5\n2.5\n")
    assert read_sample(tmp_path / "a.csv", "mass") == [91.0, 90.5]
    assert read_sample(tmp_path / "one.csv") == [1.0, 2.0]
    assert read_sample(tmp_path / "a.json", "fit.masses") == [1.0, 2.5]
    assert read_sample(tmp_path / "rows.json", "mass") == [1.0, 2.0]
    assert read_sample(tmp_path / "a.txt") == [1.5, 2.5]
    with pytest.raises(SampleError, match="no column 'pt'"):
        read_sample(tmp_path / "a.csv", "pt")
    with pytest.raises(SampleError, match="no key"):
        read_sample(tmp_path / "a.json", "fit.nothing")
    (tmp_path / "bad.txt").write_text("1\nnan\n")
    with pytest.raises(SampleError, match="not finite"):
        read_sample(tmp_path / "bad.txt")


def test_sigma_tolerances() -> None:
    doc = {"mass": 91.3, "mass_error": 0.05, "nested": {"err": 0.2}}
    declared = {"value": 91.1876, "sigma": {"n": 3, "error": 0.05}}
    ok, detail = check_value(91.3, declared, doc)  # 2.25 sigma
    assert ok
    assert "pull +2.25 sigma" in detail
    assert not check_value(91.4, declared, doc)[0]  # 4.25 sigma
    from_output = {"value": 91.1876, "sigma": {"n": 2, "error_key": "mass_error"}}
    assert not check_value(91.3, from_output, doc)[0]  # 2.25 > 2
    assert check_value(91.3, {**from_output, "sigma": {"n": 2, "error_key": "nested.err"}}, doc)[0]
    # the expected value's own error in quadrature: sqrt(0.03^2 + 0.04^2) = 0.05
    combined = {"value": 10.0, "error": 0.04, "sigma": {"n": 1, "error": 0.03}}
    assert check_value(10.0499, combined)[0]
    assert not check_value(10.0501, combined)[0]
    detail = check_value(10, combined)[1]
    assert "sigma 0.05 = declared 0.03 ⊕ expected value's error 0.04" in detail
    missing = check_value(91.3, {"value": 91.0, "sigma": {"n": 3, "error_key": "nope"}}, doc)
    assert missing == (False, "sigma error_key nope missing or not a number")
    assert not check_value(math.nan, declared, doc)[0]
    assert check_value(1.0, {"value": 1.0, "sigma": {"n": 3}}) == (
        False, "sigma needs error or error_key (or the value's own error)")  # fmt: skip
    # abs/rel keep their meaning beside sigma: the wider one wins
    assert check_value(91.6, {**declared, "abs": 0.5}, doc)[0]


def test_evaluate_chi2_ks_and_sigma_from_files(tmp_path: Path) -> None:
    ws, base = tmp_path / "ws", tmp_path / "analysis"
    (ws / "results").mkdir(parents=True)
    (base / "reference").mkdir(parents=True)
    rng = random.Random(7)
    masses = [rng.gauss(91.19, 2.0) for _ in range(2000)]
    (ws / "results/masses.csv").write_text("mass\n" + "\n".join(f"{m:.4f}" for m in masses))
    reference = [rng.gauss(91.19, 2.0) for _ in range(20000)]
    (base / "reference/masses.json").write_text(json.dumps({"m": reference}))
    (ws / "results/fit.json").write_text(json.dumps({"mass": 91.25, "mass_error": 0.03}))
    counts = [sum(1 for m in masses if 85 + i <= m < 86 + i) for i in range(12)]
    ref_counts = [sum(1 for m in reference if 85 + i <= m < 86 + i) for i in range(12)]
    hist = {"edges": [85 + i for i in range(13)], "counts": counts}
    (ws / "results/h.json").write_text(json.dumps({"h": hist, "h2": hist}))
    (base / "reference/h.json").write_text(
        json.dumps({"h": {"edges": hist["edges"], "counts": ref_counts}})
    )
    expect = [
        {"name": "fit", "file": "results/fit.json", "values": {
            "mass": {"value": 91.1876, "sigma": {"n": 3, "error_key": "mass_error"}}}},
        {"name": "spectrum", "file": "results/h.json", "histograms": {
            "h": {"reference": "reference/h.json#h", "chi2": {"p_min": 0.01, "normalize": True}},
            "h2": {"reference": "reference/h.json#h", "chi2": {"p_min": 0.01}}}},
        {"name": "masses", "file": "results/masses.csv",
         "ks": {"column": "mass", "reference": "reference/masses.json#m", "p_min": 0.01}},
    ]  # fmt: skip
    checks = {c.name: c for c in evaluate(ws, expect, base)}
    assert checks["fit mass"].ok  # 2.08 sigma
    assert checks["spectrum h"].ok, checks["spectrum h"].detail
    assert "ndf 11," in checks["spectrum h"].detail  # 12 bins, normalised
    assert "p-value " in checks["spectrum h"].detail
    assert "worst bins: bin " in checks["spectrum h"].detail
    assert not checks["spectrum h2"].ok  # 10x the statistics without normalize
    assert "INCOMPATIBLE" in checks["spectrum h2"].detail
    assert checks["masses ks mass"].ok, checks["masses ks mass"].detail
    # the same checks fail on a biased output
    (ws / "results/masses.csv").write_text("mass\n" + "\n".join(f"{m * 1.01:.4f}" for m in masses))
    (ws / "results/fit.json").write_text(json.dumps({"mass": 91.3, "mass_error": 0.03}))
    checks = {c.name: c for c in evaluate(ws, expect, base)}
    assert not checks["fit mass"].ok
    assert not checks["masses ks mass"].ok
    assert "INCOMPATIBLE" in checks["masses ks mass"].detail


def test_schema_accepts_the_statistical_keys_and_validate_checks_ks_references(
    odrun, tmp_path: Path
) -> None:
    (tmp_path / "reana.yaml").write_text(
        "workflow:\n  type: serial\n  specification:\n    steps:\n"
        "      - name: a\n        environment: python:3.11-slim\n        commands: [echo hi]\n"
    )
    (tmp_path / "ref.csv").write_text("m\n1\n")
    (tmp_path / "h.json").write_text(json.dumps({"edges": [0, 1], "counts": [1]}))
    manifest = """version: 1
expect:
  - file: out.json
    values:
      mass: {value: 91.1876, error: 0.0021, sigma: {n: 3, error_key: mass_error}}
      width: {value: 2.5, sigma: {n: 2, error: 0.1}}
    histograms:
      h: {reference: h.json, chi2: {p_min: 0.01, normalize: true}}
      g: {reference: h.json, normalize: true, pull: 3}
    ks: {column: m, reference: ref.csv#m, p_min: 0.05}
  - file: out.csv
    ks: [{reference: ref.csv}, {column: x, reference: KS_REF}]
"""
    (tmp_path / "odrun.yaml").write_text(manifest.replace("KS_REF", "ref.csv"))
    good = odrun("validate", str(tmp_path))
    assert good.code == 0, good.out + good.err
    (tmp_path / "odrun.yaml").write_text(manifest.replace("KS_REF", "missing.csv"))
    missing = odrun("validate", str(tmp_path))
    assert missing.code == 2
    assert "expect[1].ks[1]" in missing.out + missing.err
    assert "missing.csv does not exist" in missing.out + missing.err
    # the schema itself (spec validation may report unknown keys as warnings or errors)
    schema = json.loads((REPO / "specs" / "odrun.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(yaml.safe_load(manifest)))
    for bad in (
        manifest.replace("p_min: 0.01", "p_min: 1.5"),
        manifest.replace("p_min: 0.01,", "p_min: 0.01, size: 2,"),
        manifest.replace("sigma: {n: 2, error: 0.1}", "sigma: {error: 0.1}"),
        manifest.replace("p_min: 0.05}", "p_min: 0.05, bins: 3}"),
        manifest.replace("error: 0.0021", "error: -1"),
    ):
        assert list(validator.iter_errors(yaml.safe_load(bad))), bad


def test_normalize_on_the_histogram_also_scales_bin_by_bin_comparisons(tmp_path: Path) -> None:
    ws, base = tmp_path / "ws", tmp_path / "analysis"
    (ws / "out").mkdir(parents=True)
    base.mkdir()
    edges = [0, 1, 2, 3]
    (ws / "out/h.json").write_text(json.dumps({"edges": edges, "counts": [100, 400, 100]}))
    (base / "ref.json").write_text(
        json.dumps({"edges": edges, "counts": [0.1666, 0.6667, 0.1667], "errors": [1e-3] * 3})
    )
    expect = [
        {"file": "out/h.json", "histograms": {
            "": {"reference": "ref.json", "pull": 1, "normalize": True},
            ".": {"reference": "ref.json", "pull": 1}}},
    ]  # fmt: skip
    checks = evaluate(ws, expect, base)
    assert checks[0].ok, checks[0].detail  # 600 x (1/6, 2/3, 1/6)
    assert not checks[1].ok  # 100 vs 0.17 without normalisation


def _histogram_files(tmp_path: Path, actual: dict[str, object]) -> Path:
    (tmp_path / "ref.json").write_text(
        json.dumps({"h": {"edges": [0, 1, 2, 3], "counts": [100, 100, 100]}})
    )
    (tmp_path / "out.json").write_text(json.dumps({"h": actual}).replace("Infinity", "1e999"))
    return tmp_path


@pytest.mark.parametrize(
    ("errors", "test"),
    [
        *[  # JSON 1e999: an infinite error made every pull 0 (chi2 0, p-value 1)
            ([math.inf] * 3, test)
            for test in ({"chi2": {"p_min": 0.01}}, {"pull": 3}, {"rel": 0.1})
        ],
        *[([1.0, math.nan, 1.0], test) for test in ({"chi2": {"p_min": 0.01}}, {"pull": 3})],
        # finite, but its square overflows: OverflowError out of evaluate, no run.json
        ([1e200] * 3, {"chi2": {"p_min": 0.01}}),
        ([1e200] * 3, {"chi2": {"p_min": 0.01, "normalize": True}}),
    ],
)
def test_histograms_with_non_finite_or_overflowing_errors_fail(
    tmp_path: Path, errors: list[float], test: dict[str, object]
) -> None:
    """Before: errors inf passed chi2 (p-value 1) and pull (pull 0) for counts 5x off;
    errors 1e200 raised OverflowError out of evaluate."""
    ws = _histogram_files(
        tmp_path, {"edges": [0, 1, 2, 3], "counts": [500, 3, 0], "errors": errors}
    )
    expect = [{"file": "out.json", "histograms": {"h": {"reference": "ref.json", **test}}}]
    (check,) = evaluate(ws, expect)
    assert not check.ok, check.detail


@pytest.mark.parametrize("where", ["counts", "edges", "reference"])
@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_histograms_with_non_finite_counts_or_edges_fail_and_say_why(
    tmp_path: Path, where: str, bad: float
) -> None:
    actual = {"edges": [0, 1, 2, 3], "counts": [100, 100, 100]}
    if where == "reference":
        (tmp_path / "out.json").write_text(json.dumps({"h": actual}))
        ref = {"edges": [0, 1, 2, 3], "counts": [100, bad, 100]}
        (tmp_path / "ref.json").write_text(json.dumps({"h": ref}))
    else:
        _histogram_files(tmp_path, actual)
        doc = json.loads((tmp_path / "out.json").read_text())
        doc["h"][where][1] = bad
        (tmp_path / "out.json").write_text(json.dumps(doc))
    for test in ({"chi2": {"p_min": 0.01}}, {"pull": 3}, {"abs": 1e300}):
        expect = [{"file": "out.json", "histograms": {"h": {"reference": "ref.json", **test}}}]
        (check,) = evaluate(tmp_path, expect)
        assert not check.ok, check.detail
        assert "not finite" in check.detail


def test_chi2_with_overflowing_variances_is_impossible_not_a_crash() -> None:
    huge = Histogram((0.0, 1.0, 2.0), (5.0, 7.0), (1e200, 1e200))
    with pytest.raises(ValueError, match="not finite"):
        chi2_test(huge, Histogram((0.0, 1.0, 2.0), (5.0, 7.0)))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_ks_with_too_few_values_to_ever_fail_fails(tmp_path: Path, n: int) -> None:
    """Before: 1 or 2 values a world away from a 10,000-value reference passed p_min 0.01
    (D 1, p 0.097 / 0.011): the asymptotic test cannot reach p_min with such samples."""
    (tmp_path / "ref.txt").write_text(" ".join(str(91 + i / 10_000) for i in range(10_000)))
    (tmp_path / "out.txt").write_text(" ".join(["1000"] * n))
    expect = [{"file": "out.txt", "ks": {"reference": "ref.txt", "p_min": 0.01}}]
    (check,) = evaluate(tmp_path, expect)
    assert not check.ok, check.detail
    if n < 3:
        assert "too small" in check.detail
    # a sample that can fail, and agrees, still passes
    (tmp_path / "out.txt").write_text(" ".join(str(91 + i / 20) for i in range(20)))
    (ok,) = evaluate(tmp_path, expect)
    assert ok.ok, ok.detail


def test_a_check_that_cannot_be_computed_fails_alone(tmp_path: Path) -> None:
    """Normalising a reference of total 3e-300 to an output of 2e300 overflows (the scaled
    histogram is not finite): that check fails with the reason, the others still run
    (failed before the fix: HistogramError out of evaluate, no verdict, no run.json)."""
    (tmp_path / "ref.json").write_text(
        json.dumps({"h": {"edges": [0, 1, 2, 3], "counts": [1e-300, 1e-300, 1e-300]}})
    )
    (tmp_path / "out.json").write_text(
        json.dumps({"h": {"edges": [0, 1, 2, 3], "counts": [1e300, 1e300, 1]}, "x": 1})
    )
    expect = [
        {"file": "out.json", "histograms": {"h": {"reference": "ref.json", "pull": 3,
                                                  "normalize": True}}},
        {"file": "out.json", "values": {"x": {"value": 1}}},
    ]  # fmt: skip
    bad, good = evaluate(tmp_path, expect)
    assert not bad.ok
    assert "not finite" in bad.detail
    assert good.ok


@pytest.mark.parametrize("test", [{"pull": 3}, {"rel": 0.05}, {"abs": 1}])
@pytest.mark.parametrize(
    ("actual", "reference"),
    [
        ([0, 0, 0], [100, 100, 100]),  # the selection kept nothing
        ([100, 100, 100], [0, 0, 0]),  # an empty reference cannot be scaled
        ([-5, 3, 1], [100, 100, 100]),  # negative total (weights)
    ],
)
def test_normalize_needs_two_positive_totals_for_bin_by_bin_checks_too(
    tmp_path: Path, actual: list[int], reference: list[int], test: dict[str, object]
) -> None:
    """Failed before: an empty output histogram scaled the reference to zero, and the
    bin-by-bin check then said "3 bins identical to the reference" (exit 0); the chi2 test
    already refused it."""
    (tmp_path / "ref.json").write_text(
        json.dumps({"h": {"edges": [0, 1, 2, 3], "counts": reference}})
    )
    (tmp_path / "out.json").write_text(json.dumps({"h": {"edges": [0, 1, 2, 3], "counts": actual}}))
    hist = {"reference": "ref.json", "normalize": True, **test}
    (check,) = evaluate(tmp_path, [{"file": "out.json", "histograms": {"h": hist}}])
    assert not check.ok, check.detail
    assert "positive total" in check.detail


@pytest.mark.parametrize("suffix", ["csv", "json", "txt"])
def test_outputs_and_references_with_a_utf8_bom_are_read(tmp_path: Path, suffix: str) -> None:
    """Failed before: a BOM (Excel, pandas encoding='utf-8-sig', PowerShell) made the first
    CSV column unknown and JSON unreadable, so a correct run failed."""
    bom = "\ufeff"
    values = [91 + i / 10 for i in range(50)]
    if suffix == "csv":
        (tmp_path / "fit.csv").write_text(bom + "mass,error\n91.2,0.1\n", encoding="utf-8")
        hist = "bin_low,bin_high,count\n0,1,10\n1,2,20\n"
        (tmp_path / "h.csv").write_text(bom + hist, encoding="utf-8")
        (tmp_path / "ref.csv").write_text(bom + hist, encoding="utf-8")
        (tmp_path / "m.csv").write_text(bom + "mass\n" + "\n".join(map(str, values)))
        expect = [
            {"file": "fit.csv", "values": {"0.mass": {"value": 91.2, "abs": 0.01}}},
            {"file": "h.csv", "histograms": {"h": {"reference": "ref.csv", "abs": 0}}},
            {"file": "m.csv", "ks": {"column": "mass", "reference": "m.csv#mass"}},
        ]
    elif suffix == "json":
        (tmp_path / "fit.json").write_text(bom + json.dumps({"mass": 91.2}), encoding="utf-8")
        hist = json.dumps({"h": {"edges": [0, 1, 2], "counts": [10, 20]}, "m": values})
        (tmp_path / "h.json").write_text(bom + hist, encoding="utf-8")
        expect = [
            {"file": "fit.json", "values": {"mass": {"value": 91.2, "abs": 0.01}}},
            {"file": "h.json", "histograms": {"h": {"reference": "h.json", "abs": 0}}},
            {"file": "h.json", "ks": {"column": "m", "reference": "h.json#m"}},
        ]
    else:
        (tmp_path / "m.txt").write_text(bom + " ".join(map(str, values)), encoding="utf-8")
        expect = [{"file": "m.txt", "ks": {"reference": "m.txt"}}]
    for check in evaluate(tmp_path, expect):
        assert check.ok, check.detail


def test_an_output_cannot_widen_its_own_tolerance() -> None:
    """``error_key`` reads the error from the output: a run claiming a huge error must not pass."""
    doc = {"mass": 95.0, "mass_error": 10.0, "small": 0.03}
    own = {"value": 91.1876, "sigma": {"n": 3, "error_key": "mass_error"}}
    # no max_error: the output's error may not exceed |value| ... 10 < 91 so the cap is max_error
    capped = {**own, "sigma": {**own["sigma"], "max_error": 0.06}}
    ok, detail = check_value(95.0, capped, doc)
    assert not ok
    assert "mass_error 10 is above max_error 0.06" in detail
    assert check_value(91.2, {**capped, "sigma": {**capped["sigma"], "error_key": "small"}}, doc)[0]
    # without max_error the default cap is |value|: an error as large as the value says nothing
    assert not check_value(95.0, own, {"mass_error": 200.0})[0]
    assert "above max_error" in check_value(95.0, own, {"mass_error": 200.0})[1]
    # an expected value of 0 needs an explicit cap
    zero = {"value": 0.0, "sigma": {"n": 3, "error_key": "mass_error"}}
    ok, detail = check_value(0.01, zero, {"mass_error": 0.02})
    assert not ok
    assert "set sigma.max_error" in detail
    assert check_value(0.01, {**zero, "sigma": {**zero["sigma"], "max_error": 0.05}},
                       {"mass_error": 0.02})[0]  # fmt: skip
    # a declared error is the author's own: no cap applies to it
    assert check_value(95.0, {"value": 91.0, "sigma": {"n": 1, "error": 5.0}})[0]


def test_checks_read_bounded_regular_files_only(tmp_path: Path) -> None:
    """An analysis's output is untrusted: a huge table or a FIFO must not hang or exhaust verify."""
    import os

    from odrun import untrusted
    from odrun.workflow.expect import evaluate

    results = tmp_path / "results"
    results.mkdir()
    huge = results / "fit.json"
    with huge.open("wb") as f:  # sparse: costs no disk, would cost GBs of memory to read
        f.truncate(untrusted.MAX_READ_BYTES + 1)
    os.mkfifo(results / "spectrum.csv")
    (tmp_path / "ref.json").write_text('{"h": {"edges": [0, 1], "counts": [1]}}')
    (tmp_path / "r.csv").write_text("m\n1\n2\n")
    checks = evaluate(
        tmp_path,
        [
            {"file": "results/fit.json", "values": {"mass": {"value": 91.0, "abs": 1.0}}},
            {"file": "results/fit.json", "histograms": {"h": {"reference": "ref.json", "abs": 1}}},
            {"file": "results/fit.json", "ks": {"column": "m", "reference": "r.csv#m"}},
        ],
    )
    assert [c.ok for c in checks] == [False, False, False]
    for check in checks:
        assert "larger than" in check.detail, check.detail
    with pytest.raises(ValueError, match="not a regular file"):  # raises, never blocks
        untrusted.read_text(results / "spectrum.csv")
