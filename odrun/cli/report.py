"""CLI command ``odrun report``: a run's self-contained HTML report. Parse, call, render."""

from __future__ import annotations

from pathlib import Path

import click

from odrun import render
from odrun.api import write_report
from odrun.cli._common import global_options


@click.command("report")
@global_options
@click.argument("run", metavar="RUN|PATH", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the report [RUN/report.html].",
)
@click.option(
    "--against",
    type=click.Path(exists=True, path_type=Path),
    help="Another run (folder, or analysis: its newest run) to show the checks of side by side.",
)
def report_cmd(run: Path, output: Path | None, against: Path | None) -> None:
    """Write a run's report: one HTML file that opens offline (no network).

    RUN|PATH is a run folder, or an analysis whose newest run is reported. The
    report shows the verdict, the checks, each histogram against its reference
    with a pull panel (plots need matplotlib: pip install 'odrun[report]'), the
    outputs, steps, records, environment and lock. Every run writes one into its
    folder; this writes it again (or elsewhere).

    \b
    Examples:
      odrun report workflows/dimuon-demo
      odrun report .odrun/runs/20250101T120000Z -o z-peak.html
    """
    path = write_report(run, output, against=against)
    render.echo(f"report: {path}")
