r"""Human-readable rendering for the CLI (rich). Nothing here decides anything.

Everything odrun shows a person passes through here, and :func:`clean` makes it
safe for a terminal: names and messages come from records, servers and files that
anyone can write, so control characters (C0 but tab, DEL, C1) and the bidi
controls U+202A-U+202E, U+2066-U+2069 are shown as escapes (``\x1b``, ``\u202e``),
never sent raw; access tokens (:mod:`odrun.redact`) are never shown at all.
Plain lines go through :func:`echo`; rich output through the consoles
:func:`stdout_console` / :func:`stderr_console` return, which clean every text
segment they write (tables, progress bars, messages); values put into rich markup
are escaped (:func:`markup`) or given as :class:`rich.text.Text`, so a file named
``[red]x[/red]`` or ``[link=...]`` is shown as it is. ``--json`` output
(:func:`print_json`) is written as it is, but for tokens: JSON escapes control
characters itself.

rich costs about 0.1 s to import, in every process that loads it: it is imported only
when something is drawn for a terminal (:func:`on_terminal`). Output into a pipe or a
file (``--json``, plain lines, :func:`show_record` and :func:`warning` off a terminal)
is written without it, the same text rich would write there.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, TextIO

import click

from .redact import redact
from .settings import environment_value

if TYPE_CHECKING:
    from rich.console import Console

    from .records.model import Record
    from .workflow.expect import Check


_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
_UNSAFE = (*range(0x20), 0x7F, *range(0x80, 0xA0))
#: one-line texts: every C0 control but tab escaped (a newline would forge a line)
_ONE_LINE = {c: f"\\x{c:02x}" for c in _UNSAFE if c != 0x09} | {c: f"\\u{c:04x}" for c in _BIDI}
#: multi-line texts (logs, citations): newlines kept too
_LINES = {c: v for c, v in _ONE_LINE.items() if c != 0x0A}


def clean(text: str, *, lines: bool = False) -> str:
    """``text`` safe for a terminal: control and bidi characters shown as escapes.

    Tabs are kept; newlines too with ``lines=True`` (for multi-line texts such as
    logs), else shown as ``\\x0a``.
    """
    return text.translate(_LINES if lines else _ONE_LINE)


def markup(value: object) -> str:
    """``value`` for an f-string of rich markup: cleaned, its ``[`` markup escaped."""
    from rich.markup import escape  # noqa: PLC0415 - rich only when markup is drawn

    return escape(clean(str(value)))


def echo(message: object = "", *, err: bool = False, nl: bool = True, lines: bool = False) -> None:
    """click.echo, tokens redacted and cleaned: the only way the CLI prints a plain line."""
    try:
        click.echo(clean(redact(str(message)), lines=lines), err=err, nl=nl)
    except BrokenPipeError:
        reader_gone(sys.stderr if err else sys.stdout)


def reader_gone(stream: IO[str]) -> None:
    """``stream``'s reader closed the pipe (``| head -1``): drop what follows, quietly.

    The stream is pointed at /dev/null, so the command goes on to its own end and
    exit code (a run that failed still exits 7; one that succeeded 0), never a
    ``BrokenPipeError`` or exit 1.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not a real file
        pass


@functools.cache
def _safe_console_class() -> type[Console]:
    """:class:`SafeConsole`, made on first use: rich is imported only then."""
    from rich.console import Console  # noqa: PLC0415 - rich only when a console is made
    from rich.segment import Segment  # noqa: PLC0415

    class SafeConsole(Console):
        """A rich Console that cleans every text segment before writing it.

        rich's own control codes (styles, cursor moves of live progress bars) are not
        text segments and pass unchanged; control characters inside texts never do.
        """

        def on_broken_pipe(self) -> None:
            """The reader went away: rich would exit 1 (a bug's code); drop the rest instead."""
            self.quiet = True
            reader_gone(self.file)

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            text = super()._render_buffer(
                segment
                if segment.control
                else Segment(clean(redact(segment.text), lines=True), *segment[1:])
                for segment in buffer
            )
            if not self.is_terminal:  # a pipe or file: no table padding at line ends
                text = _TRAILING_SPACES.sub("", text)
            return text

    return SafeConsole


def __getattr__(name: str) -> Any:
    """``render.SafeConsole``: the class, made (and rich imported) when first asked for."""
    if name == "SafeConsole":
        return _safe_console_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def on_terminal(stream: TextIO) -> bool:
    """Would a console on ``stream`` draw for a terminal? rich's own answer, without
    importing rich when it cannot be yes: ``stream`` is no tty and neither of rich's
    switches (``FORCE_COLOR``, ``TTY_COMPATIBLE``) is set."""
    try:
        tty = stream.isatty()
    except (ValueError, AttributeError, OSError):  # closed, or not a real stream
        tty = False
    if not tty and environment_value("TTY_COMPATIBLE", "FORCE_COLOR") is None:
        return False
    return bool(_console(stderr=stream is sys.stderr, file=stream).is_terminal)


def warning(text: str, *, err: bool = True) -> None:
    """``warning: TEXT``, yellow on a terminal; ``text`` is shown as it is (no markup)."""
    stream = sys.stderr if err else sys.stdout
    if on_terminal(stream):
        _console(stderr=err).print(f"[yellow]warning:[/] {markup(text)}", emoji=False)
    else:
        echo(f"warning: {text}", err=err)


_TRAILING_SPACES = re.compile(r"[ ]+(?=\n|\Z)")
#: the width of output that is not a terminal: lines are never wrapped for it
PIPE_WIDTH = 1 << 20


def _console(*, stderr: bool, file: IO[str] | None = None) -> Console:
    """A SafeConsole; through a pipe or into a file as wide as its longest line.

    rich wraps at 80 columns (or $COLUMNS) when not on a terminal; a script
    reading ``odrun info X | grep Title`` wants each value on its own line, whole.
    """
    console = _safe_console_class()(stderr=stderr, file=file, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    return console


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
    """``data`` as JSON, exactly (JSON escapes control characters); tokens redacted."""
    out = stream or sys.stdout
    try:
        out.write(redact(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
        out.flush()
    except BrokenPipeError:
        reader_gone(out)


def stdout_console() -> Console:
    return _console(stderr=False)


def stderr_console() -> Console:
    return _console(stderr=True)


def record_rows(record: Record) -> list[tuple[str, str]]:
    """(label, value) of each line :func:`record_info` shows; values cleaned, empty ones out."""
    rows: list[tuple[str, str]] = []

    def row(label: str, value: object) -> None:
        if value not in (None, "", ()):
            rows.append((label, clean(str(value))))

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
    return rows


def record_notes(record: Record) -> list[tuple[str, str]]:
    """(kind, text) of the warnings and notes shown under a record's table."""
    notes = [
        ("warning", f"file list incomplete: index {index.name} could not be read ({index.reason})")
        for index in record.missing_indices
    ]
    return notes + [("note", note) for note in record.notes]


def record_info(console: Console, record: Record) -> None:
    """A record as a table on ``console`` (rich), its warnings and notes under it."""
    from rich.table import Table  # noqa: PLC0415 - rich only when drawn
    from rich.text import Text  # noqa: PLC0415

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in record_rows(record):
        table.add_row(label, Text(value))  # Text: never read as markup
    console.print(table)
    for kind, text in record_notes(record):  # Text: a note is shown as it is, never markup
        console.print(Text.assemble((f"{kind}:", "yellow"), " ", clean(text)), emoji=False)


def show_record(record: Record) -> None:
    """:func:`record_info` on stdout; into a pipe or a file the same lines, without rich."""
    rows = record_rows(record)
    notes = [(kind, clean(text)) for kind, text in record_notes(record)]
    texts = [text for _, text in rows + notes]
    # rich expands tabs by terminal cells (a wide character is two) and folds lines at
    # PIPE_WIDTH: for such rare texts rich itself draws them
    if on_terminal(sys.stdout) or any("\t" in t or len(t) > PIPE_WIDTH // 2 for t in texts):
        record_info(stdout_console(), record)
        return
    width = max((len(label) for label, _ in rows), default=0)
    lines = [f"{label:<{width}}  {value}".rstrip(" ") for label, value in rows]
    lines += [f"{kind}: {text}".rstrip(" ") for kind, text in notes]
    try:
        sys.stdout.write(redact("".join(line + "\n" for line in lines)))
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone(sys.stdout)


def file_lines(uris: Iterable[str], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    try:
        for uri in uris:
            out.write(clean(uri) + "\n")
        out.flush()
    except BrokenPipeError:
        reader_gone(out)


def output_lines(outputs: Iterable[dict[str, Any]]) -> None:
    """A run's declared outputs, one line each: size and checksum, or MISSING."""
    for out in outputs:
        state = "MISSING" if out.get("missing") else f"{out['size']} B  {out['checksum']}"
        echo(f"  output {out['path']}: {state}")


def check_lines(checks: Iterable[Check]) -> None:
    """Expectation checks, one line each: ok or FAIL, name, detail."""
    for check in checks:
        echo(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
