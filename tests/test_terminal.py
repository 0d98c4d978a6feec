"""Names from records never reach the terminal raw: escapes, rich markup, bidi overrides."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.progress import Progress, TextColumn

from odrun import render

from conftest import api_doc

REPO = Path(__file__).resolve().parent.parent

#: what must never be written raw: ESC, CSI (C1), BEL, DEL, CR, bidi overrides and isolates
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")

HOSTILE_NAMES = [
    "clear\x1b[2J\x1b[H.root",  # clear the screen
    "link\x1b]8;;https:evil.example\x07click\x1b]8;;\x07.root",  # OSC 8 hyperlink
    "[red]x[/red][link=https:evil.example]y[/link].root",  # rich markup
    "cod\u202egnp.exe\u2066.root",  # bidi override and isolate
    "c1\x9b31m\x07bell\x7fdel\rreturn.root",  # C1 CSI, BEL, DEL, CR
]
TITLE = "Title \x1b[31mRED\x1b[0m [bold]b[/bold] \u202eabc\x1b]0;pwned\x07"


def forbidden(text: str) -> list[str]:
    return sorted({repr(c) for c in FORBIDDEN.findall(text)})


@pytest.fixture
def hostile_record(fresh_portal, monkeypatch) -> str:
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)
    files = [(f"{fresh_portal.url}/eos/opendata/{name}", b"x") for name in HOSTILE_NAMES]
    doc = api_doc("4242", files)
    doc["metadata"]["title"] = TITLE
    doc["metadata"]["doi"] = "10.1234/\x1b[5mBLINK"
    doc["metadata"]["date_published"] = "2020"
    doc["metadata"]["collaboration"] = {"name": "CMS \u202eevil\x1b[8m"}
    fresh_portal.overrides["4242"] = doc
    return "4242"


@pytest.mark.parametrize(
    "args",
    [
        ("files",),
        ("info",),
        ("cite",),
        ("cite", "--format", "bibtex"),
        ("fetch", "--dest", "{dest}"),
        ("fetch", "--dest", "{dest}", "--dry-run"),
        ("env",),
    ],
)
def test_hostile_names_are_escaped(odrun, hostile_record, tmp_path: Path, args) -> None:
    argv = [a.format(dest=tmp_path / "dest") for a in args]
    res = odrun(argv[0], hostile_record, *argv[1:])
    assert forbidden(res.out) == [], res.out
    assert forbidden(res.err) == [], res.err
    if argv[0] == "info":  # shown, as text: the markup is not interpreted
        assert "\\x1b[31mRED" in res.out
        assert "[bold]b[/bold]" in res.out
    if argv[0] == "files":
        assert "[red]x[/red][link=https:evil.example]y[/link].root" in res.out
        assert "cod\\u202egnp.exe\\u2066.root" in res.out


def test_error_messages_are_escaped(odrun, hostile_record) -> None:
    for target in ("\x1b[2Jnot-a-record\u202e", "doi:10.1/\x1b]0;x\x07", "\x9b31mcms-1"):
        res = odrun("info", target)
        assert res.code != 0
        assert forbidden(res.err) == [], res.err
    res = odrun("info", "\x1bnot-a-record")
    assert res.code == 2
    assert "\\x1bnot-a-record" in res.err
    res = odrun("fetch", hostile_record, "--dest", "/dev/null/x")  # fails naming the files
    assert res.code != 0
    assert forbidden(res.out + res.err) == [], res.err


def test_json_output_stays_exact(odrun, hostile_record) -> None:
    res = odrun("files", hostile_record, "--json")
    assert res.code == 0, res.err
    uris = [f["uri"] for f in res.json()["files"]]
    assert [u.split("/eos/opendata/", 1)[1] for u in uris] == HOSTILE_NAMES
    assert json.loads(res.out)["recid"] == "4242"
    assert "\x1b" not in res.out  # JSON escapes it (\u001b)


def test_rich_consoles_escape_text_but_keep_their_own_styles() -> None:
    out = io.StringIO()
    console = render.SafeConsole(
        file=out, force_terminal=True, color_system="standard", highlight=False
    )
    console.print(f"[bold]{render.markup('[red]x[/red] a' + HOSTILE_NAMES[0])}[/bold]")
    with Progress(TextColumn("{task.description}", markup=False), console=console) as bar:
        bar.add_task(HOSTILE_NAMES[1], total=1)
    text = out.getvalue()
    assert "\x1b[1m" in text  # rich's own bold survives
    assert "[red]x[/red] a" in text
    assert "\x1b[2J" not in text
    assert "\\x1b[2J" in text
    assert "\x1b]8;;https:evil" not in text


def test_clean() -> None:
    assert render.clean("a\x1bb\tc\nd\u202e\x85") == "a\\x1bb\tc\\x0ad\\u202e\\x85"
    assert render.clean("a\nb", lines=True) == "a\nb"
    assert render.clean("a\rb", lines=True) == "a\\x0db"


def test_the_cli_prints_only_through_the_render_layer() -> None:
    """No CLI module writes to the terminal but through odrun.render (echo, consoles)."""
    bad = re.compile(r"click\.s?echo\(|(?<![.\w])print\(|\bConsole\(|sys\.std(out|err)\.write")
    offenders = []
    cli_modules = sorted((REPO / "odrun" / "cli").glob("*.py"))
    assert len(cli_modules) >= 8
    for path in [*cli_modules, REPO / "odrun" / "progress.py"]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if bad.search(line):
                offenders.append(f"{path.name}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("kind", ["rich", "plain"])
def test_fetch_progress_escapes_names(kind: str) -> None:
    from odrun.progress import PlainProgress, RichProgress
    from odrun.records.model import RecordFile
    from odrun.transfer.fetch import FileResult, State

    out = io.StringIO()
    console = render.SafeConsole(file=out, force_terminal=True, color_system="standard")
    bar = RichProgress(console, 2, 2) if kind == "rich" else PlainProgress(out)
    with bar:
        for name in HOSTILE_NAMES[:2]:
            f = RecordFile(f"http://h/{name}", 1, None, name, name)
            bar.start(f)
            bar.position(f, 1)
            reason = f"HTTP 404 for {name}"
            bar.finish(f, FileResult(name, f.uri, 1, State.FAILED, reason=reason))
    text = out.getvalue()
    assert "\x1b[2J" not in text
    assert "\x1b]8;;" not in text
    assert "\\x1b[2J" in text
