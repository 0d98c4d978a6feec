"""CLI command ``odrun env``: the environment a record needs and the catalog image providing it."""

from __future__ import annotations

from pathlib import Path

import click

from odrun import render
from odrun.cli._common import global_options, json_option, record_target, settings_of
from odrun.environments import (
    EnvironmentPlan,
    default_catalog,
    load_catalog,
    no_environment_note,
    plan_environment,
)
from odrun.records import Resolver


@click.command()
@global_options
@record_target
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Image catalog (default: the one shipped with odrun, images/catalog.yaml); "
    "its lock catalog.lock.json must sit next to it.",
)
@json_option
@click.pass_context
def env(ctx: click.Context, target: str, catalog_path: Path | None, as_json: bool) -> None:
    """Show the environment a record needs and which catalog image provides it.

    Reads the record's system_details (CMSSW release, global tag, container
    images), experiment, year and title; picks the image of images/catalog.yaml
    that serves them (release first, then the record's images, the title, then
    experiment and year), with its base pinned by digest, and the CVMFS
    repositories it reads. A record that declares no environment and that no
    image serves needs none: exit 0, image null and a note. Exit 3 only when
    the record does not exist.

    \b
    Examples:
      odrun env 6004                     # CMS 2012 AOD: CMSSW_5_3_32
      odrun env 10.7483/OPENDATA.CMS.A342.9982 --json
      odrun env 30522                    # NanoAOD: ROOT + uproot, no CMSSW
      odrun env 5201                     # CSV files: no environment needed (exit 0)
    """
    catalog = load_catalog(catalog_path) if catalog_path else default_catalog()
    with Resolver(settings_of(ctx)) as resolver:
        record = resolver.resolve(target)
    plan = plan_environment(record, catalog)
    if as_json:
        render.print_json(plan.to_dict())
    elif plan.image is None and plan.declared is None:
        render.echo(no_environment_note(record))
    else:
        _render(plan)


def _render(plan: EnvironmentPlan) -> None:
    from rich.table import Table  # noqa: PLC0415 - rich only when a table is drawn

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")

    def row(label: str, value: object) -> None:
        if value not in (None, "", ()):
            table.add_row(label, render.markup(value))

    row("Record", f"{plan.recid}  {plan.title}")
    row("Experiment", ", ".join(plan.experiments))
    row("Year", ", ".join(plan.years))
    declared = plan.declared
    if declared:
        row("Release", declared.release)
        row("Global tag", declared.global_tag)
        for i, named in enumerate(declared.container_images):
            row("Record images" if i == 0 else "", named.name)
    image = plan.image
    if image:
        row("Image", f"{image.name}  ({image.tag})")
        row("Matched by", plan.match)
        row("Purpose", image.purpose)
        row("Base", image.base_ref or f"{image.base}  [digest not yet resolved]")
        row("CVMFS", ", ".join(f"/cvmfs/{r}" for r in plan.cvmfs) or "none needed")
        row("Build", f"images/build.sh {image.name}")
        row("Run", plan.run_command)
        row("Also", ", ".join(plan.alternatives))
    else:
        row("Image", "none in the catalog")
    for note in plan.notes:
        row("Note", note)
    render.stdout_console().print(table)
