"""Human-readable rendering for the CLI (rich). Nothing here decides anything."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

import click
from rich.console import Console
from rich.table import Table

from .records.model import Record

if TYPE_CHECKING:
    from .workflow.expect import Check


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"  # pragma: no cover


def print_json(data: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def record_info(console: Console, record: Record) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")

    def row(label: str, value: object) -> None:
        if value not in (None, "", ()):
            table.add_row(label, str(value))

    row("Title", record.title)
    row("Record", f"{record.recid}  {record.record_url}")
    row("DOI", record.doi or "(none)")
    row("Experiment", record.experiment)
    row("Type", record.type)
    energy = " ".join(x for x in (record.collision_energy, record.collision_type) if x)
    row("Collisions", energy)
    row("Year", ", ".join(record.years))
    row("Published", record.date_published)
    row("License", record.license)
    files = f"{record.file_count} ({human_size(record.total_size)})"
    if not record.files_complete:
        files += "  [INCOMPLETE]"
    row("Files", files)
    if record.declared_file_count is not None and (
        record.declared_file_count != record.file_count or not record.files_complete
    ):
        row("Declared", f"{record.declared_file_count} files ({human_size(record.declared_size)})")
    if record.indices:
        available = sum(1 for index in record.indices if index.available)
        row("File indices", f"{available} of {len(record.indices)} expanded")
    env = record.environment
    if env:
        row("Release", env.release)
        row("Global tag", env.global_tag)
        for i, image in enumerate(env.container_images):
            row("Images" if i == 0 else "", image.name)
        if env.recid:
            row("Environment", f"see record {env.recid}")
    row("Source code", record.source_code_url)
    console.print(table)
    for index in record.missing_indices:
        console.print(
            f"[yellow]warning:[/] file list incomplete: index {index.name} "
            f"could not be read ({index.reason})"
        )
    for note in record.notes:
        console.print(f"[yellow]note:[/] {note}")


def file_lines(uris: Iterable[str], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    for uri in uris:
        out.write(uri + "\n")


def output_lines(outputs: Iterable[dict[str, Any]]) -> None:
    """A run's declared outputs, one line each: size and checksum, or MISSING."""
    for out in outputs:
        state = "MISSING" if out.get("missing") else f"{out['size']} B  {out['checksum']}"
        click.echo(f"  output {out['path']}: {state}")


def check_lines(checks: Iterable[Check]) -> None:
    """Expectation checks, one line each: ok or FAIL, name, detail."""
    for check in checks:
        click.echo(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
