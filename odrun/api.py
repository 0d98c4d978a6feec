"""odrun's Python API: resolve a record, fetch its files, run an analysis, verify a run,
submit to REANA. Each call returns a dataclass and raises a typed :mod:`odrun.errors`
error (the CLI's exit code is ``err.exit_code``); none prints: pass ``say`` to hear
progress notes. Everything is importable from the package itself (``odrun.run``), loaded
only when first used, so ``import odrun`` stays light.

Example (the bundled demo, offline)::

    import odrun
    settings = odrun.Settings.load({"portal_url": "workflows/mirror", "offline": False})
    record = odrun.resolve("900001", settings)
    report = odrun.fetch(record, "data", settings=settings)
    result = odrun.run("workflows/dimuon-demo", odrun.RunOptions(runtime="host"), settings=settings)
    verdict = odrun.verify(result.run_dir)
    print(verdict.ok)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from odrun.compare import MAX_NUMERIC_BYTES, RunDiff
from odrun.compare import diff as _diff
from odrun.errors import ConfigError
from odrun.reana.client import ReanaClient
from odrun.reana.record import Submission
from odrun.reana.submit import OnStatus, SubmitOptions, outcome_error
from odrun.reana.submit import submit as _submit
from odrun.records import FileFilter, Record, Resolver, resolve
from odrun.report import REPORT_HTML, find_run, report_quietly
from odrun.report import write_report as _write_report
from odrun.settings import Settings
from odrun.transfer.fetch import DEFAULT_JOBS, Fetcher, FetchReport, fetch_error
from odrun.workflow.model import RUN_JSON, RunOptions, RunResult, Say
from odrun.workflow.runner import run_analysis
from odrun.workflow.spec import Analysis, load_analysis
from odrun.workflow.verify import Verification, verify_run


def _quiet(_: str) -> None:
    """The default ``say``: progress notes go nowhere."""


def fetch(
    target: str | Record,
    dest: str | Path | None = None,
    *,
    names: Sequence[str] = (),
    regexp: str | None = None,
    ranges: Sequence[str] = (),
    settings: Settings | None = None,
    jobs: int = DEFAULT_JOBS,
    say: Say = _quiet,
) -> FetchReport:
    """Fetch a record's files (all, or those ``names`` / ``regexp`` / ``ranges`` select, as
    ``odrun fetch --filter-*``) to ``dest`` (default ``./<recid>``), each verified against
    its size and checksum through the shared cache. Returns the report of every file.

    Raises PartialError (6) when some files failed (the report of the others is kept in
    the cache: fetching again resumes), else ChecksumError (4) / TransportError (5) /
    NotFoundError (3) when none could be fetched.

    Example::

        report = odrun.fetch("900001", "data", names=["*.csv"])
        print(report.bytes_transferred, [r.path for r in report.results])
    """
    settings = settings or Settings.load()
    record = target
    if not isinstance(record, Record):
        with Resolver(settings) as resolver:
            record = resolver.resolve(record)
    files = FileFilter.build(list(names), regexp, list(ranges)).apply(record.files)
    if not record.files_complete:
        say(
            f"warning: record {record.recid}: file list incomplete "
            f"({len(record.missing_indices)} index files unreadable); fetching the known files"
        )
    with Fetcher(settings) as fetcher:
        report = fetcher.fetch_files(
            files, Path(dest or record.recid), jobs=jobs, recid=record.recid
        )
    error = fetch_error(report)
    if error is not None:
        raise error
    return report


def run(
    analysis: str | Path | Analysis,
    options: RunOptions | None = None,
    *,
    settings: Settings | None = None,
    say: Say = _quiet,
) -> RunResult:
    """Run an analysis (a folder, or its reana.yaml / odrun.yaml) as ``odrun run`` does:
    preflight, a fresh run folder, staged inputs, fetched records, the steps, then
    ``run.json``, ``odrun.lock``, the RO-Crate and ``report.html`` (a report that cannot be
    written is a warning said to ``say``, never a failure). The expectations are judged
    when every step ran (``result.checks``; ``result.verified``).

    Raises, after the run record is written: WorkflowError (7) when a step fails,
    LockError (11) for ``RunOptions(locked=True)`` and drifted inputs, SpecError (2), ...

    Example::

        result = odrun.run("workflows/dimuon-demo", odrun.RunOptions(runtime="podman"))
        print(result.status, result.run_dir, result.verified)
    """
    if not isinstance(analysis, Analysis):
        analysis = load_analysis(Path(analysis))
    return run_analysis(
        analysis, settings or Settings.load(), options, say=say, on_record=report_hook(say)
    )


def report_hook(say: Say = _quiet) -> Callable[[Path], None]:
    """What a run calls once its ``run.json`` is written: write ``report.html`` into the
    run folder, a failure said as a warning (the CLI's ``odrun run`` uses it too)."""

    def hook(run_dir: Path) -> None:
        if (run_dir / RUN_JSON).is_file():
            report_quietly(run_dir, say)

    return hook


def write_report(
    run: str | Path, output: str | Path | None = None, *, against: str | Path | None = None
) -> Path:
    """Write the HTML report of a run (``odrun report``): ``run`` is a run folder, or an
    analysis whose newest run is reported. Written to ``output`` [the run folder's
    ``report.html``]; ``against`` (another run folder) adds both runs' checks side by
    side. Returns the report's path. Raises UsageError (2) when there is no run.

    Example::

        path = odrun.write_report("workflows/dimuon-demo")
        print(path)  # .../.odrun/runs/<time>/report.html
    """
    run_dir = find_run(Path(run))
    other = find_run(Path(against)) if against is not None else None
    return _write_report(run_dir, Path(output) if output else None, against=other)


def verify(target: str | Path, *, say: Say = _quiet) -> Verification:
    """Judge a run against the expectations (``odrun verify``): ``target`` is a run folder,
    or an analysis whose newest complete run is judged. A failed expectation is not an
    exception: read ``verdict.ok`` and ``verdict.checks`` (``verdict.error()`` is the
    VerificationError, exit 10, the CLI raises). Raises WorkflowError (7) when the run
    failed or is partial, UsageError (2) when there is nothing to verify.

    Example::

        verdict = odrun.verify("workflows/dimuon-demo")
        for check in verdict.checks:
            print(check.name, check.ok, check.detail)
    """
    return verify_run(Path(target), say)


def submit(
    analysis: str | Path | Analysis,
    options: SubmitOptions | None = None,
    *,
    server: str | None = None,
    settings: Settings | None = None,
    insecure_http: bool = False,
    say: Say = _quiet,
    on_status: OnStatus = lambda _: None,
) -> Submission:
    """Submit an analysis to REANA (``odrun submit``): validate, create, upload, start,
    then as ``options`` say follow, download and verify. The server is ``server``, else
    ``settings.reana_server_url`` (REANA_SERVER_URL); the token
    ``settings.reana_access_token`` (REANA_ACCESS_TOKEN).

    Raises ConfigError (8) without a server, AuthError (12) for a rejected token, and the
    outcome's error when it follows the workflow to a bad end (WorkflowError for a failed
    workflow, VerificationError for failed expectations); the local record
    (``.odrun/reana/<workflow>``) is written first.

    Example::

        sub = odrun.submit("workflows/dimuon-demo", odrun.SubmitOptions(follow=True))
        print(sub.workflow_name, sub.status)
    """
    settings = settings or Settings.load()
    if not isinstance(analysis, Analysis):
        analysis = load_analysis(Path(analysis))
    url = server or settings.reana_server_url
    if not url:
        raise ConfigError(
            "no REANA server given",
            hint="pass server= or set REANA_SERVER_URL (e.g. https://reana.cern.ch)",
        )
    with ReanaClient(
        url, settings.reana_access_token, settings, insecure_http=insecure_http
    ) as client:
        sub = _submit(
            analysis, client, settings, options or SubmitOptions(), say=say, on_status=on_status
        )
    report_hook(say)(sub.run_dir)
    error = outcome_error(sub)
    if error is not None:
        raise error
    return sub


def diff(a: str | Path, b: str | Path, *, max_bytes: int = MAX_NUMERIC_BYTES) -> RunDiff:
    """What differs between two runs (``odrun diff``): inputs, environment, parameters,
    steps and outputs, with a numeric comparison of outputs that differ (JSON key paths, CSV
    cells, histograms bin by bin and by chi2, run ``a`` as the reference). ``a`` and ``b``
    are run folders, analysis folders (their newest run) or REANA records; files larger than
    ``max_bytes`` are compared by checksum and size only. Raises UsageError (2) when one is
    not a run, UnsafeMetadataError (9) when its run.json leads out through a link.

    Example::

        d = odrun.diff("runs/old", "workflows/dimuon-demo")
        print(d.summary)            # outputs differ (1 of 3); changed: parameter nbins 80 -> 60
        for output in d.outputs:
            print(output.path, output.kind, output.describe())
    """
    return _diff(a, b, max_bytes=max_bytes)


__all__ = [
    "REPORT_HTML",
    "RunDiff",
    "RunOptions",
    "RunResult",
    "Submission",
    "SubmitOptions",
    "Verification",
    "diff",
    "fetch",
    "resolve",
    "run",
    "submit",
    "verify",
    "write_report",
]
