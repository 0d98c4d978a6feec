"""Compare two runs (``odrun diff``): inputs, environment, parameters, steps, outputs.

``diff(a, b)`` returns a :class:`RunDiff`; :func:`diff_summary_rows` flattens it into
rows a report renders. See docs/diff.md.
"""

from odrun.compare.diff import MAX_NUMERIC_BYTES, diff, diff_sides
from odrun.compare.model import (
    SECTIONS,
    Change,
    HistogramDiff,
    NumericDiff,
    OutputDiff,
    RunDiff,
    RunSummary,
    SummaryRow,
    ValueDiff,
    diff_summary_rows,
)
from odrun.compare.runs import RunSide, load_side, resolve_run

__all__ = [
    "MAX_NUMERIC_BYTES",
    "SECTIONS",
    "Change",
    "HistogramDiff",
    "NumericDiff",
    "OutputDiff",
    "RunDiff",
    "RunSide",
    "RunSummary",
    "SummaryRow",
    "ValueDiff",
    "diff",
    "diff_sides",
    "diff_summary_rows",
    "load_side",
    "resolve_run",
]
