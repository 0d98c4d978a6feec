"""The run report: one self-contained HTML file per run folder (``report.html``).

:func:`build_report` reads a run folder (:mod:`odrun.report.content`) and renders it with
Jinja2 (autoescaped: every string in a run folder is untrusted) into HTML that needs no
network: inline CSS, images as ``data:`` URIs, no script (a Content-Security-Policy
forbids any). Histogram checks are plotted with matplotlib (``odrun[report]``,
:mod:`odrun.report.plots`); without it the report still has every table and says how to
get the plots. :func:`write_report` writes it atomically; :func:`report_quietly` is the
hook a run calls after ``run.json``: a report that cannot be written is a warning, never
a failed run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from odrun._fs import atomic_write
from odrun._version import __version__
from odrun.compare import diff as diff_runs
from odrun.compare import diff_summary_rows
from odrun.errors import OdrunError, UsageError
from odrun.report.cdf import CdfData
from odrun.report.content import (
    ComparisonSection,
    ReportContent,
    Whole,
    compare_checks,
    read_content,
    shown,
)
from odrun.workflow.model import RUN_JSON, latest
from odrun.workflow.record import ensure_newest_recorded

#: the report's file name in a run folder
REPORT_HTML = "report.html"
TEMPLATE = "report.html.j2"


def find_run(target: Path) -> Path:
    """The run folder ``odrun report TARGET`` reports: TARGET itself when it holds a
    ``run.json``, else the newest recorded run of the analysis TARGET (a folder or its
    spec file), failed runs included: their report says why. UsageError when none;
    WorkflowError when the newest run folder has no run.json."""
    if (target / RUN_JSON).is_file():
        return target
    root = target.parent if target.is_file() else target
    ensure_newest_recorded(root, "report")  # never an older run's report in its place
    newest = latest(root)
    if newest is None:
        raise UsageError(
            f"{target} is neither a run folder nor an analysis that has run",
            hint=f"give a run folder (.odrun/runs/<time>), or run it first: odrun run {target}",
        )
    return newest.run_dir


def _plots(content: ReportContent) -> tuple[list[str] | None, list[str]]:
    """Each histogram's plot URI ("" where it failed, with the reason), or None without
    matplotlib."""
    from odrun.report import plots  # noqa: PLC0415 - matplotlib only when there is a plot

    if not content.histograms or not plots.have_matplotlib():
        return None, []
    uris: list[str] = []
    errors: list[str] = []
    for number, hist in enumerate(content.histograms):
        if number >= plots.MAX_PLOTS:
            uris.append("")
            errors.append(f"{hist.name}: not plotted (more than {plots.MAX_PLOTS} plots)")
            continue
        try:
            if isinstance(hist, CdfData):
                uris.append(Whole(plots.cdf_svg(hist)))
            else:
                uris.append(Whole(plots.histogram_svg(hist)))
            errors.append("")
        except (ValueError, TypeError, ArithmeticError, OSError, RuntimeError) as exc:
            uris.append("")
            errors.append(f"the plot of {hist.name} could not be drawn: {exc}")
    return uris, errors


def render(
    content: ReportContent, comparison: ComparisonSection | list[ComparisonSection] | None = None
) -> str:
    """The HTML of ``content`` (and comparison sections, when given)."""
    import jinja2  # noqa: PLC0415 - only reports need it

    from odrun.report.plots import PLOT_HINT  # noqa: PLC0415

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("odrun.report", "."),
        autoescape=True,  # every string in a run folder is untrusted
        finalize=shown,  # and may be megabytes long
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    uris, errors = _plots(content)
    return env.get_template(TEMPLATE).render(
        c=content,
        plots=uris,
        plot_errors=errors,
        plot_hint=PLOT_HINT,
        comparisons=_sections(comparison or content.comparison),
        version=__version__,
    )


def build_report(
    run_dir: Path,
    *,
    against: Path | None = None,
    comparison: ComparisonSection | None = None,
) -> str:
    """The HTML report of the run in ``run_dir`` (UsageError: not a run folder). With
    ``against`` (another run folder) it shows both runs' checks side by side; ``odrun
    diff`` may pass its own ``comparison`` section instead."""
    content = read_content(run_dir)
    if comparison is None and against is not None:
        return render(
            content, [compare_checks(content, read_content(against)), *_diff(against, run_dir)]
        )
    return render(content, comparison)


def _sections(given: ComparisonSection | list[ComparisonSection] | None) -> list[ComparisonSection]:
    if given is None:
        return []
    return given if isinstance(given, list) else [given]


def _diff(against: Path, run_dir: Path) -> list[ComparisonSection]:
    """What ``odrun diff AGAINST RUN`` finds, as a table (inputs, environment, parameters,
    steps, outputs and by how much); a diff that cannot be made is said in one row."""
    try:
        found = diff_runs(against, run_dir)
    except OdrunError as exc:
        return [ComparisonSection("What differs", ["note"], [[exc.message]], [False])]
    rows = diff_summary_rows(found)
    return [
        ComparisonSection(
            f"What differs from run {against.name}: {found.summary}",
            ["section", "what", "key", f"run {against.name}", "this run", "detail"],
            [[r.section, r.kind, r.key, r.a, r.b, r.detail] for r in rows],
            [True] * len(rows),
        )
    ]


def write_report(run_dir: Path, target: Path | None = None, *, against: Path | None = None) -> Path:
    """Write the report of ``run_dir`` to ``target`` [``run_dir/report.html``], atomically
    (a reader sees the old file or the new, never a part). Returns its path."""
    html = build_report(run_dir, against=against)
    path = target or run_dir / REPORT_HTML
    try:
        atomic_write(path, html.encode("utf-8"))
    except OSError as exc:
        raise UsageError(
            f"cannot write the report {path}: {exc.strerror or exc}",
            hint="give a file path you can write to (-o FILE)",
        ) from None
    return path


def report_quietly(run_dir: Path, say: Callable[[str], None]) -> Path | None:
    """Write ``run_dir/report.html`` after a run; a failure is said as a warning (a report
    must never turn a passing run into a failed one). Returns the path, or None."""
    try:
        return write_report(run_dir)
    except Exception as exc:
        what = exc.message if isinstance(exc, OdrunError) else f"{type(exc).__name__}: {exc}"
        say(f"warning: no report.html for {run_dir}: {what}")
        return None


__all__ = [
    "REPORT_HTML",
    "ComparisonSection",
    "build_report",
    "find_run",
    "report_quietly",
    "write_report",
]
