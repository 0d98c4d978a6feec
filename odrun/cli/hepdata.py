"""CLI command ``odrun hepdata``: print or export a HEPData table (or list a record's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from odrun import render
from odrun._fs import atomic_write
from odrun.cli._common import global_options, json_option, settings_of
from odrun.errors import UsageError
from odrun.hepdata import HepdataClient, parse_ref, read_local
from odrun.hepdata.client import is_remote
from odrun.hepdata.export import header, rows, to_csv


@click.command("hepdata")
@global_options
@click.argument("table", metavar="INS[/TABLE[@VERSION]]|FILE")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per point.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the --json or --csv export to this file instead of printing it.",
)
@click.pass_context
def hepdata_cmd(
    ctx: click.Context, table: str, as_json: bool, as_csv: bool, output: Path | None
) -> None:
    """Print a HEPData table, or export it (--json, --csv); INS alone lists its tables.

    TABLE is ins<INSPIRE id>/<table name>[@version] on HEPData (ODRUN_HEPDATA_URL,
    cached like records; without @version the record's current one), or a HEPData
    YAML/JSON table file. Each row is a point: the independent variables' bins, then
    each dependent variable with its total upward and downward errors (all sources in
    quadrature, each side separately).

    \b
    Examples:
      odrun hepdata ins1234567                     # the record's tables
      odrun hepdata 'ins1234567/Table 3@1'
      odrun hepdata 'ins1234567/Table 3' --csv -o table3.csv
      odrun hepdata reference/table.yaml --json
    """
    if as_json and as_csv:
        raise UsageError("--json and --csv exclude each other", hint="choose one export")
    if output is not None and not (as_json or as_csv):
        as_csv = output.suffix.lower() != ".json"
        as_json = not as_csv
    settings = settings_of(ctx)
    meta: dict[str, Any] = {}
    if Path(table).is_file() and not is_remote(f"hepdata:{table}"):
        parsed = read_local(Path(table), table)
    elif "/" not in table:
        inspire = parse_ref(f"{table}/-").inspire  # ins1234567 or 1234567
        with HepdataClient(settings) as client:
            names = client.table_names(inspire)
        if as_json:
            render.print_json({"record": inspire, "tables": names})
        else:
            for name in names:
                render.echo(f"{inspire}/{name}")
        return
    else:
        with HepdataClient(settings) as client:
            resolved = client.fetch(parse_ref(table))
        parsed = resolved.table()
        meta = resolved.pin()
    if as_json:
        text = json.dumps({**meta, **parsed.to_dict()}, indent=2, sort_keys=True) + "\n"
    elif as_csv:
        text = to_csv(parsed)
    else:
        _render(parsed.name, parsed.description, meta, header(parsed), rows(parsed))
        return
    if output is None:
        render.echo(text, nl=False, lines=True)
        return
    try:
        atomic_write(output, text.encode())
    except OSError as exc:
        raise UsageError(
            f"-o {output}: cannot write the table: {exc.strerror or exc}",
            hint="give a file path you can write to",
        ) from None
    render.echo(f"wrote {output}", err=True)


def _render(
    name: str, description: str, meta: dict[str, Any], head: list[str], body: list[list[str]]
) -> None:
    from rich.table import Table as RichTable  # noqa: PLC0415 - rich only when drawn

    title = name + (f" (version {meta['version']}, sha256 {meta['sha256'][:12]})" if meta else "")
    grid = RichTable(title=render.markup(title), caption=render.markup(description[:300]) or None)
    for column in head:
        grid.add_column(render.markup(column), overflow="fold")
    for row in body:
        grid.add_row(*(render.markup(cell) for cell in row))
    render.stdout_console().print(grid)
