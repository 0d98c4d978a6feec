"""The documentation: README.md and the docs/ site build with no warnings, and what they show holds.

Code blocks that show odrun at work are executed: a ```console block's ``$ odrun ...`` lines
run in a temporary copy of ``workflows/`` (the demo and its offline mirror) and their output
is compared with what the page shows (``...`` on a line of its own skips lines, inside a line
it skips text). Every ```console and ```python block carries a marker on the line before it::

    <!-- docs-test: run -->                  run it (options: portal=mirror|records)
    <!-- docs-test: skip REASON -->          never run it, and say why (network, a cluster)

A ```bash block runs only when it is marked ``run`` (each line an odrun command, exit 0).
Every ```yaml block parses.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
MARKER = re.compile(r"^<!-- docs-test: (run|skip)\b\s*(.*?)\s*-->$")
#: the blocks that must say whether they run
MARKED = ("console", "python")
#: what ``portal=NAME`` points ODRUN_PORTAL_URL at (relative to the temporary copy)
PORTALS = {"mirror": "workflows/mirror", "records": "records"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: str | None  # "run ..." or "skip ...", None when unmarked

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    def option(self, name: str) -> str | None:
        for word in (self.marker or "").split()[1:]:
            key, _, value = word.partition("=")
            if key == name:
                return value
        return None


FENCE = re.compile(r"^( *)```(\S*)\s*$")


def code_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page (in lists too), with the docs-test marker above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening:
            indent, lang = len(opening.group(1)), opening.group(2)
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            assert end < len(lines), f"{page}:{i + 1}: code block never closed"
            above = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            found = MARKER.match(above.strip())
            marker = f"{found.group(1)} {found.group(2)}".strip() if found else None
            text = "\n".join(line[indent:] for line in lines[i + 1 : end])
            blocks.append(Block(page, i + 1, lang, text, marker))
            i = end
        i += 1
    return blocks


ALL_BLOCKS = [b for page in PAGES for b in code_blocks(page)]
RUNNABLE = [
    b
    for b in ALL_BLOCKS
    if b.lang in ("console", "python", "bash") and (b.marker or "").startswith("run")
]


def test_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for page in DOCS.glob("*.md"):
        html = tmp_path / "s" / ("" if page.stem == "index" else page.stem) / "index.html"
        assert html.is_file(), page


def nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return []


def test_nav_lists_every_page_once() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    assert sorted(listed) == sorted(p.name for p in DOCS.glob("*.md"))
    plugins = config.get("plugins", [])
    assert plugins == [], f"no plugin may fetch at build time: {plugins}"


def test_readme_fits_on_a_few_screens_and_starts_with_the_two_commands() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) < 10_000
    first = code_blocks(REPO / "README.md")[0]
    assert first.lang == "bash"
    assert first.text.splitlines() == [
        "python3 -m pip install -e . && odrun run workflows/dimuon-demo --verify",
        "bash tests/run",
    ]
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)\)", text))
    assert linked == {p.name for p in DOCS.glob("*.md")} - {"index.md"}


def test_yaml_blocks_parse() -> None:
    blocks = [b for b in ALL_BLOCKS if b.lang == "yaml"]
    assert len(blocks) >= 8
    for block in blocks:
        assert isinstance(yaml.safe_load(block.text), (dict, list)), block.id


def test_odrun_yaml_blocks_are_valid_and_the_demo_block_is_the_demo() -> None:
    """A block headed ``# odrun.yaml`` passes odrun.yaml's schema (no unknown keys); one
    headed ``# odrun.yaml (FOLDER)`` says what FOLDER/odrun.yaml says."""
    import jsonschema

    from odrun.specs import load_spec

    validator = jsonschema.Draft202012Validator(load_spec("odrun.schema.json"))
    blocks = [b for b in ALL_BLOCKS if b.lang == "yaml" and b.text.startswith("# odrun.yaml")]
    assert len(blocks) >= 2
    for block in blocks:
        doc = yaml.safe_load(block.text)
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, f"{block.id}: {errors}"
        folder = re.match(r"# odrun\.yaml \(([\w/.-]+)\)", block.text)
        if folder:
            real = yaml.safe_load((REPO / folder.group(1) / "odrun.yaml").read_text())
            assert doc == real, f"{block.id} differs from {folder.group(1)}/odrun.yaml"


def test_exit_code_table_is_the_one_in_errors() -> None:
    from odrun.errors import EXIT_CODES

    text = (DOCS / "exit-codes.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", text, re.MULTILINE)}
    assert documented == {code for code, _ in EXIT_CODES}


def test_ci_snippets_submit_and_install_odrun_from_git() -> None:
    """The REANA CI snippets (GitLab CI, GitHub Actions) install odrun from git, never PyPI."""
    blocks = [b.text for b in ALL_BLOCKS if b.lang == "yaml"]
    submits = [b for b in blocks if "odrun submit . --follow --verify" in b]
    assert len(submits) == 2
    for block in blocks:
        if "pip install" in block:  # odrun is not on PyPI: never a bare `pip install odrun`
            assert "git+https://github.com/<org>/odrun@<tag>" in block
            assert "pip install odrun\n" not in block


