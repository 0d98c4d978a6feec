"""Correlated references: HEPData covariance/correlation tables and the chi2 with them."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odrun.errors import HepdataError
from odrun.hepdata import parse_table
from odrun.hepdata.matrix import MAX_BINS, to_matrix
from odrun.hepdata.table import table_from_document
from odrun.workflow.expect import evaluate
from odrun.workflow.histograms import Histogram
from odrun.workflow.references import remote_references
from odrun.workflow.stats import chi2_test, cholesky

DATA = Path(__file__).parent / "data" / "hepdata"
EDGES = (0.0, 60.0, 100.0, 200.0, 600.0)
STAT = (1100.0, 1600.0, 490.0, 60.0)
DET = (79.0, 75.0, 41.0, 2.0)
BKG = (15.0, 15.0, 2.0, 0.0)


def _matrix_doc(elements: list[tuple[Any, Any, Any]], name: str = "Covariance") -> dict[str, Any]:
    """A matrix table: one row per (row bin, column bin, value)."""
    return {
        "independent_variables": [
            {"header": {"name": "x"}, "values": [r for r, _, _ in elements]},
            {"header": {"name": "x"}, "values": [c for _, c, _ in elements]},
        ],
        "dependent_variables": [
            {"header": {"name": name}, "values": [{"value": v} for _, _, v in elements]}
        ],
    }


def _bin(i: int, edges: tuple[float, ...] = EDGES) -> dict[str, float]:
    return {"low": edges[i], "high": edges[i + 1]}


def test_the_example_table_is_the_covariance_of_its_sources() -> None:
    table = parse_table((DATA / "data3_covariance.yaml").read_bytes(), "cov")
    matrix = to_matrix(table, EDGES)
    expected = [
        [(STAT[i] ** 2 if i == j else 0) + DET[i] * DET[j] + BKG[i] * BKG[j] for j in range(4)]
        for i in range(4)
    ]
    assert [list(r) for r in matrix.rows] == expected  # the lower triangle, mirrored
    assert matrix.kind == "covariance"
    assert "(4 x 4)" in matrix.described


@pytest.mark.parametrize("form", ["edges", "centres", "index1", "index0"])
def test_bins_may_be_given_by_edges_values_or_numbers(form: str) -> None:
    rho = [[1.0, 0.5, 0.1, 0.0], [0.5, 1.0, 0.2, 0.0], [0.1, 0.2, 1.0, -0.3], [0.0, 0.0, -0.3, 1.0]]

    def axis(i: int) -> dict[str, float]:
        if form == "edges":
            return _bin(i)
        if form == "centres":
            return {"value": (EDGES[i] + EDGES[i + 1]) / 2}
        return {"value": i + (1 if form == "index1" else 0)}

    elements = [(axis(i), axis(j), rho[i][j]) for i in range(4) for j in range(4)]
    base = {"index1": 1, "index0": 0}.get(form)
    table = table_from_document(_matrix_doc(elements, "Correlation"), "rho")
    matrix = to_matrix(table, EDGES, "correlation", index_base=base)
    assert [list(r) for r in matrix.rows] == rho


@pytest.mark.parametrize(
    ("elements", "kind", "why"),
    [
        ([(_bin(0), _bin(0), 4.0)], "covariance", "element (0, 1) of the covariance matrix"),
        ([(_bin(0), _bin(1), 1.0), (_bin(1), _bin(0), 2.0), (_bin(0), _bin(0), 1.0),
          (_bin(1), _bin(1), 1.0)], "covariance", "not symmetric"),
        ([(_bin(0), _bin(0), 1.0), (_bin(0), _bin(0), 1.0)], "covariance", "given twice"),
        ([(_bin(0), _bin(0), -1.0), (_bin(0), _bin(1), 0.0), (_bin(1), _bin(1), 1.0)],
         "covariance", "must be positive"),
        ([(_bin(0), _bin(0), 1.0), (_bin(0), _bin(1), 1.5), (_bin(1), _bin(1), 1.0)],
         "correlation", "outside [-1, 1]"),
        ([(_bin(0), _bin(0), 4.0), (_bin(0), _bin(1), 0.0), (_bin(1), _bin(1), 1.0)],
         "correlation", "not 1"),
        ([({"low": 0, "high": 50}, _bin(0), 1.0)], "covariance", "is not a bin of the reference"),
        ([({"value": 700}, _bin(0), 1.0)], "covariance", "outside the reference's bins"),
        ([({"value": "bin A"}, _bin(0), 1.0)], "covariance", "neither a bin"),
        ([(_bin(0), _bin(0), "-")], "covariance", "is not a number"),
        ([(_bin(0), _bin(0), 1.0)], "variance", "neither covariance nor correlation"),
    ],
)  # fmt: skip
def test_a_malformed_matrix_is_refused_with_the_reason(
    elements: list[tuple[Any, Any, Any]], kind: str, why: str
) -> None:
    table = table_from_document(_matrix_doc(elements), "m")
    with pytest.raises(HepdataError, match=why.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):  # fmt: skip
        to_matrix(table, EDGES[:3], kind)


def test_a_one_dimensional_table_or_a_huge_matrix_is_refused() -> None:
    one_d = parse_table((DATA / "data3.yaml").read_bytes(), "data3")
    with pytest.raises(HepdataError, match="has 1 independent variables"):
        to_matrix(one_d, EDGES)
    edges = tuple(float(i) for i in range(MAX_BINS + 2))
    table = table_from_document(_matrix_doc([(_bin(0, edges), _bin(0, edges), 1.0)]), "m")
    with pytest.raises(HepdataError, match=f"more than the {MAX_BINS} bins"):
        to_matrix(table, edges)
    with pytest.raises(HepdataError, match="index_base"):
        to_matrix(table, EDGES, index_base=2)


_cell = st.one_of(
    st.fixed_dictionaries({"low": st.sampled_from(EDGES), "high": st.sampled_from(EDGES)}),
    st.fixed_dictionaries({"value": st.one_of(st.floats(allow_nan=True), st.integers(-2, 6),
                                              st.text(max_size=3))}),
    st.just({}),
)  # fmt: skip
_elements = st.lists(
    st.tuples(_cell, _cell, st.one_of(st.floats(), st.integers(-5, 5), st.just("-"))),
    max_size=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_elements, st.sampled_from(["covariance", "correlation"]), st.sampled_from([None, 0, 1]))
def test_any_matrix_table_gives_a_symmetric_matrix_or_a_hepdata_error(
    elements: list[tuple[Any, Any, Any]], kind: str, base: int | None
) -> None:
    try:
        table = table_from_document(_matrix_doc(elements), "m")
        matrix = to_matrix(table, EDGES, kind, index_base=base)
    except HepdataError:
        return
    n = len(EDGES) - 1
    assert matrix.size == n
    for i in range(n):
        for j in range(n):
            assert matrix.rows[i][j] == matrix.rows[j][i]
            assert math.isfinite(matrix.rows[i][j])
        assert matrix.rows[i][i] > 0


# --- the chi2 with a covariance matrix ----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_cholesky_chi2_equals_the_inverse_matrix_form(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    v = a @ a.T + 0.1 * np.eye(n)  # symmetric positive definite
    low = np.array(cholesky(v.tolist()))
    assert np.allclose(low @ low.T, v, rtol=1e-9, atol=1e-9)
    counts = rng.uniform(10, 100, size=n)
    ref_counts = counts + rng.normal(size=n)
    edges = tuple(float(i) for i in range(n + 1))
    actual = Histogram(edges, tuple(counts), tuple(0.0 for _ in range(n)))
    reference = Histogram(edges, tuple(ref_counts), tuple(1.0 for _ in range(n)))
    result = chi2_test(actual, reference, matrix=v.tolist())
    d = counts - ref_counts
    assert result.chi2 == pytest.approx(float(d @ np.linalg.inv(v) @ d), rel=1e-7)
    assert result.ndf == n
    assert result.correlated == "covariance"


def test_a_diagonal_covariance_is_the_uncorrelated_chi2() -> None:
    rng = random.Random(5)
    counts = tuple(rng.uniform(50, 150) for _ in range(6))
    ref = tuple(c + rng.gauss(0, 5) for c in counts)
    errs = tuple(rng.uniform(2, 9) for _ in range(6))
    edges = tuple(float(i) for i in range(7))
    actual, reference = Histogram(edges, counts), Histogram(edges, ref, errs)
    diagonal = [[errs[i] ** 2 if i == j else 0.0 for j in range(6)] for i in range(6)]
    for normalize in (False, True):
        plain = chi2_test(actual, reference, normalize=normalize)
        matrixed = chi2_test(actual, reference, normalize=normalize, matrix=diagonal)
        assert matrixed.chi2 == pytest.approx(plain.chi2, rel=1e-12)
        assert matrixed.ndf == plain.ndf
        rho = [[1.0 if i == j else 0.0 for j in range(6)] for i in range(6)]
        correlated = chi2_test(actual, reference, normalize=normalize, matrix=rho, correlation=True)
        assert correlated.chi2 == pytest.approx(plain.chi2, rel=1e-12)


def test_a_matrix_that_is_not_positive_definite_is_refused() -> None:
    edges = (0.0, 1.0, 2.0)
    actual = Histogram(edges, (10.0, 10.0), (0.0, 0.0))
    reference = Histogram(edges, (10.0, 12.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="not positive definite"):
        chi2_test(actual, reference, matrix=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="not 2 x 2"):
        chi2_test(actual, reference, matrix=[[1.0]])


def _shifted(
    shape: list[float], rng: random.Random
) -> tuple[Histogram, Histogram, list[list[float]]]:
    """A reference of 20 bins with 1% uncorrelated errors and a 10% normalisation error
    correlated over all bins, an output ``shape`` times it (plus its own 1% noise)."""
    n = 20
    edges = tuple(float(i) for i in range(n + 1))
    ref = [1000.0 * math.exp(-i / 8) for i in range(n)]
    stat = [0.01 * r for r in ref]
    norm = [0.10 * r for r in ref]
    cov = [[(stat[i] ** 2 if i == j else 0.0) + norm[i] * norm[j] for j in range(n)]
           for i in range(n)]  # fmt: skip
    out = [r * s * (1 + rng.gauss(0, 0.01)) for r, s in zip(ref, shape, strict=True)]
    total = [math.hypot(a, b) for a, b in zip(stat, norm, strict=True)]
    return (
        Histogram(edges, tuple(out), tuple(0.0 for _ in out)),
        Histogram(edges, tuple(ref), tuple(total)),
        cov,
    )


def test_the_covariance_sees_a_shape_change_the_uncorrelated_chi2_misses() -> None:
    """Power: a +-5% tilt is 5 sigma per bin against the 1% uncorrelated errors but half a
    sigma against the 10% total error taken bin by bin. Size: an 8% normalisation shift,
    inside the correlated 10%, must pass both ways."""
    rng = random.Random(11)
    tilt = [1.05 if i < 10 else 0.95 for i in range(20)]
    actual, reference, cov = _shifted(tilt, rng)
    assert chi2_test(actual, reference).p_value > 0.5  # uncorrelated: passes, wrongly
    correlated = chi2_test(actual, reference, matrix=cov)
    assert correlated.p_value < 1e-6
    assert correlated.correlated == "covariance"
    passed = 0
    for _ in range(50):
        actual, reference, cov = _shifted([1.08] * 20, rng)
        passed += chi2_test(actual, reference, matrix=cov).p_value >= 0.01
    assert passed >= 47  # size about 1%


# --- end to end: an expectation with a covariance table -----------------------------------


def _analysis(root: Path, counts: list[float], covariance: Any, with_chi2: bool = True) -> None:
    (root / "out").mkdir(parents=True)
    (root / "reference").mkdir()
    (root / "reference" / "data3.yaml").write_bytes((DATA / "data3.yaml").read_bytes())
    (root / "reference" / "cov.yaml").write_bytes((DATA / "data3_covariance.yaml").read_bytes())
    (root / "out" / "h.json").write_text(
        json.dumps({"pt": {"edges": list(EDGES), "counts": counts}})
    )
    want: dict[str, Any] = {"reference": "hepdata:reference/data3.yaml", "covariance": covariance}
    if with_chi2:
        want["chi2"] = {"p_min": 0.01}
    (root / "expect.yaml").write_text(
        yaml.safe_dump([{"name": "spectrum", "file": "out/h.json", "histograms": {"pt": want}}])
    )


@pytest.mark.parametrize("covariance", ["hepdata:reference/cov.yaml", "reference/cov.yaml",
                                        {"reference": "reference/cov.yaml"}])  # fmt: skip
def test_an_expectation_uses_the_covariance_table(tmp_path: Path, covariance: Any) -> None:
    _analysis(tmp_path, [7000.0, 9800.0, 1600.0, 80.0], covariance)
    expectations = yaml.safe_load((tmp_path / "expect.yaml").read_text())
    (check,) = evaluate(tmp_path, expectations)
    assert check.ok, check.detail
    assert "with the reference's covariance matrix" in check.detail
    assert check.data["covariance"].startswith("covariance Covariance [GEV**-2] of")


def test_an_expectation_with_a_broken_covariance_fails_with_the_reason(tmp_path: Path) -> None:
    _analysis(tmp_path, [7000.0, 9800.0, 1600.0, 80.0], "reference/none.yaml")
    (check,) = evaluate(tmp_path, yaml.safe_load((tmp_path / "expect.yaml").read_text()))
    assert not check.ok
    assert "covariance reference/none.yaml" in check.detail
    assert "not found" in check.detail
    other = tmp_path / "b"
    _analysis(other, [7000.0, 9800.0, 1600.0, 80.0], "reference/data3.yaml")
    (check,) = evaluate(other, yaml.safe_load((other / "expect.yaml").read_text()))
    assert not check.ok
    assert "2 (row bin, column bin)" in check.detail
    third = tmp_path / "c"
    _analysis(third, [7000.0, 9800.0, 1600.0, 80.0], "reference/cov.yaml", with_chi2=False)
    (check,) = evaluate(third, yaml.safe_load((third / "expect.yaml").read_text()))
    assert not check.ok
    assert "add chi2" in check.detail


def test_the_lock_pins_a_remote_covariance_table() -> None:
    expectations = [{"file": "h.json", "histograms": {
        "a": {"reference": "hepdata:ins1000001/Table 3",
              "covariance": "hepdata:ins1000001/Table 3 covariance", "chi2": {}},
        "b": {"reference": "h.json", "covariance": {"reference": "hepdata:ins1000003/Cov@2"},
              "chi2": {}},
    }}]  # fmt: skip
    assert remote_references(expectations) == [
        "hepdata:ins1000001/Table 3",
        "hepdata:ins1000001/Table 3 covariance",
        "hepdata:ins1000003/Cov@2",
    ]
