"""HEPData tables: the submission format read from YAML or JSON, and one variable as bins.

A table (HEPData's submission format, `data_yaml.rst` of HEPData/hepdata-submission) has
``independent_variables`` and ``dependent_variables``; each variable has a ``header``
(``name``, ``units``), a dependent one ``qualifiers`` (``name``, ``value``, ``units``),
and ``values``: an independent value is ``{low, high}`` (a bin) and/or ``{value}``; a
dependent value is ``{value, errors}`` (HEPData's rendered JSON of a table is read too:
:mod:`odrun.hepdata.rendered`), each error ``{symerror: e}`` or
``{asymerror: {plus: p, minus: m}}`` with an optional ``label``. An error given as a
string ending in ``%`` is that percentage of the central value; an empty string is no
error on that side (one-sided). ``plus`` and ``minus`` are the up and down variations
of a source and may have either sign: the upward error of a point is the largest of
``plus``, ``minus`` and 0, the downward error minus the smallest (``symerror: e`` is
``{plus: e, minus: -e}``).

:func:`to_bins` maps the first independent variable's bins and one dependent variable
(by name or index, qualifiers filtering) to contiguous bins (listed in any order, sorted
by their low edge) with a downward and an upward error per bin: all sources combined
in quadrature (each side separately), or the one source whose label is given. Tables
are untrusted: anything malformed is a :class:`~odrun.errors.HepdataError` naming the
table and the place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odrun import untrusted
from odrun._yaml import load_yaml
from odrun.errors import HepdataError, OdrunError
from odrun.hepdata.rendered import is_rendered, submission_document

#: ``errors:`` values that combine every source in quadrature
QUADRATURE = ("total", "quadrature")


@dataclass(frozen=True)
class Error:
    """One uncertainty source of one point: absolute, signed up/down variations."""

    label: str | None
    plus: float
    minus: float

    @property
    def up(self) -> float:
        return max(self.plus, self.minus, 0.0)

    @property
    def down(self) -> float:
        return -min(self.plus, self.minus, 0.0)


@dataclass(frozen=True)
class Value:
    """One row of a variable: a number (or a label such as ``'-'``), a bin, errors."""

    text: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    errors: tuple[Error, ...] = ()


@dataclass(frozen=True)
class Qualifier:
    name: str
    value: str
    units: str = ""


@dataclass(frozen=True)
class Variable:
    name: str
    units: str = ""
    qualifiers: tuple[Qualifier, ...] = ()
    values: tuple[Value, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.name} [{self.units}]" if self.units else self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "units": self.units,
            "qualifiers": [
                {"name": q.name, "value": q.value, "units": q.units} for q in self.qualifiers
            ],
            "values": [
                {
                    "value": v.text,
                    "low": v.low,
                    "high": v.high,
                    "errors": [
                        {"label": e.label, "plus": e.plus, "minus": e.minus} for e in v.errors
                    ],
                }
                for v in self.values
            ],
        }


@dataclass(frozen=True)
class Table:
    name: str
    independent: tuple[Variable, ...]
    dependent: tuple[Variable, ...]
    description: str = ""

    def __len__(self) -> int:
        return len(self.dependent[0].values) if self.dependent else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "independent_variables": [v.to_dict() for v in self.independent],
            "dependent_variables": [v.to_dict() for v in self.dependent],
        }


@dataclass(frozen=True)
class Bins:
    """One dependent variable over contiguous bins: what a histogram reference needs."""

    edges: tuple[float, ...]
    values: tuple[float, ...]
    down: tuple[float, ...]
    up: tuple[float, ...]
    #: which variable and errors were taken, for messages
    described: str = ""
    sources: tuple[str, ...] = field(default=())

    @property
    def symmetric(self) -> bool:
        return self.down == self.up


def _number(value: Any) -> float | None:
    """A finite float from a number or a numeric string, else None (never raises)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    out = untrusted.text(value)
    return out if out is not None else ""


