"""What a run report shows, read from a run folder: every string in it is untrusted data.

The run folder's ``run.json`` (status, steps, records, outputs and the checks with their
numbers, :data:`odrun.workflow.expect.CHECK_DATA_KINDS`) and ``odrun.lock`` (images and
digests, CVMFS revisions, tool versions) become plain dataclasses; the template only lays
them out (autoescaped), and plots are drawn by :mod:`odrun.report.plots`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from odrun import untrusted
from odrun._fs import confine
from odrun.errors import OdrunError
from odrun.report.cdf import CdfData, cdf_data
from odrun.workflow.lock import NAME as LOCK_NAME
from odrun.workflow.model import RunRecord

#: output images shown inline (as data: URIs in <img>: an SVG there runs no script)
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}
#: larger output images are listed, not embedded; nor are any beyond the total
MAX_INLINE_IMAGE = 4 * 1024 * 1024
MAX_INLINE_TOTAL = 16 * 1024 * 1024
#: the last lines of a failed step's log the report shows, read from its last bytes only
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 64 * 1024
#: the largest odrun.lock shown
MAX_LOCK_BYTES = 16 * 1024 * 1024
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
#: the longest string of any value the report shows (the template cuts the rest): a name
#: of megabytes in run.json would be repeated in attributes, cells and captions
MAX_SHOWN = 10_000


class Whole(str):
    """A string the report shows whole, exempt from :data:`MAX_SHOWN`: the ``data:`` URIs
    of images and plots (bounded by their own limits) and the lock (by MAX_LOCK_BYTES)."""

    __slots__ = ()


def shown(value: Any) -> Any:
    """A value as the template writes it: a string longer than MAX_SHOWN cut, saying so
    (the template's ``finalize``: every ``{{ … }}``, whatever field it names)."""
    if isinstance(value, str) and not isinstance(value, Whole) and len(value) > MAX_SHOWN:
        return f"{value[:MAX_SHOWN]}… ({len(value) - MAX_SHOWN} more characters)"
    return value


@dataclass(frozen=True)
class CheckRow:
    name: str
    ok: bool
    detail: str
    kind: str = ""
    value: str = ""
    expected: str = ""
    tolerance: str = ""
    statistic: str = ""
    p_value: str = ""


@dataclass(frozen=True)
class HistogramData:
    """One histogram check's output and reference (as compared), for a plot."""

    name: str
    ok: bool
    label: str
    edges: list[float]
    counts: list[float]
    errors: list[float]
    reference_counts: list[float]
    reference_errors: list[float]
    pulls: list[float | None]
    #: "chi2 65.5 / 79, p = 0.862" (empty for a bin-by-bin comparison)
    statistic: str
    reference: str


@dataclass(frozen=True)
class OutputRow:
    path: str
    size: str
    checksum: str
    #: a data: URI of the image, when the output is one small enough to embed
    image: str = ""


@dataclass(frozen=True)
class StepRow:
    name: str
    command: str
    exit_code: str
    ok: bool
    duration: str
    log_tail: str = ""


@dataclass(frozen=True)
class RecordRow:
    recid: str
    doi: str
    #: https://doi.org/<doi>, only for a well-formed DOI
    doi_url: str = ""


@dataclass(frozen=True)
class ComparisonSection:
    """What the report shows of a comparison with another run (``odrun diff`` builds one;
    :func:`compare_checks` is the simple one ``against`` makes): a table."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    #: per row: whether it differs (highlighted)
    changed: list[bool] = field(default_factory=list)


@dataclass
class ReportContent:
    title: str
    run_name: str
    run_dir: str
    status: str
    #: True pass, False fail, None: no expectations judged
    verified: bool | None
    n_checks: int
    n_failed: int
    runtime: str
    fallback: str
    duration: str
    started: str
    ended: str
    error: str
    partial: bool
    checks: list[CheckRow] = field(default_factory=list)
    #: what is plotted: histogram checks, and KS checks as their two CDFs
    histograms: list[HistogramData | CdfData] = field(default_factory=list)
    outputs: list[OutputRow] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    records: list[RecordRow] = field(default_factory=list)
    environment: list[tuple[str, str]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)
    cvmfs: list[tuple[str, str]] = field(default_factory=list)
    tools: list[tuple[str, str]] = field(default_factory=list)
    lock: str = ""
    comparison: ComparisonSection | None = None

    @property
    def verdict(self) -> str:
        if self.status != "finished":
            return "RUN FAILED" if self.status == "failed" else self.status.upper()
        if self.verified is None:
            return "NOT VERIFIED"
        return "PASS" if self.verified else "FAIL"


def fmt(value: Any) -> str:
    """A number as a person reads it (4 significant digits kept as given), else text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    return str(value)


def _p(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) and math.isfinite(value) else fmt(value)


def check_row(doc: dict[str, Any]) -> CheckRow:
    raw = doc.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kind = str(data.get("kind") or "")
    row = CheckRow(
        str(doc.get("name") or "?"), doc.get("ok") is True, str(doc.get("detail") or ""), kind
    )
    if kind in ("value", "checksum"):
        tol = fmt(data.get("tolerance"))
        if data.get("sigma") is not None:
            tol = f"{tol} ({fmt(data.get('n_sigma'))} σ, σ = {fmt(data.get('sigma'))})"
        pull = data.get("pull")
        return CheckRow(
            row.name,
            row.ok,
            row.detail,
            kind,
            fmt(data.get("value")),
            fmt(data.get("expected")),
            tol if kind == "value" else "",
            f"pull {pull:+.2f}" if isinstance(pull, float) else "",
        )
    if kind == "present":
        return CheckRow(row.name, row.ok, row.detail, kind, f"{fmt(data.get('size'))} bytes")
    if kind in ("histogram", "ks"):
        statistic = ""
        if data.get("statistic") is not None:
            name = "D" if kind == "ks" else "χ²"
            ndf = f" / {data['ndf']} ndf" if data.get("ndf") is not None else ""
            statistic = f"{name} = {fmt(data.get('statistic'))}{ndf}"
        tol = ""
        if data.get("p_min") is not None:
            tol = f"p ≥ {fmt(data.get('p_min'))}"
        elif isinstance(data.get("tolerance"), dict):
            t = data["tolerance"]
            tol = ", ".join(f"{k} {fmt(v)}" for k, v in t.items() if v)
        expected = str(data.get("reference") or "")
        return CheckRow(
            row.name,
            row.ok,
            row.detail,
            kind,
            str(data.get("key") or ""),
            expected,
            tol,
            statistic,
            _p(data.get("p_value")),
        )
    return row


def _numbers(values: Any) -> list[float] | None:
    if not isinstance(values, list):
        return None
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        out.append(float(v))
    return out


def histogram_data(doc: dict[str, Any]) -> HistogramData | None:
    """The plot data of a histogram check, or None when it holds none (or malformed)."""
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("kind") != "histogram":
        return None
    edges, counts = _numbers(data.get("edges")), _numbers(data.get("counts"))
    ref = _numbers(data.get("reference_counts"))
    if edges is None or counts is None or ref is None:
        return None
    n = len(counts)
    if len(edges) != n + 1 or len(ref) != n or n == 0:
        return None
    errors = _numbers(data.get("errors")) or [math.sqrt(max(c, 0.0)) for c in counts]
    ref_errors = _numbers(data.get("reference_errors")) or [0.0] * n
    raw = data.get("pulls")
    pulls: list[float | None] = [None] * n
    if isinstance(raw, list) and len(raw) == n:
        pulls = [
            float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
            for v in raw
        ]
    statistic = ""
    if isinstance(data.get("statistic"), (int, float)):
        ndf = f" / {data['ndf']}" if data.get("ndf") is not None else ""
        statistic = f"χ²/ndf = {data['statistic']:.1f}{ndf}, p = {_p(data.get('p_value'))}"
    elif isinstance(data.get("tolerance"), dict):
        parts = [f"{k} {fmt(v)}" for k, v in data["tolerance"].items() if v]
        statistic = "bin by bin: " + (", ".join(parts) or "exact")
    return HistogramData(
        name=str(doc.get("name") or "?"),
        ok=doc.get("ok") is True,
        label=str(data.get("label") or data.get("key") or "bin"),
        edges=edges,
        counts=counts,
        errors=errors if len(errors) == n else [0.0] * n,
        reference_counts=ref,
        reference_errors=ref_errors if len(ref_errors) == n else [0.0] * n,
        pulls=pulls,
        statistic=statistic,
        reference=str(data.get("reference") or ""),
    )


def _seconds(started: Any, ended: Any) -> float | None:
    try:
        a = dt.datetime.fromisoformat(str(started))
        b = dt.datetime.fromisoformat(str(ended))
    except ValueError:
        return None
    return (b - a).total_seconds()


def duration(started: Any, ended: Any) -> str:
    seconds = _seconds(started, ended)
    if seconds is None or seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _size(value: Any) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _inside(run_dir: Path, rel: str, what: str) -> Path | None:
    """``run_dir/rel`` when it is a regular file inside the run folder: never through a
    link out of it (not even a linked ``logs`` or ``workspace`` folder), never a FIFO."""
    try:
        path = confine(run_dir, rel, what)
    except (OdrunError, ValueError, OSError):
        return None
    return path if path.is_file() else None


def _image(run_dir: Path, rel: str) -> str:
    kind = IMAGE_TYPES.get(Path(rel).suffix.lower())
    path = _inside(run_dir, f"workspace/{rel}", "output") if kind else None
    if path is None or path.stat().st_size > MAX_INLINE_IMAGE:
        return ""
    try:
        data = untrusted.read_tail(path, MAX_INLINE_IMAGE + 1)  # all of it: it is small
    except (OSError, ValueError):
        return ""
    if len(data) > MAX_INLINE_IMAGE:  # it grew
        return ""
    return Whole(f"data:{kind};base64,{base64.b64encode(data).decode()}")


def _log_tail(run_dir: Path, log: Any) -> str:
    """The last lines of a step's log (``logs/<its name>``), read from its end only."""
    path = _inside(run_dir, f"logs/{Path(str(log)).name}", "step log") if log else None
    if path is None:
        return ""
    try:
        data = untrusted.read_tail(path, LOG_TAIL_BYTES)
        size = path.stat().st_size
    except (OSError, ValueError):
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > len(data) and len(lines) > 1:
        lines = lines[1:]  # the first one is cut
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _lock(run_dir: Path) -> tuple[dict[str, Any], str]:
    try:  # a regular file in the run folder only: never a link out, never a FIFO
        path = confine(run_dir, LOCK_NAME, "lock")
        text = untrusted.read_text(path, MAX_LOCK_BYTES)
        doc = untrusted.load_json(text)
    except (OdrunError, OSError, ValueError):
        return {}, ""
    return (doc if isinstance(doc, dict) else {}), Whole(text)


def _pairs(mapping: Any) -> list[tuple[str, str]]:
    if not isinstance(mapping, dict):
        return []
    return [
        (str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        for k, v in sorted(mapping.items())
    ]


def _fallback(fallback: Any) -> str:
    """``from podman: <why>`` of run.json's runtime_fallback (empty: none)."""
    if not isinstance(fallback, dict):
        return ""
    return f"from {fallback.get('from') or '?'}: {fallback.get('reason') or 'no reason recorded'}"


def read_content(run_dir: Path) -> ReportContent:
    """Everything the report of ``run_dir`` shows (UsageError: not a run folder)."""
    record = RunRecord.load(run_dir)
    data = record.data
    lock, lock_text = _lock(run_dir)
    checks = _dicts(data.get("checks"))
    # the verdict of the checks themselves: run.json's own "verified" may contradict them
    # (a hand-edited folder), and it can only make a PASS into a FAIL, never the reverse
    verified: bool | None = None
    if checks:
        verified = all(c.get("ok") is True for c in checks) and data.get("verified") is not False
    fallback = data.get("runtime_fallback")
    content = ReportContent(
        title=f"{record.analysis or 'odrun'} - run {record.name}",
        run_name=record.name,
        run_dir=str(run_dir),
        status=record.status,
        verified=verified,
        n_checks=len(checks),
        n_failed=sum(1 for c in checks if c.get("ok") is not True),
        runtime=str(data.get("runtime_description") or data.get("runtime") or ""),
        fallback=_fallback(fallback),
        duration=duration(record.started, record.ended),
        started=record.started,
        ended=record.ended,
        error=record.error or "",
        partial=record.partial,
        checks=[check_row(c) for c in checks],
        histograms=[h for h in (histogram_data(c) or cdf_data(c) for c in checks) if h is not None],
        lock=lock_text,
    )
    inline = 0
    for out in _dicts(data.get("outputs")):
        rel = str(out.get("path") or "")
        image = _image(run_dir, rel) if rel and inline < MAX_INLINE_TOTAL else ""
        inline += len(image)
        content.outputs.append(
            OutputRow(rel, _size(out.get("size")), str(out.get("checksum") or ""), image)
        )
    for step in record.steps:
        code = step.get("exit_code")
        ok = code == 0
        content.steps.append(
            StepRow(
                str(step.get("name") or "?"),
                str(step.get("command") or ""),
                fmt(code),
                ok,
                duration(step.get("started"), step.get("ended")),
                "" if ok else _log_tail(run_dir, step.get("log")),
            )
        )
    for rec in _dicts(data.get("records")):
        doi = str(rec.get("doi") or "")
        url = f"https://doi.org/{quote(doi, safe='/:;()._-')}" if _DOI.match(doi) else ""
        content.records.append(RecordRow(str(rec.get("recid") or "?"), doi, url))
    content.environment = [
        ("runtime", content.runtime),
        ("runtime asked for", str(data.get("runtime_requested") or "")),
        ("executor", str(data.get("executor") or "")),
        ("offline", fmt(data.get("offline")) if "offline" in data else ""),
        ("untrusted analysis", fmt(data.get("untrusted"))),
        ("analysis", record.analysis_path),
    ]
    content.environment = [(k, v) for k, v in content.environment if v]
    digests = {
        str(i.get("name")): str(i.get("digest") or "no digest recorded")
        for i in _dicts(lock.get("images"))
    }
    for image in data.get("ignored_images") or []:
        digests.setdefault(str(image), "not used: ran on the host")
    content.images = sorted(digests.items())
    content.cvmfs = _pairs(lock.get("cvmfs"))
    content.tools = _pairs(lock.get("tools"))
    return content


def compare_checks(this: ReportContent, other: ReportContent) -> ComparisonSection:
    """The checks of two runs side by side (value and verdict): ``build_report``'s
    ``against``; ``odrun diff`` may pass a richer :class:`ComparisonSection` instead."""
    theirs = {c.name: c for c in other.checks}
    rows: list[list[str]] = []
    changed: list[bool] = []
    for check in this.checks:
        old = theirs.pop(check.name, None)
        rows.append(
            [
                check.name,
                check.value or ("ok" if check.ok else "FAIL"),
                "" if old is None else old.value or ("ok" if old.ok else "FAIL"),
            ]
        )
        changed.append(old is None or old.value != check.value or old.ok != check.ok)
    for name, old in theirs.items():
        rows.append([name, "", old.value or ("ok" if old.ok else "FAIL")])
        changed.append(True)
    return ComparisonSection(
        f"Compared with run {other.run_name}",
        ["check", f"this run ({this.run_name})", f"run {other.run_name}"],
        rows,
        changed,
    )
