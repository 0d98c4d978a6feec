"""A HEPData table as rows: for ``odrun hepdata`` (a terminal table, CSV, JSON).

One row per point: each independent variable's bin (``low``, ``high``) or value, then
each dependent variable's value with its total upward and downward errors (all sources
in quadrature, each side separately; :mod:`odrun.hepdata.table`).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from odrun.hepdata.table import Table, Variable


def _number(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _column_name(variable: Variable, index: int, table: Table) -> str:
    """The variable's title, with the qualifiers that tell it apart from its namesakes."""
    title = variable.title
    same = [v for v in table.dependent if v.name == variable.name]
    if len(same) > 1:
        common = set.intersection(*({(q.name, q.value) for q in v.qualifiers} for v in same))
        extra = [
            f"{q.name}={q.value}" for q in variable.qualifiers if (q.name, q.value) not in common
        ]
        title += f" [{', '.join(extra) or f'#{index}'}]"
    return title


def header(table: Table) -> list[str]:
    out: list[str] = []
    for variable in table.independent:
        out += [f"{variable.title} low", f"{variable.title} high", variable.title]
    for i, variable in enumerate(table.dependent):
        name = _column_name(variable, i, table)
        out += [name, f"{name} +err", f"{name} -err"]
    return out


def _total(errors: Any, side: str) -> float:
    return math.sqrt(math.fsum(getattr(e, side) ** 2 for e in errors))


def rows(table: Table) -> list[list[str]]:
    """The table's points as text cells, in :func:`header`'s order."""
    out: list[list[str]] = []
    for i in range(len(table)):
        row: list[str] = []
        for variable in table.independent:
            v = variable.values[i]
            row += [_number(v.low), _number(v.high), v.text]
        for variable in table.dependent:
            v = variable.values[i]
            row.append(v.text)
            row += [_number(_total(v.errors, "up")), _number(_total(v.errors, "down"))]
        out.append(row)
    return out


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header(table))
    writer.writerows(rows(table))
    return buffer.getvalue()
