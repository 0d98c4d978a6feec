"""CLI commands that read a record: info, files, cite. Parse, call, render."""

from __future__ import annotations

import click

from odrun import render
from odrun.cli._common import (
    filter_options,
    global_options,
    json_option,
    protocol_option,
    record_target,
    settings_of,
)
from odrun.errors import PartialError
from odrun.records import FileFilter, Resolver
from odrun.records.cite import cite as make_citation


@click.command()
@global_options
@record_target
@json_option
@click.pass_context
def info(ctx: click.Context, target: str, as_json: bool) -> None:
    """Show a record: title, experiment, DOI, files (indices expanded), environment.

    \b
    Examples:
      odrun info 5500
      odrun info https://doi.org/10.7483/OPENDATA.CMS.A342.9982 --json
    """

    with Resolver(settings_of(ctx)) as resolver:
        record = resolver.resolve(target)
    if as_json:
        render.print_json(record.to_dict())
    else:
        render.show_record(record)


@click.command()
@global_options
@record_target
@protocol_option(("root", "https"), help="Rewrite EOS URIs to this protocol (ODRUN_PROTOCOL_MAP).")
@filter_options
@json_option
@click.pass_context
def files(
    ctx: click.Context,
    target: str,
    protocol: str | None,
    names: tuple[str, ...],
    regexp: str | None,
    ranges: tuple[str, ...],
    as_json: bool,
) -> None:
    """List a record's file locations, one per line (index files expanded).

    Exits 6 (partial) after the list when a file index could not be read: the
    list is then incomplete (--json says which indices in missing_indices).

    \b
    Examples:
      odrun files 1 --filter-range 1-10
      odrun files 5500 --protocol https --filter-name '*.py'
      odrun files 1 --filter-regexp '^00[0-9A-F]' --json
    """

    settings = settings_of(ctx)
    chosen = FileFilter.build(names, regexp, ranges)
    with Resolver(settings) as resolver:
        record = resolver.resolve(target)
    selected = chosen.apply(record.files)
    pmap = settings.protocol_map
    if protocol == "root":
        uris = [pmap.rewrite(f.uri, "root") for f in selected]
    elif protocol == "https":
        uris = [pmap.rewrite(f.uri, "https") for f in selected]
    else:
        uris = [f.uri for f in selected]
    if as_json:
        docs = [dict(f.to_dict(), uri=uri) for f, uri in zip(selected, uris, strict=True)]
        render.print_json(
            {
                "recid": record.recid,
                "files_complete": record.files_complete,
                "missing_indices": [i.name for i in record.missing_indices],
                "files": docs,
            }
        )
    else:
        render.file_lines(uris)
        for index in record.missing_indices:
            render.warning(f"list incomplete: index {index.name} unavailable ({index.reason})")
    missing = record.missing_indices
    if missing:
        raise PartialError(
            f"file list of record {record.recid} is incomplete: {len(missing)} of "
            f"{len(record.indices)} file indices could not be read",
            hint="try again later, or --refresh to ask again at once",
        )


@click.command()
@global_options
@record_target
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "bibtex", "json"]),
    default="text",
    show_default=True,
    help="Citation format (json is CSL-JSON).",
)
@click.pass_context
def cite(ctx: click.Context, target: str, fmt: str) -> None:
    """Print a citation for a record (DOI, authors or collaboration, title, year).

    \b
    Examples:
      odrun cite 10.7483/OPENDATA.CMS.JKB8.RR42
      odrun cite 5500 --format bibtex >> refs.bib
    """

    with Resolver(settings_of(ctx)) as resolver:
        record = resolver.resolve(target, files=False)
    citation = make_citation(record, fmt)  # type: ignore[arg-type]
    if isinstance(citation, dict):
        render.print_json(citation)
    else:
        render.echo(citation, lines=True)
