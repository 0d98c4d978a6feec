"""A HEPData covariance or correlation table as a matrix over a histogram's bins.

Measurements with correlated uncertainties publish their covariance (or correlation)
matrix as a table of its own (HEPData's submission format; e.g. ``hepdata_lib``'s
correlation example, or a collaboration's converter): two independent variables, the
row bin and the column bin, and one dependent variable, the matrix element - one table
row per element. A bin of either axis is given

- by its edges, ``{low, high}``, which must be a bin of the reference histogram;
- by a ``value`` inside a bin of the reference (a bin centre), or
- with ``index_base`` set (0 or 1), by its number counted from that base.

Every element must be there, once, or its mirror image (``(j, i)`` for ``(i, j)``: tables
often give one triangle); an element given both ways must agree within 1e-6 relative. A
covariance matrix's diagonal must be positive; a correlation's elements lie in
[-1, 1] with 1 on the diagonal (within 1e-3: tables round). Whether the matrix is
positive definite is decided where it is used (its Cholesky factor, in
:mod:`odrun.workflow.stats`). Tables are untrusted: anything else is a
:class:`~odrun.errors.HepdataError` naming the table and the element, and a matrix has
at most :data:`MAX_BINS` bins a side (the chi2 solves it in pure Python, O(n^3)).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from odrun.errors import HepdataError
from odrun.hepdata.table import Table, Value, _pick

#: the largest matrix side accepted (a 400 x 400 Cholesky takes about a second)
MAX_BINS = 400
KINDS = ("covariance", "correlation")
_REL = 1e-6
_UNIT = 1e-3


@dataclass(frozen=True)
class Matrix:
    """A symmetric ``n x n`` matrix over a histogram's bins, in bin order."""

    kind: str  # "covariance" or "correlation"
    rows: tuple[tuple[float, ...], ...]
    described: str = ""

    @property
    def size(self) -> int:
        return len(self.rows)


def _bin_of(value: Value, edges: Sequence[float], index_base: int | None, where: str) -> int:
    n = len(edges) - 1
    if index_base is not None:
        number = value.value
        if number is None or number != int(number) or not 0 <= number - index_base < n:
            raise HepdataError(
                f"{where}: bin number {value.text[:40]!r} is not one of {index_base}.."
                f"{index_base + n - 1} (index_base {index_base}, {n} bins)"
            )
        return int(number) - index_base
    if value.low is not None and value.high is not None:
        for i in range(n):
            if math.isclose(value.low, edges[i], rel_tol=1e-9, abs_tol=1e-12) and math.isclose(
                value.high, edges[i + 1], rel_tol=1e-9, abs_tol=1e-12
            ):
                return i
        raise HepdataError(
            f"{where}: bin [{value.low:g}, {value.high:g}) is not a bin of the reference "
            f"(edges {_short(edges)})"
        )
    if value.value is not None:
        i = bisect_right(edges, value.value) - 1
        if value.value == edges[-1]:
            i = n - 1
        if 0 <= i < n:
            return i
        raise HepdataError(
            f"{where}: {value.value:g} lies outside the reference's bins "
            f"[{edges[0]:g}, {edges[-1]:g}]"
        )
    raise HepdataError(
        f"{where}: {value.text[:40]!r} is neither a bin {{low, high}} nor a number "
        "(bin numbers need index_base)"
    )


def _short(edges: Sequence[float]) -> str:
    shown = ", ".join(f"{e:g}" for e in edges[:8])
    return f"{shown}{', …' if len(edges) > 8 else ''}"


def _check(kind: str, rows: list[list[float]], name: str) -> None:
    for i, row in enumerate(rows):
        diagonal = row[i]
        if kind == "covariance" and not diagonal > 0:
            raise HepdataError(
                f"table {name}: covariance element ({i}, {i}) is {diagonal:g}; a variance "
                "must be positive"
            )
        if kind == "correlation":
            if abs(diagonal - 1.0) > _UNIT:
                raise HepdataError(
                    f"table {name}: correlation element ({i}, {i}) is {diagonal:g}, not 1 "
                    "(is it a covariance table? say kind: covariance)"
                )
            row[i] = 1.0
            for j, x in enumerate(row):
                if abs(x) > 1.0 + _UNIT:
                    raise HepdataError(
                        f"table {name}: correlation element ({i}, {j}) is {x:g}, outside [-1, 1]"
                    )


def to_matrix(
    table: Table,
    edges: Sequence[float],
    kind: str = "covariance",
    dependent: str | int | None = None,
    qualifiers: Mapping[str, Any] | None = None,
    index_base: int | None = None,
) -> Matrix:
    """The ``kind`` matrix a table holds over the bins ``edges`` (the reference's)."""
    if kind not in KINDS:
        raise HepdataError(f"matrix kind {kind!r} is neither covariance nor correlation")
    if index_base is not None and (isinstance(index_base, bool) or index_base not in (0, 1)):
        raise HepdataError(f"index_base {index_base!r} is neither 0 nor 1")
    n = len(edges) - 1
    if n > MAX_BINS:
        raise HepdataError(
            f"a {n}-bin histogram is more than the {MAX_BINS} bins a matrix may have"
        )
    if len(table.independent) != 2:
        raise HepdataError(
            f"table {table.name} has {len(table.independent)} independent variables; a "
            f"{kind} matrix has 2 (row bin, column bin)"
        )
    if not table.dependent:
        raise HepdataError(f"table {table.name} has no dependent variable")
    variable = _pick(table, dependent, qualifiers or {})
    rows_of, cols_of = table.independent
    if len(variable.values) > n * n:
        raise HepdataError(
            f"table {table.name} has {len(variable.values)} elements; {n} bins make {n * n}"
        )
    seen: dict[tuple[int, int], float] = {}
    for k, element in enumerate(variable.values):
        where = f"table {table.name} element {k}"
        i = _bin_of(rows_of.values[k], edges, index_base, f"{where} row")
        j = _bin_of(cols_of.values[k], edges, index_base, f"{where} column")
        if element.value is None:
            raise HepdataError(f"{where} ({i}, {j}) is not a number ({element.text[:40]!r})")
        if (i, j) in seen:
            raise HepdataError(f"{where}: ({i}, {j}) is given twice")
        seen[(i, j)] = element.value
    matrix = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            a, b = seen.get((i, j)), seen.get((j, i))
            if a is None and b is None:
                raise HepdataError(
                    f"table {table.name}: element ({i}, {j}) of the {kind} matrix is missing "
                    f"({len(seen)} of {n * n} given, counting each triangle)"
                )
            if a is not None and b is not None and not math.isclose(a, b, rel_tol=_REL):
                raise HepdataError(
                    f"table {table.name}: the {kind} matrix is not symmetric: ({i}, {j}) is "
                    f"{a:g}, ({j}, {i}) is {b:g}"
                )
            matrix[i][j] = matrix[j][i] = a if a is not None else b  # type: ignore[assignment]
    _check(kind, matrix, table.name)
    described = f"{kind} {variable.title or '(unnamed)'} of {table.name} ({n} x {n})"
    return Matrix(kind, tuple(tuple(row) for row in matrix), described)
