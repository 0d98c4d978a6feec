"""HEPData's rendered JSON of a table, back to the submission format.

What hepdata.net serves for a table as JSON (``/download/table/<ins>/<table>/<v>/json``
redirects to ``/record/data/<recid>/<table id>/<v>``; ``/record/<ins>?format=json&table=``
answers the same; a "JSON" download from the web page is this) is the structure its web
page renders (``generate_table_structure`` in hepdata's ``data_processing_utils.py``):
``headers`` (independent variables first, ``x_count`` of them, then the dependent ones,
names as ``NAME [UNITS]``, a run of equal names merged with a ``colspan``), ``qualifiers``
(name -> entries ``{type, value, colspan, group}``, values with their units appended),
and ``values``: one row per point, ``{x: [one per independent variable], y: [one per
dependent variable, each {value, errors, group}]}``. Repeated error labels are numbered
there (``sys_1``, ``sys_2``), and a point without errors gets ``{symerror: 0, hide: true}``.

:func:`submission_document` rebuilds ``independent_variables``/``dependent_variables`` from
it, so both forms map to bins the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from odrun import untrusted
from odrun.errors import HepdataError

_UNITS = re.compile(r"^(.*) \[([^\[\]]*)\]$")


def is_rendered(doc: Any) -> bool:
    return (
        isinstance(doc, Mapping)
        and "dependent_variables" not in doc
        and isinstance(doc.get("headers"), list)
        and isinstance(doc.get("values"), list)
    )


def _header(name: str) -> dict[str, str]:
    match = _UNITS.match(name)
    return {"name": match.group(1), "units": match.group(2)} if match else {"name": name}


def _columns(headers: list[Any], limit: int) -> list[str]:
    names: list[str] = []
    for header in headers:
        if not isinstance(header, Mapping):
            raise HepdataError("a header is not a mapping")
        span = untrusted.count(header.get("colspan", 1), limit=limit) or 1
        names += [untrusted.text(header.get("name")) or ""] * span
        if len(names) > limit:
            break
    return names[:limit]


def submission_document(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The submission-format document of a rendered table (HepdataError if it is not one)."""
    try:
        return _convert(doc)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise HepdataError(f"table {name} is not a HEPData table (rendered JSON: {exc})") from None
    except HepdataError as exc:
        raise HepdataError(f"table {name} is not a HEPData table (rendered JSON: {exc})") from None


def _convert(doc: Mapping[str, Any]) -> dict[str, Any]:
    rows = doc["values"]
    if not all(isinstance(r, Mapping) and isinstance(r.get("x"), list)
               and isinstance(r.get("y"), list) for r in rows):  # fmt: skip
        raise HepdataError("a row is not {x: [...], y: [...]}")
    x_count = untrusted.count(doc.get("x_count"))
    if x_count is None:
        x_count = len(rows[0]["x"]) if rows else 0
    widths = sorted({len(r["x"]) for r in rows})
    if (rows and widths != [x_count]) or (not rows and x_count > len(doc["headers"])):
        # never trusted as a size: it would allocate that many column names first
        raise HepdataError(
            f"x_count {x_count} is not the number of independent values of every row "
            f"({', '.join(map(str, widths[:5])) or 'no rows'})"
        )
    groups = max((len(r["y"]) for r in rows), default=0)
    names = _columns(doc["headers"], x_count + groups)
    names += [""] * (x_count + groups - len(names))
    qualifiers: list[list[dict[str, Any]]] = [[] for _ in range(groups)]
    raw_qualifiers = doc.get("qualifiers") or {}
    order = doc.get("qualifier_order") or list(raw_qualifiers)
    for key in order:
        for entry in raw_qualifiers.get(key) or []:
            first = untrusted.count(entry.get("group")) or 0
            span = untrusted.count(entry.get("colspan", 1), limit=groups) or 1
            for group in range(first, min(first + span, groups)):
                qualifiers[group].append({"name": entry.get("type"), "value": entry.get("value")})
    independent = [
        {"header": _header(names[j]), "values": [row["x"][j] for row in rows]}
        for j in range(x_count)
    ]
    dependent = []
    for k in range(groups):
        values = []
        for row in rows:
            point = dict(row["y"][k])
            point.pop("group", None)
            point["errors"] = [e for e in point.get("errors") or [] if not e.get("hide")]
            values.append(point)
        dependent.append(
            {"header": _header(names[x_count + k]), "qualifiers": qualifiers[k], "values": values}
        )
    return {
        "name": doc.get("name"),
        "description": doc.get("description"),
        "independent_variables": independent,
        "dependent_variables": dependent,
    }
