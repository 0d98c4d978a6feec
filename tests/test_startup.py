"""Start-up stays cheap: ``odrun --version`` / ``--help`` import no heavy module.

Heavy modules (httpx, rich, jsonschema, yaml, odrun.workflow) are imported inside
the commands that use them, and command modules only when their command runs
(``odrun.cli.LAZY_COMMANDS``). A fresh process lists what it really imported
(``sys.modules``); benchmarks/startup.py measures the time.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from odrun import cli as cli_module

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("httpx", "rich", "jsonschema", "yaml", "odrun.workflow", "odrun.records")
#: command modules, loaded only when one of their commands runs
COMMAND_MODULES = "odrun.cli_"


#: runs ``odrun ARGS`` as ``python -m odrun`` does, then prints every module it imported
PROBE = """
import runpy, sys
sys.argv = ["odrun", *sys.argv[1:]]
try:
    runpy.run_module("odrun", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stdout = sys.__stdout__
print("\\nMODULES", code, " ".join(sorted(sys.modules)))
"""


def imported_modules(*args: str) -> set[str]:
    """Names of every module a fresh ``python -m odrun ARGS`` imports."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    last = proc.stdout.rsplit("\nMODULES ", 1)[-1].split()
    assert last[:1] == ["0"], proc.stdout[-2000:] + proc.stderr[-2000:]
    names = set(last[1:])
    assert "odrun" in names, "module list not understood"
    return names


def heavy_in(names: set[str]) -> list[str]:
    return sorted(
        n
        for n in names
        if n.startswith(COMMAND_MODULES) or any(n == h or n.startswith(h + ".") for h in HEAVY)
    )


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_import_no_heavy_module(args: tuple[str, ...]) -> None:
    assert heavy_in(imported_modules(*args)) == []


def test_the_guard_sees_a_heavy_import() -> None:
    """Negative control: a command that needs rich and records is seen importing them."""
    found = heavy_in(imported_modules("validate", "--help"))
    assert "odrun.cli_run" in found


def test_lazy_table_matches_the_commands() -> None:
    """Every command of every command module is in LAZY_COMMANDS, with its real summary."""
    group = cli_module.cli
    for module in sorted({m for m, _ in cli_module.LAZY_COMMANDS.values()}):
        importlib.import_module(module)
    defined_here = {"info", "files", "cite"}
    assert set(group.commands) == set(cli_module.LAZY_COMMANDS) | defined_here
    for name, (module, summary) in cli_module.LAZY_COMMANDS.items():
        command = group.commands[name]
        assert command.callback is not None
        assert command.callback.__module__ == module, name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert summary == first, f"LAZY_COMMANDS[{name!r}] summary is stale"
        assert not command.short_help
        assert not command.hidden
        assert not command.deprecated


def test_help_lists_every_command_like_click() -> None:
    """The lazy listing equals click's own listing of the loaded commands."""
    for module in sorted({m for m, _ in cli_module.LAZY_COMMANDS.values()}):
        importlib.import_module(module)
    group = cli_module.cli
    ctx = click.Context(group, info_name="odrun")
    lazy = click.HelpFormatter(width=80)
    group.format_commands(ctx, lazy)
    plain = click.HelpFormatter(width=80)
    click.Group.format_commands(group, ctx, plain)
    assert lazy.getvalue() == plain.getvalue()
    assert "verify-files" in lazy.getvalue()


#: calls the console script's entry point (``[project.scripts] odrun``) as the script does
ENTRY_PROBE = """
import importlib, sys, tomllib
target = tomllib.load(open(sys.argv[1], "rb"))["project"]["scripts"]["odrun"]
module, _, func = target.partition(":")
sys.argv = ["odrun", *sys.argv[2:]]
try:
    getattr(importlib.import_module(module), func)()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\nMODULES", code, " ".join(sorted(sys.modules)))
"""


@pytest.mark.parametrize("how", ["python -m odrun", "console script"])
def test_version_imports_not_even_click(how: str) -> None:
    """``odrun --version`` answers before the CLI (click) is imported: its floor is Python's."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = (
        [sys.executable, "-c", PROBE, "--version"]
        if how == "python -m odrun"
        else [sys.executable, "-c", ENTRY_PROBE, str(REPO / "pyproject.toml"), "--version"]
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    out, _, modules = proc.stdout.rpartition("\nMODULES ")
    code, *names = modules.split()
    assert code == "0", proc.stderr[-2000:]
    from odrun._version import __version__

    assert out.strip() == f"odrun, version {__version__}"  # what click's version option says
    assert "click" not in names
    assert "odrun.cli" not in names


def test_the_version_fast_path_is_only_for_version_alone() -> None:
    """``--version`` with anything else goes through the CLI as before."""
    names = imported_modules("--version", "--help")
    assert "click" in names
    assert "odrun.cli" in names


def test_the_cli_process_does_not_import_trio() -> None:
    """odrun's HTTP clients are synchronous: the CLI never pays for httpcore's trio import."""
    # a command that makes an HTTP client imports httpx after main() started
    client = 'import httpx\nhttpx.Client()\nprint("\\nTRIO", sys.modules.get("trio") is not None)\n'
    probe = PROBE.replace('print("\\nMODULES"', client + 'print("\\nMODULES"')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", probe, "--help"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    names = proc.stdout.rsplit("\nMODULES ", 1)[-1].split()
    assert "httpx" in names, proc.stderr[-2000:]
    assert "\nTRIO False\n" in proc.stdout  # not loaded (a None entry is not a module)
