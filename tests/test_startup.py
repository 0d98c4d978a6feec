"""Start-up stays cheap: ``odrun --version`` / ``--help`` import no heavy module.

Heavy modules (httpx, rich, jsonschema, yaml, odrun.workflow) are imported inside
the commands that use them, and command modules only when their command runs
(``odrun.cli.LAZY_COMMANDS``). A fresh process lists what it really imported
(``sys.modules``); benchmarks/startup.py measures the time.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from odrun import cli as cli_module

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("httpx", "rich", "jsonschema", "yaml", "odrun.workflow", "odrun.records")
#: the CLI modules ``--version`` may load; every other odrun.cli.* is a command module,
#: loaded only when one of its commands runs
CLI_CORE = {"odrun.cli", "odrun.cli._group", "odrun.cli._common"}


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
        if (n.startswith("odrun.cli.") and n not in CLI_CORE)
        or any(n == h or n.startswith(h + ".") for h in HEAVY)
    )


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_import_no_heavy_module(args: tuple[str, ...]) -> None:
    assert heavy_in(imported_modules(*args)) == []


def test_the_guard_sees_a_heavy_import() -> None:
    """Negative control: a command that needs rich and records is seen importing them."""
    found = heavy_in(imported_modules("validate", "--help"))
    assert "odrun.cli.run" in found
    assert "odrun.cli.data" not in found  # only the module of the command that runs


def command_modules() -> list[str]:
    """Every module of the odrun.cli package but the group and the shared helpers."""
    found = [f"odrun.cli.{m.name}" for m in pkgutil.iter_modules(cli_module.__path__)]
    return sorted(set(found) - CLI_CORE)


def top_level_commands(module: str) -> set[str]:
    """``module:attribute`` of each click command defined in ``module`` that is not a
    subcommand of one of its groups (those are what the group's table must name)."""
    loaded = importlib.import_module(module)
    mine = {
        attr: value
        for attr, value in vars(loaded).items()
        if isinstance(value, click.Command) and getattr(value.callback, "__module__", "") == module
    }
    nested = {
        id(sub)
        for value in mine.values()
        if isinstance(value, click.Group)
        for sub in value.commands.values()
    }
    return {f"{module}:{attr}" for attr, value in mine.items() if id(value) not in nested}


def test_lazy_table_matches_the_commands() -> None:
    """Every command of every command module is in LAZY_COMMANDS, with its real summary."""
    group = cli_module.cli
    ctx = click.Context(group, info_name="odrun")
    defined = set().union(*(top_level_commands(m) for m in command_modules()))
    assert len(defined) >= 19
    assert defined == {target for target, _ in cli_module.LAZY_COMMANDS.values()}
    for name, (target, summary) in cli_module.LAZY_COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None
        assert command.callback is not None
        assert command.callback.__module__ == target.partition(":")[0], name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert summary == first, f"LAZY_COMMANDS[{name!r}] summary is stale"
        assert not command.short_help
        assert not command.hidden
        assert not command.deprecated


def test_help_lists_every_command_like_click() -> None:
    """The lazy listing equals click's own listing of the loaded commands."""
    group = cli_module.cli
    ctx = click.Context(group, info_name="odrun")
    for name in cli_module.LAZY_COMMANDS:
        group.get_command(ctx, name)
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


# --- the fixed cost of a fetch (issue 14): rich only when something is drawn on a terminal

#: "tomllib": the config file's parser, needed only when there is a config file
RICH_FREE = ("rich", "httpx", "jsonschema", "yaml", "odrun.mirror", "odrun.workflow", "tomllib")


def _mirror(tmp_path: Path) -> Path:
    """A file:// mirror holding one small record whose one file is in the mirror."""
    import json
    import zlib

    mirror = tmp_path / "mirror"
    (mirror / "files").mkdir(parents=True)
    data = b"odrun start-up probe\n" * 50
    (mirror / "files" / "small.txt").write_bytes(data)
    entry = {"uri": "file:files/small.txt", "size": len(data)}
    entry["checksum"] = f"adler32:{zlib.adler32(data):08x}"
    meta = {
        "recid": "990014",
        "title": "start-up probe",
        "experiment": ["CMS"],
        "type": {"primary": "Dataset", "secondary": ["Derived"]},
        "files": [entry],
    }
    (mirror / "990014.json").write_text(json.dumps({"id": "990014", "metadata": meta}))
    return mirror


def modules_of_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """Modules of a fresh ``odrun --portal file://MIRROR ARGS`` (stdout and stderr pipes)."""
    mirror = _mirror(tmp_path) if not (tmp_path / "mirror").exists() else tmp_path / "mirror"
    base = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    base |= {"PYTHONPATH": str(REPO), "ODRUN_CACHE_DIR": str(tmp_path / "cache")}
    base |= {"XDG_CONFIG_HOME": str(tmp_path / "config")}  # no config file but ODRUN_CONFIG
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "--portal", f"file://{mirror}", *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    last = proc.stdout.rsplit("\nMODULES ", 1)[-1].split()
    assert last[:1] == ["0"], proc.stdout[-2000:] + proc.stderr[-2000:]
    return set(last[1:])


def found(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize(
    "args",
    [
        ("fetch", "990014", "--dest", "out", "--json"),
        ("fetch", "990014", "--dest", "out"),  # plain lines into a pipe
        ("fetch", "990014", "--dest", "out", "--dry-run"),
        ("info", "990014", "--json"),
        ("info", "990014"),  # into a pipe: the same lines, drawn without rich
        ("files", "990014"),
        ("files", "990014", "--json"),
        ("verify-files", "out", "990014", "--json"),
    ],
)
def test_commands_into_a_pipe_import_no_rich(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Output that is not a terminal needs neither rich nor the mirror writer (0.2 s)."""
    if args[0] == "verify-files":
        modules_of_run(tmp_path, "fetch", "990014", "--dest", "out", "--json")
    assert found(modules_of_run(tmp_path, *args), RICH_FREE) == []


@pytest.mark.parametrize("variable", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_a_forced_terminal_still_gets_rich(tmp_path: Path, variable: str) -> None:
    """Negative control: rich's own switches still make a terminal, and then rich draws."""
    assert "rich" in modules_of_run(tmp_path, "fetch", "990014", "--dest", "o", env={variable: "1"})
    assert "rich" in modules_of_run(tmp_path, "info", "990014", env={variable: "1"})


def test_a_config_file_is_still_read(tmp_path: Path) -> None:
    """Negative control of the tomllib guard: with a config file, its parser loads."""
    config = tmp_path / "config.toml"
    config.write_text("timeout = 12.5\n")
    names = modules_of_run(tmp_path, "info", "990014", "--json", env={"ODRUN_CONFIG": str(config)})
    assert "tomllib" in names


def _rich_lines(record: object) -> str:
    """What :func:`odrun.render.record_info` draws with rich into a pipe."""
    import io

    from odrun import render

    out = io.StringIO()
    render.record_info(render._console(stderr=False, file=out), record)  # type: ignore[arg-type]
    return out.getvalue()


def _plain_lines(record: object, capsys: pytest.CaptureFixture[str]) -> str:
    from odrun import render

    capsys.readouterr()
    render.show_record(record)  # type: ignore[arg-type]
    return capsys.readouterr().out


@pytest.mark.parametrize("recid", ["3005", "133", "11537", "221", "1102", "258", "93946", "718"])
def test_info_into_a_pipe_is_what_rich_draws(
    recid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without rich, ``odrun info | cat`` prints the very text rich's table printed."""
    from odrun.records.parse import parse_record

    from fuzzing import index_loader, real_record

    record = parse_record(real_record(recid), load_index=index_loader(recid))
    assert _plain_lines(record, capsys) == _rich_lines(record)


@settings(max_examples=60, deadline=None)
@example(title="a\tb \u4e00\tc ", notes=["x\t\u4e00\ty", ":smile: [b]"], images=["i\t"])
@example(title=" \u0301e\u200b:smile:  ", notes=[" "], images=["\u4e00\u4e00 "])
@example(title="0", notes=["\\", "a\\", "\\[b]"], images=[])  # rich doubled a last backslash
@given(
    title=st.text(min_size=1, max_size=40),
    notes=st.lists(st.text(max_size=30), max_size=2),
    images=st.lists(st.text(min_size=1, max_size=20), max_size=2),
)
def test_any_record_into_a_pipe_is_what_rich_draws(
    title: str, notes: list[str], images: list[str]
) -> None:
    """Tabs, wide and combining characters, spaces at the end, controls, markup: the same."""
    import dataclasses
    import io
    from contextlib import redirect_stdout

    from odrun import render
    from odrun.records.model import ContainerImage, Environment
    from odrun.records.parse import parse_record

    from fuzzing import index_loader, real_record

    base = parse_record(real_record("221"), load_index=index_loader("221"))
    env = Environment(container_images=tuple(ContainerImage(name=i) for i in images))
    record = dataclasses.replace(base, title=title, notes=tuple(notes), environment=env)
    plain = io.StringIO()
    with redirect_stdout(plain):
        render.show_record(record)
    assert plain.getvalue() == _rich_lines(record)


def test_a_cli_process_ends_without_walking_its_heap(tmp_path: Path) -> None:
    """After ``main()`` the collector is frozen (``gc.freeze``): the interpreter's final
    collections do not walk every object again (0.1-0.2 s of a fetch process), while
    every atexit handler, flush and close still runs; the output is whole."""
    mirror = _mirror(tmp_path)
    probe = PROBE.replace(
        'print("\\nMODULES"',
        'import gc\nprint("\\nFROZEN", gc.get_freeze_count())\nprint("\\nMODULES"',
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), ODRUN_CACHE_DIR=str(tmp_path / "cache"))
    args = ["--portal", f"file://{mirror}", "fetch", "990014", "--dest", "out", "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    frozen = int(proc.stdout.rsplit("\nFROZEN ", 1)[-1].split()[0])
    assert frozen > 1000, proc.stderr[-2000:]
    import json

    report = json.loads(proc.stdout.split("\nFROZEN ")[0])
    assert report["downloaded"] == 1
    assert (tmp_path / "out" / "small.txt").read_bytes() == b"odrun start-up probe\n" * 50


def test_the_cli_called_in_a_process_freezes_nothing() -> None:
    """A library user's (or the tests') process that calls ``odrun.cli.main`` keeps its GC."""
    import gc

    before = gc.get_freeze_count()
    with pytest.raises(SystemExit):
        cli_module.main(["--help"])
    assert gc.get_freeze_count() == before


def _module_level_imports(path: Path) -> set[str]:
    """Top-level modules a file imports when it is loaded (not in functions, not TYPE_CHECKING)."""
    import ast

    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path",
    [
        *sorted((REPO / "odrun" / "cli").glob("*.py")),
        *(REPO / "odrun" / n for n in ("render.py", "progress.py")),
    ],
    ids=lambda p: p.name,
)
def test_no_cli_module_imports_rich_when_loaded(path: Path) -> None:
    """rich is imported where something is drawn for a terminal, never by loading a module
    (every command's ``--json`` and its output into a pipe would pay 0.1 s for it)."""
    assert "rich" not in _module_level_imports(path)
