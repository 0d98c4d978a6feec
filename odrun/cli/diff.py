"""CLI command ``odrun diff``: compare two runs. Parse, call, render."""

from __future__ import annotations

import click

from odrun import render
from odrun.cli._common import global_options, json_option
from odrun.compare import MAX_NUMERIC_BYTES, SECTIONS, RunDiff, diff, diff_summary_rows
from odrun.errors import VerificationError

_MARK = {"equal": "=", "changed": "~", "added": "+", "removed": "-"}


def _render(result: RunDiff, show_all: bool) -> None:
    render.echo(f"A: {result.a.run_dir} ({result.a.status}, {result.a.runtime})")
    render.echo(f"B: {result.b.run_dir} ({result.b.status}, {result.b.runtime})")
    rows = diff_summary_rows(result, include_equal=show_all)
    for section in SECTIONS:
        these = [r for r in rows if r.section == section]
        total = len(result.section(section))
        differ = sum(1 for c in result.section(section) if c.differs)
        render.echo(f"{section}: {differ} of {total} differ")
        for row in these:
            values = row.a if row.a == row.b else f"{row.a} -> {row.b}"
            detail = f"  ({row.detail})" if row.detail else ""
            render.echo(f"  {_MARK[row.kind]} {row.key}: {values}{detail}")
    for note in result.notes:
        render.echo(f"note: {note}")
    render.echo(result.summary)


@click.command("diff")
@global_options
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--all", "show_all", is_flag=True, help="Show equal items too.")
@click.option(
    "--max-bytes",
    type=click.IntRange(min=0),
    default=MAX_NUMERIC_BYTES,
    show_default=True,
    help="Compare outputs up to this size number by number; larger ones by checksum and size.",
)
@json_option
def diff_cmd(run_a: str, run_b: str, show_all: bool, max_bytes: int, as_json: bool) -> None:
    """What differs between two runs: inputs, environment, parameters, steps, outputs.

    RUN_A and RUN_B are run folders (.odrun/runs/<time>, or a REANA record folder after
    `odrun download`), analysis folders (their newest run), REANA workflow names with a
    local record, or folders of downloaded files (outputs only). Outputs that differ are
    compared number by number (JSON key paths, CSV cells, histograms in JSON, CSV and ROOT
    files bin by bin with a chi2 test, run A as the reference); the input, environment and
    parameter changes are listed as candidate explanations.

    Exit code 0 when the outputs are identical (even if the environment differs: a note
    says what changed), 10 when outputs differ.

    \b
    Examples:
      odrun diff workflows/dimuon-demo/.odrun/runs/20261125T201500Z workflows/dimuon-demo
      odrun diff RUN_A RUN_B --json --max-bytes 100000000
    """
    result = diff(run_a, run_b, max_bytes=max_bytes)
    if as_json:
        render.print_json(result.to_dict())
    else:
        _render(result, show_all)
    if result.outputs_differ:
        where = "the outputs in the JSON above" if as_json else "the outputs section above"
        raise VerificationError(result.summary, hint=f"see {where}")
