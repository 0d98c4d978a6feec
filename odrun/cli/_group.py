"""The ``odrun`` group: the command table, the lazy loading of commands, and :func:`main`.

All errors end up in :func:`main`, which maps them to one-line messages and
exit codes (table in ``odrun --help`` and :mod:`odrun.errors`).

Adding a command: define it with ``@click.command()`` (or ``@click.group()``) in a module
``odrun/cli/<name>.py`` that imports its helpers from :mod:`odrun.cli._common` only, and add
one row to :data:`LAZY_COMMANDS` here: ``"name": ("odrun.cli.<name>:<function>", "summary")``.
Nothing registers itself on import.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Any

import click

from odrun._version import __version__
from odrun.cli._common import global_options
from odrun.errors import EXIT_CODES, EXIT_INTERRUPTED, OdrunError
from odrun.redact import forget_secrets

# Start-up cost matters (``odrun --version`` <= 80 ms): this module imports only
# click and odrun.errors. Rendering (rich), records (httpx) and workflows
# (jsonschema, yaml) are imported inside the commands that use them, and the
# command modules are imported only when their command runs
# (tests/test_startup.py guards both).

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


#: every command: name -> ("module:attribute" of its click command, first paragraph of its
#: help). ``odrun --help`` lists them from here without importing their modules; a command's
#: module is imported when that command runs. tests/test_startup.py checks this table
#: against the commands themselves.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "diff": (
        "odrun.cli.diff:diff_cmd",
        "What differs between two runs: inputs, environment, parameters, steps, outputs.",
    ),
    "hepdata": (
        "odrun.cli.hepdata:hepdata_cmd",
        "Print a HEPData table, or export it (--json, --csv); INS alone lists its tables.",
    ),
    "report": (
        "odrun.cli.report:report_cmd",
        "Write a run's report: one HTML file that opens offline (no network).",
    ),
    "info": (
        "odrun.cli.records:info",
        "Show a record: title, experiment, DOI, files (indices expanded), environment.",
    ),
    "files": (
        "odrun.cli.records:files",
        "List a record's file locations, one per line (index files expanded).",
    ),
    "cite": (
        "odrun.cli.records:cite",
        "Print a citation for a record (DOI, authors or collaboration, title, year).",
    ),
    "appliance": (
        "odrun.cli.appliance:appliance",
        "The odrun appliance: a VM with CVMFS, podman and odrun (Vagrantfile, cloud-init).",
    ),
    "doctor": ("odrun.cli.doctor:doctor", "Check this machine for odrun, and say what to fix."),
    "fetch": (
        "odrun.cli.data:fetch",
        "Download a record's files, verified against size and checksum, via the shared cache.",
    ),
    "mirror": (
        "odrun.cli.data:mirror",
        "Write records (and with --with-files their data) to a folder usable as --portal file://DIR.",
    ),
    "verify-files": (
        "odrun.cli.data:verify_files_cmd",
        "Check files in DIRECTORY against the record's sizes and checksums (streaming).",
    ),
    "cache": (
        "odrun.cli.data:cache",
        "Inspect and maintain the shared file cache (ODRUN_CACHE_DIR).",
    ),
    "env": (
        "odrun.cli.env:env",
        "Show the environment a record needs and which catalog image provides it.",
    ),
    "submit": (
        "odrun.cli.reana:submit_cmd",
        "Run an analysis on a REANA cluster: validate, create, upload, start (and follow).",
    ),
    "status": ("odrun.cli.reana:status_cmd", "Show a REANA workflow's status and job progress."),
    "logs": (
        "odrun.cli.reana:logs_cmd",
        "Print a REANA workflow's logs: the engine's, then each step's.",
    ),
    "download": (
        "odrun.cli.reana:download_cmd",
        "Download a REANA workflow's declared outputs (and record their checksums).",
    ),
    "stop": ("odrun.cli.reana:stop_cmd", "Stop a running REANA workflow."),
    "run": (
        "odrun.cli.run:run",
        "Run a declared analysis: reana.yaml (serial, snakemake, cwl, yadage) and/or odrun.yaml.",
    ),
    "rerun": (
        "odrun.cli.run:rerun",
        "Run again the analysis a recorded run (its run.json) ran, in a new run folder.",
    ),
    "validate": (
        "odrun.cli.run:validate_cmd",
        "Check an analysis without running it: schemas, parameters, inputs, image pins.",
    ),
    "verify": (
        "odrun.cli.run:verify_cmd",
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
            self.add_command(load_command(cmd_name), cmd_name)
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


def load_command(name: str) -> click.Command:
    """The click command ``name`` of :data:`LAZY_COMMANDS`, its module imported now."""
    module, _, attribute = LAZY_COMMANDS[name][0].partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command), f"{LAZY_COMMANDS[name][0]} is not a click command"
    return command


__all__ = ["LAZY_COMMANDS", "cli", "load_command", "main"]


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
        from odrun.settings import debug_enabled  # noqa: PLC0415 - lazy (start-up time)

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
    from odrun import render  # noqa: PLC0415 - lazy (start-up time)

    render.echo(f"odrun: {message}", err=True)
    sys.exit(code)
