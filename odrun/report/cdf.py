"""A Kolmogorov-Smirnov check's plot data: both empirical CDFs, read back from run.json.

:func:`odrun.workflow.expect.check_ks` saves the output's and the reference's empirical
CDFs at no more than 200 points (``data.cdf``) and where their distance D is largest
(``data.at``); the report draws them (:func:`odrun.report.plots.cdf_svg`). A run folder
is untrusted: anything malformed gives no plot, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: points of a CDF drawn at most (what expect saves; more is someone else's run.json)
MAX_POINTS = 2000


@dataclass(frozen=True)
class CdfData:
    """One KS check's output and reference samples as empirical CDFs, for a plot."""

    name: str
    ok: bool
    label: str
    x: list[float]
    sample: list[float]
    reference_cdf: list[float]
    #: where D is reached (None: not saved)
    at: float | None
    #: "D = 0.031, p = 0.42 (n 1000, reference n 5000)"
    statistic: str
    reference: str


def _fractions(values: Any, n: int) -> list[float] | None:
    if not isinstance(values, list) or len(values) != n:
        return None
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            return None
        out.append(float(v))
    return out


def cdf_data(doc: dict[str, Any]) -> CdfData | None:
    """The plot data of a KS check, or None when it holds none (or malformed)."""
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("kind") != "ks":
        return None
    cdf = data.get("cdf")
    if not isinstance(cdf, dict) or not isinstance(cdf.get("x"), list):
        return None
    xs = cdf["x"]
    if not 0 < len(xs) <= MAX_POINTS or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in xs
    ):
        return None
    sample, reference = (
        _fractions(cdf.get("sample"), len(xs)),
        _fractions(cdf.get("reference"), len(xs)),
    )
    if sample is None or reference is None:
        return None
    at = data.get("at")
    at_x = float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else None
    statistic = ""
    if isinstance(data.get("statistic"), (int, float)):
        p = data.get("p_value")
        p_text = f"{p:.3g}" if isinstance(p, (int, float)) else "?"
        statistic = (
            f"D = {data['statistic']:.3g}, p = {p_text} (n {data.get('n', '?')}, "
            f"reference n {data.get('m', '?')})"
        )
    return CdfData(
        name=str(doc.get("name") or "?"),
        ok=doc.get("ok") is True,
        label=str(data.get("column") or "value"),
        x=[float(x) for x in xs],
        sample=sample,
        reference_cdf=reference,
        at=at_x if at_x is not None and math.isfinite(at_x) else None,
        statistic=statistic,
        reference=str(data.get("reference") or ""),
    )
