"""What ``odrun diff`` finds, as data: typed changes per section, and how outputs differ.

:class:`RunDiff` holds five sections (inputs, environment, parameters, steps, outputs).
Every item is a :class:`Change` (``kind`` one of :data:`KINDS`); an output that differs
also carries an :class:`OutputDiff` with the numeric comparison of its two versions.
:func:`diff_summary_rows` flattens a diff into :class:`SummaryRow` strings for a report
(``odrun report --against``) or a table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: how an item differs between run A and run B
Kind = Literal["equal", "changed", "added", "removed"]
KINDS: tuple[Kind, ...] = ("equal", "changed", "added", "removed")
#: the sections of a diff, in the order they are shown
SECTIONS = ("inputs", "environment", "parameters", "steps", "outputs")
DIFF_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Change:
    """One compared item: ``key`` names it (``image python:3.11``, ``parameter nbins``),
    ``a`` and ``b`` are its values in run A and run B (None: absent there), ``detail`` says
    more (how much an output differs, which steps use an image)."""

    kind: Kind
    key: str
    a: str | None = None
    b: str | None = None
    detail: str = ""

    @property
    def differs(self) -> bool:
        return self.kind != "equal"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValueDiff:
    """One number (a JSON key path, a CSV ``row.column``, a histogram bin) that differs."""

    key: str
    a: float | str | None
    b: float | str | None
    abs_diff: float | None = None
    rel_diff: float | None = None


@dataclass(frozen=True)
class HistogramDiff:
    """Two versions of one histogram, bin by bin, with the statistics expectations use
    (:func:`odrun.workflow.stats.chi2_test`, :func:`odrun.workflow.histograms.compare`)."""

    key: str
    bins: int
    same_binning: bool
    #: the bin-by-bin verdict at zero tolerance, naming the largest difference
    detail: str
    chi2: float | None = None
    ndf: int | None = None
    p_value: float | None = None


@dataclass(frozen=True)
class NumericDiff:
    """How much two JSON or CSV files differ, number by number."""

    #: json, csv or root
    format: str
    #: values (numbers and strings: key paths, cells) found in both and compared
    compared: int = 0
    #: numbers that differ (``max_abs``, ``max_rel`` and ``worst`` are about them)
    differing: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    #: the key of the largest absolute difference
    worst: str | None = None
    #: key paths or cells only in A / only in B, and other values (strings) that differ
    only_a: int = 0
    only_b: int = 0
    strings_differing: int = 0
    #: CSV: data rows in each
    rows_a: int | None = None
    rows_b: int | None = None
    #: the first differing values (at most :data:`odrun.compare.numeric.MAX_ITEMS`)
    items: list[ValueDiff] = field(default_factory=list)
    histograms: list[HistogramDiff] = field(default_factory=list)

    def describe(self) -> str:
        changed = self.differing + self.strings_differing
        parts = [f"{changed} of {self.compared} values differ"] if self.compared else []
        if self.differing:
            parts.append(
                f"numbers: max abs {self.max_abs:.4g}, max rel {self.max_rel:.3g} at {self.worst}"
            )
        if self.rows_a is not None and self.rows_a != self.rows_b:
            parts.append(f"rows {self.rows_a} -> {self.rows_b}")
        if self.only_a or self.only_b:
            parts.append(f"{self.only_a} values only in A, {self.only_b} only in B")
        if not parts and not self.histograms:
            parts.append("nothing to compare number by number")
        if self.strings_differing:
            parts.append(f"{self.strings_differing} strings (or types) differ")
        for hist in self.histograms:
            stat = f", chi2 p-value {hist.p_value:.3g}" if hist.p_value is not None else ""
            parts.append(f"histogram {hist.key or '(file)'}: {hist.detail}{stat}")
        return "; ".join(parts)


@dataclass(frozen=True)
class OutputDiff:
    """One output file in both runs: checksums, sizes, and for files that differ, the
    numeric comparison (JSON, CSV, histograms) or why there is none (``note``)."""

    path: str
    kind: Kind
    checksum_a: str | None = None
    checksum_b: str | None = None
    size_a: int | None = None
    size_b: int | None = None
    numeric: NumericDiff | None = None
    #: why no numeric comparison was made (binary, too large, unreadable, outside the run)
    note: str = ""

    @property
    def differs(self) -> bool:
        return self.kind != "equal"

    def describe(self) -> str:
        if self.kind == "equal":
            return "identical"
        if self.kind in ("added", "removed"):
            return self.note or f"only in run {'B' if self.kind == 'added' else 'A'}"
        if self.numeric is not None:
            return self.numeric.describe()
        sizes = f"size {self.size_a} -> {self.size_b}" if self.size_a != self.size_b else ""
        return "; ".join(p for p in (sizes, self.note) if p) or "checksums differ"

    def change(self) -> Change:
        return Change(self.kind, self.path, self.checksum_a, self.checksum_b, self.describe())


@dataclass(frozen=True)
class RunSummary:
    """Which run a side of the diff is."""

    run_dir: str
    analysis: str
    status: str
    runtime: str


@dataclass(frozen=True)
class RunDiff:
    """What differs between run A and run B (:func:`odrun.compare.diff`)."""

    a: RunSummary
    b: RunSummary
    inputs: list[Change] = field(default_factory=list)
    environment: list[Change] = field(default_factory=list)
    parameters: list[Change] = field(default_factory=list)
    steps: list[Change] = field(default_factory=list)
    outputs: list[OutputDiff] = field(default_factory=list)
    #: things the comparison could not see (no lock, parameters not recorded ...)
    notes: list[str] = field(default_factory=list)

    def section(self, name: str) -> list[Change]:
        if name == "outputs":
            return [o.change() for o in self.outputs]
        items: list[Change] = getattr(self, name)
        return items

    @property
    def outputs_differ(self) -> bool:
        return any(o.kind != "equal" for o in self.outputs)

    @property
    def equal(self) -> bool:
        """Nothing differs in any section."""
        return not any(c.differs for name in SECTIONS for c in self.section(name))

    @property
    def explanations(self) -> list[Change]:
        """The input, environment and parameter changes: candidate causes of the outputs'."""
        return [c for c in (*self.inputs, *self.environment, *self.parameters) if c.differs]

    @property
    def summary(self) -> str:
        """One line: ``outputs differ (2 of 3); changed: parameter nbins 80 -> 60``."""
        causes = [_cause(c) for c in self.explanations]
        changed = f"; changed: {', '.join(causes)}" if causes else ""
        if self.outputs_differ:
            n = sum(1 for o in self.outputs if o.kind != "equal")
            # nothing else changed: a step's command (reana.yaml edited) may explain it
            commands = [c.key for c in self.steps if c.differs and c.key.endswith(" command")]
            why = changed or (f"; changed: {', '.join(commands)}" if commands else "")
            why = why or "; no input, environment or parameter change recorded"
            return f"outputs differ ({n} of {len(self.outputs)}){why}"
        if self.equal:
            return f"runs agree: {len(self.outputs)} outputs identical"
        steps = [c for c in self.steps if c.differs]
        more = f", {len(steps)} step differences" if steps else ""
        return f"outputs identical ({len(self.outputs)}){changed}{more}"

    def to_dict(self) -> dict[str, Any]:
        """The ``odrun diff --json`` document (schema: specs/diff.schema.json)."""
        return {
            "format_version": DIFF_FORMAT_VERSION,
            "a": asdict(self.a),
            "b": asdict(self.b),
            "equal": self.equal,
            "outputs_differ": self.outputs_differ,
            "summary": self.summary,
            "inputs": [c.to_dict() for c in self.inputs],
            "environment": [c.to_dict() for c in self.environment],
            "parameters": [c.to_dict() for c in self.parameters],
            "steps": [c.to_dict() for c in self.steps],
            "outputs": [_finite(asdict(o)) for o in self.outputs],
            "notes": list(self.notes),
        }


def _finite(value: Any) -> Any:
    """``value`` with every infinite or NaN float as the string ``inf``, ``-inf`` or ``nan``
    (JSON has no such numbers; ``json.dumps`` would write invalid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _cause(change: Change) -> str:
    if change.kind == "changed":
        return f"{change.key} {change.a} -> {change.b}"
    return f"{change.key} {'added' if change.kind == 'added' else 'removed'}"


@dataclass(frozen=True)
class SummaryRow:
    """One row of a rendered diff (all strings): what ``odrun report --against`` shows."""

    section: str
    kind: Kind
    key: str
    a: str
    b: str
    detail: str


def diff_summary_rows(diff: RunDiff, *, include_equal: bool = False) -> list[SummaryRow]:
    """The diff as table rows, section by section (only what differs unless
    ``include_equal``); a report renders them as they are."""
    rows = []
    for name in SECTIONS:
        for c in diff.section(name):
            if c.differs or include_equal:
                rows.append(SummaryRow(name, c.kind, c.key, c.a or "-", c.b or "-", c.detail))
    return rows