def _error_part(raw: Any, central: float | None, where: str) -> float:
    """One side of an error: a number, a percentage of ``central`` or '' (none)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return 0.0
    if isinstance(raw, str) and raw.strip().endswith("%"):
        percent = _number(raw.strip()[:-1])
        if percent is None:
            raise HepdataError(f"{where}: error {raw[:40]!r} is not a percentage")
        if central is None:
            raise HepdataError(f"{where}: a percentage error needs a numeric value")
        return percent / 100.0 * abs(central)
    number = _number(raw)
    if number is None:
        raise HepdataError(f"{where}: error {str(raw)[:40]!r} is not a number")
    return number


def _error(raw: Any, central: float | None, where: str) -> Error:
    if not isinstance(raw, Mapping):
        raise HepdataError(f"{where}: an error must be a mapping with symerror or asymerror")
    label = untrusted.text(raw.get("label"))
    if "symerror" in raw:
        size = _error_part(raw["symerror"], central, where)
        return Error(label, size, -size)
    asym = raw.get("asymerror")
    if isinstance(asym, Mapping):
        return Error(
            label,
            _error_part(asym.get("plus"), central, where),
            _error_part(asym.get("minus"), central, where),
        )
    raise HepdataError(f"{where}: an error needs symerror or asymerror {{plus, minus}}")


def _value(raw: Any, where: str, dependent: bool) -> Value:
    if not isinstance(raw, Mapping):
        raise HepdataError(f"{where}: a value must be a mapping (value, low, high)")
    central = _number(raw.get("value"))
    low, high = raw.get("low"), raw.get("high")
    low_n, high_n = _number(low), _number(high)
    if (low is not None and low_n is None) or (high is not None and high_n is None):
        raise HepdataError(f"{where}: bin limits low/high must be numbers")
    errors_raw = raw.get("errors") if dependent else None
    if errors_raw is None:
        errors_raw = []
    if not isinstance(errors_raw, list):
        raise HepdataError(f"{where}: errors must be a list")
    errors = tuple(_error(e, central, f"{where} error {k}") for k, e in enumerate(errors_raw))
    text = _text(raw.get("value"))
    return Value(text, central, low_n, high_n, errors)


def _variable(raw: Any, where: str, dependent: bool) -> Variable:
    if not isinstance(raw, Mapping):
        raise HepdataError(f"{where} must be a mapping with header and values")
    header = raw.get("header")
    if not isinstance(header, Mapping):
        raise HepdataError(f"{where} has no header")
    name = _text(header.get("name"))
    qualifiers: list[Qualifier] = []
    raw_qualifiers = raw.get("qualifiers") or []
    if not isinstance(raw_qualifiers, list):
        raise HepdataError(f"{where}: qualifiers must be a list")
    for q in raw_qualifiers:
        if not isinstance(q, Mapping):
            raise HepdataError(f"{where}: a qualifier must be a mapping (name, value)")
        qualifiers.append(
            Qualifier(_text(q.get("name")), _text(q.get("value")), _text(q.get("units")))
        )
    values = raw.get("values")
    if not isinstance(values, list):
        raise HepdataError(f"{where} ({name or 'unnamed'}) has no list of values")
    return Variable(
        name,
        _text(header.get("units")),
        tuple(qualifiers),
        tuple(_value(v, f"{where} value {i}", dependent) for i, v in enumerate(values)),
    )


def table_from_document(doc: Any, name: str, description: str = "") -> Table:
    """A :class:`Table` from a decoded submission-format document, or from HEPData's
    rendered JSON of a table (:mod:`odrun.hepdata.rendered`); HepdataError if neither."""
    if is_rendered(doc):
        doc = submission_document(doc, name)
    if not isinstance(doc, Mapping):
        raise HepdataError(f"table {name} is not a HEPData table (a mapping)")
    parts: list[tuple[Variable, ...]] = []
    for key in ("independent_variables", "dependent_variables"):
        raw = doc.get(key)
        if not isinstance(raw, list):
            raise HepdataError(f"table {name} has no {key} list")
        label = key.split("_", 1)[0]
        dependent = key.startswith("dep")
        parts.append(
            tuple(
                _variable(v, f"table {name} {label} variable {i}", dependent)
                for i, v in enumerate(raw)
            )
        )
    rows = {len(v.values) for v in (*parts[0], *parts[1])}
    if len(rows) > 1:
        raise HepdataError(f"table {name}: variables have different numbers of rows {sorted(rows)}")
    text = description or _text(doc.get("description"))
    return Table(_text(doc.get("name")) or name, parts[0], parts[1], text)


def parse_table(data: bytes | str, name: str, fmt: str = "yaml") -> Table:
    """Parse a table's bytes (``fmt`` yaml or json); HepdataError for anything malformed."""
    try:
        if fmt == "json":
            doc = untrusted.load_json(data)
        else:
            text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
            doc = load_yaml(text, f"HEPData table {name}", error=HepdataError)
    except HepdataError:
        raise
    except (ValueError, OdrunError) as exc:  # UnicodeDecodeError, JSON syntax
        raise HepdataError(f"table {name} is not valid {fmt.upper()}: {exc}") from None
    return table_from_document(doc, name)


