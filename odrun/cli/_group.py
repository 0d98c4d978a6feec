"""The ``odrun`` command line: parse, call one library function, render.

All errors end up in :func:`main`, which maps them to one-line messages and
exit codes (table in ``odrun --help`` and :mod:`odrun.errors`).
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ._version import __version__
from .errors import EXIT_CODES, EXIT_INTERRUPTED, OdrunError, PartialError
from .redact import forget_secrets

if TYPE_CHECKING:
    from .settings import Settings

# Start-up cost matters (``odrun --version`` <= 80 ms): this module imports only
# click and odrun.errors. Rendering (rich), records (httpx) and workflows
# (jsonschema, yaml) are imported inside the commands that use them, and the
# command modules below are imported only when their command runs
# (tests/test_startup.py guards both).

F = TypeVar("F", bound=Callable[..., Any])

EXIT_TABLE = "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES)
MAIN_HELP = f"""Re-run CERN Open Data analyses: resolve, fetch, run, verify, cite.

TARGET is a record reference: a DOI (10.7483/OPENDATA.CMS.A342.9982,
doi:..., https://doi.org/...), a recid (5500, cms-5500) or a record URL
(https://opendata.cern.ch/record/5500); or, as in cernopendata-client,
--recid N or --doi DOI.

\b
Examples:
  odrun run workflows/dimuon-demo --verify
  odrun info 10.7483/OPENDATA.CMS.A342.9982
  odrun fetch 5500 --dest ./h4l --jobs 8
  odrun --portal file://workflows/mirror info 1
  odrun files 5500 --protocol https --filter-name '*.py'
  odrun cite 5500 --format bibtex

\b
Environment: ODRUN_PORTAL_URL, ODRUN_CACHE_DIR, ODRUN_OFFLINE, ODRUN_TIMEOUT,
ODRUN_RETRIES, ODRUN_PROTOCOL_MAP, ODRUN_INDEX_FAILURE_TTL, ODRUN_CONFIG (TOML
config file).

\b
Exit codes:
{EXIT_TABLE}
"""


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Store a global option wherever it is given (before or after the command)."""
    if value is not None and param.name:
        ctx.find_root().ensure_object(dict)[param.name] = value


def global_options(func: F) -> F:
    for decorator in reversed(
        (
            click.option(
                "--portal",
                "portal_url",
                metavar="URL",
                expose_value=False,
                callback=_remember,
                help="Portal URL or file://DIR mirror [ODRUN_PORTAL_URL].",
            ),
            click.option(
                "--offline",
                is_flag=True,
                default=None,
                expose_value=False,
                callback=_remember,
                help="Use only cached metadata and mirrors [ODRUN_OFFLINE].",
            ),
            click.option(
                "--refresh",
                is_flag=True,
                default=None,
                expose_value=False,
                callback=_remember,
                help="Ask the portal again even if cached metadata is fresh.",
            ),
            click.option(
                "--cache-dir",
                type=click.Path(file_okay=False, path_type=Path),
                expose_value=False,
                callback=_remember,
                help="Cache folder [ODRUN_CACHE_DIR].",
            ),
        )
    ):
        func = decorator(func)
    return func


#: commands defined outside this module: name -> (module, first paragraph of its help).
#: ``odrun --help`` lists them from here without importing their modules;
#: tests/test_startup.py checks this table against the commands themselves.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "appliance": (
        "odrun.cli_appliance",
        "The odrun appliance: a VM with CVMFS, podman and odrun (Vagrantfile, cloud-init).",
    ),
    "doctor": ("odrun.cli_appliance", "Check this machine for odrun, and say what to fix."),
    "fetch": (
        "odrun.cli_data",
        "Download a record's files, verified against size and checksum, via the shared cache.",
    ),
    "mirror": (
        "odrun.cli_data",
        "Write records (and with --with-files their data) to a folder usable as --portal file://DIR.",
    ),
    "verify-files": (
        "odrun.cli_data",
        "Check files in DIRECTORY against the record's sizes and checksums (streaming).",
    ),
    "cache": ("odrun.cli_data", "Inspect and maintain the shared file cache (ODRUN_CACHE_DIR)."),
    "env": (
        "odrun.cli_env",
        "Show the environment a record needs and which catalog image provides it.",
    ),
    "submit": (
        "odrun.cli_reana",
        "Run an analysis on a REANA cluster: validate, create, upload, start (and follow).",
    ),
    "status": ("odrun.cli_reana", "Show a REANA workflow's status and job progress."),
    "logs": ("odrun.cli_reana", "Print a REANA workflow's logs: the engine's, then each step's."),
    "download": (
        "odrun.cli_reana",
        "Download a REANA workflow's declared outputs (and record their checksums).",
    ),
    "stop": ("odrun.cli_reana", "Stop a running REANA workflow."),
    "run": (
        "odrun.cli_run",
        "Run a declared analysis: reana.yaml (serial, snakemake) and/or odrun.yaml.",
    ),
    "rerun": (
        "odrun.cli_run",
        "Run again the analysis a recorded run (its run.json) ran, in a new run folder.",
    ),
    "validate": (
        "odrun.cli_run",
        "Check an analysis without running it: schemas, parameters, inputs, image pins.",
    ),
    "verify": (
        "odrun.cli_run",
        "Check a run's outputs against odrun.yaml's expectations (exit 10 if any fails).",
    ),
}