def test_blocks_that_show_odrun_say_whether_they_run() -> None:
    unmarked = [b.id for b in ALL_BLOCKS if b.lang in MARKED and b.marker is None]
    assert not unmarked, f"mark these `<!-- docs-test: run -->` or `skip REASON`: {unmarked}"
    for b in ALL_BLOCKS:
        if (b.marker or "").startswith("skip"):
            assert len(b.marker or "") > len("skip "), f"{b.id}: a skip says why"
        portal = b.option("portal")
        assert portal is None or portal in PORTALS, b.id
    assert len(RUNNABLE) >= 7


def _norm(line: str) -> str:
    return " ".join(line.split())


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` lines in order; ``...`` alone skips lines, inside a line skips text."""
    patterns = [
        None
        if _norm(e) == "..."
        else re.compile(".*".join(re.escape(p.strip()) for p in _norm(e).split("...")) + r"\Z")
        for e in expected
    ]
    lines = [_norm(a) for a in actual]

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(patterns):
            return j == len(lines)
        pattern = patterns[i]
        if pattern is None:
            return any(match(i + 1, k) for k in range(j, len(lines) + 1))
        return j < len(lines) and bool(pattern.match(lines[j])) and match(i + 1, j + 1)

    return match(0, 0)


def test_output_matching_can_fail() -> None:
    assert output_matches(["a", "...", "d ... f"], ["a", "b", "c", "d  e  f"])
    assert not output_matches(["a", "d"], ["a", "b", "d"])
    assert not output_matches(["a ... f"], ["a b g"])
    assert not output_matches(["a"], ["a", "extra"])


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A copy of workflows/ (the demo and its mirror) and the test portal's records."""
    ignore = shutil.ignore_patterns(".odrun", "__pycache__")
    shutil.copytree(REPO / "workflows", tmp_path / "workflows", ignore=ignore)
    shutil.copytree(REPO / "tests" / "data" / "records", tmp_path / "records")
    (tmp_path / "config.toml").write_text("# no settings: the defaults and ODRUN_* only\n")
    return tmp_path


def _env(block: Block, sandbox: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODRUN_", "REANA_"))}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        ODRUN_CACHE_DIR=str(sandbox / "cache"),
        ODRUN_CONFIG=str(sandbox / "config.toml"),
        ODRUN_OFFLINE="1",
        COLUMNS="400",  # no wrapping
        NO_COLOR="1",
    )
    portal = block.option("portal")
    if portal:
        env["ODRUN_PORTAL_URL"] = (sandbox / PORTALS[portal]).as_uri()
    return env


#: runs a block's odrun commands one after the other in one interpreter (odrun's entry point,
#: ``odrun.cli.main``, runs many times in one process, as in the CLI tests), stdout and stderr
#: interleaved as a terminal shows them; prints ``[[exit code, output], ...]`` as JSON
RUNNER = """
import contextlib, io, json, sys
from odrun.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    results.append([code, out.getvalue()])
print(json.dumps(results))
"""


def _odrun(lines: list[str], env: dict[str, str], cwd: Path) -> list[tuple[int, str]]:
    """Run ``odrun ...`` command lines (shell syntax, ``#`` comments) in ``cwd``."""
    argvs = []
    for line in lines:
        words = shlex.split(line, comments=True)
        assert words[0] == "odrun", f"only odrun commands run in docs blocks: {line}"
        argvs.append(words[1:])
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(argvs)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [(code, out) for code, out in json.loads(proc.stdout)]


def _console(block: Block, env: dict[str, str], cwd: Path) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            assert commands, f"{block.id}: output before the first `$ ` command"
            commands[-1][1].append(line)
    ran = iter(_odrun([c for c, _ in commands if c != "echo $?"], env, cwd))
    code = 0
    for command, expected in commands:
        if command == "echo $?":
            out = f"{code}\n"
        else:
            code, out = next(ran)
        assert output_matches(expected, out.splitlines()), (
            f"{block.id}: `{command}` (exit {code}) printed\n{out}\nbut the page shows\n"
            + "\n".join(expected)
        )


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_runnable_block(block: Block, sandbox: Path) -> None:
    env = _env(block, sandbox)
    if block.lang == "console":
        _console(block, env, sandbox)
    elif block.lang == "bash":
        lines = [x for x in block.text.splitlines() if x.strip() and not x.lstrip().startswith("#")]
        for line, (code, out) in zip(lines, _odrun(lines, env, sandbox), strict=True):
            assert code == 0, f"{block.id}: `{line}` (exit {code}): {out}"
    else:
        proc = subprocess.run(
            [sys.executable, "-c", block.text],
            cwd=sandbox,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, f"{block.id}: {proc.stderr}"


def test_architecture_page_maps_every_module() -> None:
    """docs/architecture.md names every package and module of odrun/ (a new one joins the map)."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    package = REPO / "odrun"
    modules = [p for p in package.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(modules) > 50
    missing = [str(p.relative_to(package)) for p in modules if f"`{p.name}`" not in text]
    missing += [
        f"{d.name}/"
        for d in package.iterdir()
        if (d / "__init__.py").is_file() and f"`{d.name}/`" not in text
    ]
    assert not missing, f"add to docs/architecture.md: {missing}"