def _pick(table: Table, dependent: str | int | None, qualifiers: Mapping[str, Any]) -> Variable:
    wanted = {str(k): _text(v) for k, v in qualifiers.items()}
    candidates = list(enumerate(table.dependent))
    if isinstance(dependent, int) and not isinstance(dependent, bool):
        if not 0 <= dependent < len(table.dependent):
            raise HepdataError(
                f"table {table.name} has {len(table.dependent)} dependent variables, "
                f"no index {dependent}"
            )
        candidates = [candidates[dependent]]
    elif dependent is not None:
        candidates = [(i, v) for i, v in candidates if v.name == str(dependent)]
    matches = [
        v for _, v in candidates
        if all(any(q.name == k and q.value == want for q in v.qualifiers)
               for k, want in wanted.items())
    ]  # fmt: skip
    if len(matches) == 1:
        return matches[0]
    names = "; ".join(
        f"{i}: {v.name}" + "".join(f" [{q.name}={q.value}]" for q in v.qualifiers)
        for i, v in enumerate(table.dependent)
    )[:600]
    asked = f"dependent {dependent!r}" if dependent is not None else "a dependent variable"
    if wanted:
        asked += f" with qualifiers {wanted}"
    why = "matches none" if not matches else f"matches {len(matches)}: give dependent or qualifiers"
    raise HepdataError(f"table {table.name}: {asked} {why} (it has {names or 'none'})")


def _edges(variable: Variable, table: str) -> tuple[tuple[float, ...], list[int]]:
    """The bin edges, and the order of the points along them: bins may be listed in any
    order (some tables run from high to low), but must tile a range without gaps."""
    for i, v in enumerate(variable.values):
        if v.low is None or v.high is None:
            raise HepdataError(
                f"table {table}: {variable.name} value {i} is not a bin (needs low and high)"
            )
        if not v.low < v.high:
            raise HepdataError(f"table {table}: bin {i} [{v.low:g}, {v.high:g}) is empty")
    order = sorted(range(len(variable.values)), key=lambda i: variable.values[i].low or 0.0)
    edges: list[float] = []
    for n, i in enumerate(order):
        low, high = variable.values[i].low or 0.0, variable.values[i].high or 0.0
        if edges and not math.isclose(low, edges[-1], rel_tol=1e-9, abs_tol=1e-12):
            raise HepdataError(
                f"table {table}: bin {i} [{low:g}, {high:g}) does not start where the bin "
                f"below it ends ({edges[-1]:g}): the bins must be contiguous"
            )
        if n == 0:
            edges.append(low)
        edges.append(high)
    return tuple(edges), order


def to_bins(
    table: Table,
    dependent: str | int | None = None,
    errors: str = "total",
    qualifiers: Mapping[str, Any] | None = None,
) -> Bins:
    """The dependent variable chosen by name or index (and qualifiers) over the first
    independent variable's bins, with errors: ``total``/``quadrature`` (every source,
    each side in quadrature) or one source's label."""
    if qualifiers is not None and not isinstance(qualifiers, Mapping):
        raise HepdataError("qualifiers must be a mapping of name: value")
    if isinstance(dependent, bool) or not isinstance(dependent, (str, int, type(None))):
        raise HepdataError(f"dependent {dependent!r} is neither a name nor an index")
    if not isinstance(errors, str) or not errors:
        raise HepdataError(f"errors {errors!r} is neither total, quadrature nor a label")
    if not table.independent:
        raise HepdataError(f"table {table.name} has no independent variable: nothing to bin")
    if len(table.independent) > 1:
        raise HepdataError(
            f"table {table.name} has {len(table.independent)} independent variables: "
            "only 1-D tables map to a histogram"
        )
    if not table.dependent:
        raise HepdataError(f"table {table.name} has no dependent variable")
    variable = _pick(table, dependent, qualifiers or {})
    edges, order = _edges(table.independent[0], table.name)
    if not variable.values:
        raise HepdataError(f"table {table.name}: {variable.name} has no values")
    values: list[float] = []
    down: list[float] = []
    up: list[float] = []
    sources: set[str] = set()
    for i in order:
        v = variable.values[i]
        if v.value is None:
            raise HepdataError(
                f"table {table.name}: {variable.name} bin {i} has no number ({v.text!r})"
            )
        chosen = list(v.errors)
        if errors not in QUADRATURE:
            chosen = [e for e in v.errors if e.label == errors]
            if not chosen:
                labels = sorted({e.label or "(no label)" for e in v.errors})
                raise HepdataError(
                    f"table {table.name}: {variable.name} bin {i} has no error labelled "
                    f"{errors!r} (it has {', '.join(labels) or 'no errors'})"
                )
        sources.update(e.label or "(no label)" for e in chosen)
        values.append(v.value)
        down.append(math.sqrt(math.fsum(e.down * e.down for e in chosen)))
        up.append(math.sqrt(math.fsum(e.up * e.up for e in chosen)))
    if not all(math.isfinite(x) for x in (*down, *up)):
        raise HepdataError(f"table {table.name}: an error of {variable.name} is not finite")
    how = "in quadrature" if errors in QUADRATURE else f"source {errors!r}"
    return Bins(
        edges, tuple(values), tuple(down), tuple(up),
        f"{variable.title} of {table.name}, errors {how}", tuple(sorted(sources)),
    )  # fmt: skip