class PipeClosed(Exception):  # noqa: N818 - not an error: the reader went away
    """stdout's reader closed the pipe (``odrun files X | head -1``): end quietly, exit 0."""


class LazyGroup(click.Group):
    """A group whose commands in :data:`LAZY_COMMANDS` load their module on first use."""

    def invoke(self, ctx: click.Context) -> Any:
        # click turns EPIPE into exit 1 (a bug's code here); catch it before click does
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise PipeClosed from None
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            # the module registers its commands on `cli` when imported
            importlib.import_module(LAZY_COMMANDS[cmd_name][0])
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, but lists not-yet-loaded commands from their summary in the table."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        rows = []
        for name in names:
            cmd = self.commands.get(name)
            if cmd is not None:
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                summary = LAZY_COMMANDS[name][1]
                rows.append((name, click.utils.make_default_short_help(summary, limit).strip()))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup, help=MAIN_HELP, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="odrun")
@global_options
def cli() -> None:
    pass


def settings_of(ctx: click.Context) -> Settings:
    from .settings import Settings  # noqa: PLC0415 - lazy (start-up time)

    return Settings.load(ctx.find_root().ensure_object(dict))


def record_target(func: F) -> F:
    """TARGET, or cernopendata-client's ``--recid N`` / ``--doi D`` (exactly one of the three).

    Replaces ``@click.argument("target")``: the command still gets one ``target`` string.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, recid: str | None, doi: str | None, **kwargs: Any) -> Any:
        kwargs["target"] = pick_target(kwargs.get("target"), recid, doi)
        return func(*args, **kwargs)

    wrapped: Any = click.option(
        "--doi", metavar="DOI", help="The record with this DOI (cernopendata-client's --doi)."
    )(wrapper)
    wrapped = click.option(
        "--recid", metavar="N", help="The record with this id (cernopendata-client's --recid)."
    )(wrapped)
    return click.argument("target", required=False)(wrapped)  # type: ignore[no-any-return]


def pick_target(target: str | None, recid: str | None, doi: str | None) -> str:
    """The one record reference given as TARGET, ``--recid`` or ``--doi`` (a UsageError else)."""
    from .errors import UsageError  # noqa: PLC0415 - lazy (start-up time)

    given = [v for v in (target, recid, doi) if v is not None]
    if len(given) != 1:
        raise UsageError(
            ("Missing argument 'TARGET'" if not given else "more than one record given")
            + ": expected exactly one of TARGET, --recid N or --doi DOI",
            hint="e.g. odrun info 5500, odrun info --recid 5500 or "
            "odrun info --doi 10.7483/OPENDATA.CMS.A342.9982",
        )
    if target is not None:
        return target
    from .records.refs import RecordRef, parse_reference  # noqa: PLC0415

    def parse(option: str, text: str) -> RecordRef:
        try:
            return parse_reference(text)
        except UsageError as exc:
            raise type(exc)(f"{option} {text!r}: {exc}", hint=exc.hint) from None

    if recid is not None:
        ref = parse("--recid", recid)
        if ref.kind != "recid":
            raise UsageError(
                f"--recid {recid!r}: expected a record id such as 5500 or cms-5500",
                hint="give a DOI with --doi",
            )
        return ref.value
    assert doi is not None
    ref = parse("--doi", doi if ":" in doi or doi.startswith("10.") else f"doi:{doi}")
    if ref.kind != "doi":
        raise UsageError(
            f"--doi {doi!r}: expected a DOI such as 10.7483/OPENDATA.CMS.A342.9982",
            hint="give a record id with --recid",
        )
    return str(ref)


#: cernopendata-client's protocol names, accepted with the same meaning as odrun's
PROTOCOL_ALIASES = {"xrootd": "root", "http": "https"}


def protocol_option(choices: tuple[str, ...], **kwargs: Any) -> Callable[[F], F]:
    """``--protocol`` with ``choices`` plus cernopendata-client's ``xrootd`` and ``http``."""
    aliases = tuple(a for a, real in PROTOCOL_ALIASES.items() if real in choices)

    def canonical(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        return None if value is None else PROTOCOL_ALIASES.get(value, value)

    help_text = kwargs.pop("help", "")
    help_text = (help_text + " " if help_text else "") + "xrootd and http (cernopendata-client's "
    help_text += "names) mean root and https."
    return click.option(
        "--protocol",
        type=click.Choice([*choices, *aliases]),
        callback=canonical,
        help=help_text,
        **kwargs,
    )


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def filter_options(func: F) -> F:
    func = click.option(
        "--filter-range",
        "ranges",
        multiple=True,
        metavar="A-B",
        help="Keep files A..B (1-based, inclusive; comma-separated or repeated).",
    )(func)
    func = click.option(
        "--filter-regexp", "regexp", metavar="RE", help="Keep files whose name (path) matches RE."
    )(func)
    return click.option(
        "--filter-name",
        "names",
        multiple=True,
        metavar="GLOB",
        help="Keep files whose name matches GLOB (repeatable).",
    )(func)


@cli.command()
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
    from . import render  # noqa: PLC0415 - lazy (start-up time)
    from .records import Resolver  # noqa: PLC0415

    with Resolver(settings_of(ctx)) as resolver:
        record = resolver.resolve(target)
    if as_json:
        render.print_json(record.to_dict())
    else:
        render.record_info(render.stdout_console(), record)


@cli.command()
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
    from . import render  # noqa: PLC0415 - lazy (start-up time)
    from .records import FileFilter, Resolver  # noqa: PLC0415

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
            render.stderr_console().print(
                f"[yellow]warning:[/] list incomplete: index {render.markup(index.name)} "
                f"unavailable ({render.markup(index.reason)})"
            )
    missing = record.missing_indices
    if missing:
        raise PartialError(
            f"file list of record {record.recid} is incomplete: {len(missing)} of "
            f"{len(record.indices)} file indices could not be read",
            hint="try again later, or --refresh to ask again at once",
        )


@cli.command()
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
    from . import render  # noqa: PLC0415 - lazy (start-up time)
    from .records import Resolver  # noqa: PLC0415
    from .records.cite import cite as make_citation  # noqa: PLC0415

    with Resolver(settings_of(ctx)) as resolver:
        record = resolver.resolve(target, files=False)
    citation = make_citation(record, fmt)  # type: ignore[arg-type]
    if isinstance(citation, dict):
        render.print_json(citation)
    else:
        render.echo(citation, lines=True)


__all__ = ["LAZY_COMMANDS", "cli", "main"]


INTERRUPTED = "interrupted; finished files are kept and partial transfers resume on the next run"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, map every error to a one-line message and an exit code."""
    forget_secrets()  # the tokens of this command only (main runs many times in tests)
    try:
        _run(argv)
    finally:
        forget_secrets()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush must not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - stdout replaced
        pass


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="odrun", standalone_mode=False)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
    except (PipeClosed, BrokenPipeError):
        # the reader of stdout went away: what it read is what it wanted (exit 0, no message)
        _quiet_stdout()
        sys.exit(0)
    except OdrunError as exc:
        _fail(f"{exc.label}: {exc}", exc.exit_code)
    except click.exceptions.Abort:
        _fail(INTERRUPTED, EXIT_INTERRUPTED)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except KeyboardInterrupt:
        _fail(INTERRUPTED, EXIT_INTERRUPTED)
    except Exception as exc:
        from .settings import debug_enabled  # noqa: PLC0415 - lazy (start-up time)

        if debug_enabled():
            raise
        _fail(
            f"unexpected error: {type(exc).__name__}: {exc} "
            "(a bug: set ODRUN_DEBUG=1 for the traceback and report it)",
            1,
        )
    sys.exit(0)


def _fail(message: str, code: int) -> None:
    """The one line every error ends as: tokens redacted, control characters escaped."""
    from . import render  # noqa: PLC0415 - lazy (start-up time)

    render.echo(f"odrun: {message}", err=True)
    sys.exit(code)
