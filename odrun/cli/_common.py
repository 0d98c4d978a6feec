"""What the command modules share: global options, TARGET/--recid/--doi, --protocol, --json,
the file filters, and the settings of a command's context.

The lowest layer of :mod:`odrun.cli`: importing it loads click only (start-up time; settings
and records are imported inside the functions that need them), never the group or a command
module; command modules import from here and nowhere else in the CLI
(tests/test_architecture.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from odrun.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


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


def settings_of(ctx: click.Context) -> Settings:
    from odrun.settings import Settings  # noqa: PLC0415 - lazy (start-up time)

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
    from odrun.errors import UsageError  # noqa: PLC0415 - lazy (start-up time)

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
    from odrun.records.refs import RecordRef, parse_reference  # noqa: PLC0415

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


def repo_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated and/or comma-separated repository names, in order, once each."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return tuple(dict.fromkeys(names))
