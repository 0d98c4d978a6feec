"""Hostile YAML: billion laughs, recursive aliases, huge files, runaway ${param} expansion.

Every YAML odrun reads goes through odrun._yaml.load_yaml; the CLI refuses a bomb fast,
in little memory, with a one-line error and exit code 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from odrun import _yaml
from odrun.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parent.parent

#: 11 lines; fully expanded, parameter p is 10**8 strings
BOMB = """\
version: 0.9.0
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
inputs: {parameters: {p: *h}}
workflow: {type: serial, specification: {steps: [{name: s, commands: ["echo $p"]}]}}
"""

#: measures CPU time and peak memory of one CLI call in a fresh interpreter, capped at 2 GB
MEASURE = """\
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from odrun.cli import main
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start = cpu()
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
except MemoryError:
    code = "MemoryError"
took = cpu() - start  # CPU seconds: a loaded machine does not make it flaky
# ru_maxrss survives exec (Linux keeps the parent's peak at fork): VmHWM is this image's own
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    with open("/proc/self/status") as status:
        hwm = [line for line in status if line.startswith("VmHWM:")]
    rss = int(hwm[0].split()[1]) * 1024 if hwm else rss
except OSError:
    pass
print(json.dumps({"code": code, "seconds": took, "rss": rss}), file=sys.__stdout__)
"""


def measured(*args: str, cwd: Path) -> tuple[dict[str, object], str]:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"odrun {' '.join(args)} still running after 30 s")
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"code"')]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1]), proc.stderr


@pytest.mark.parametrize(
    "command",
    [("run", "--runtime", "host"), ("validate",), ("submit", "--server", "http://127.0.0.1:9")],
)
def test_billion_laughs_is_refused_fast_and_small(tmp_path: Path, command: tuple[str, ...]) -> None:
    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "reana.yaml").write_text(BOMB)
    assert len(BOMB.splitlines()) == 11
    result, err = measured(command[0], str(folder), *command[1:], cwd=tmp_path)
    assert result["code"] == 2, err
    assert float(result["seconds"]) < 1.0, result  # type: ignore[arg-type]
    assert int(result["rss"]) < 100 * 1024 * 1024, result  # type: ignore[call-overload]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(folder / "reana.yaml") in lines[0]
    assert "aliases expand to more than" in lines[0]


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [1, 2]\nb: &b [*a, *a, *a]\n"
        + "".join(f"c{i}: [*b, *b, *b, *b]\n" for i in range(600)),
        "a: &a {x: 1, y: 2}\n" + "".join(f"m{i}:\n  <<: *a\n  z: {i}\n" for i in range(4000)),
        "a: &a [x, *a]\n",  # recursive
        "a: &a {k: *a}\n",
    ],
    ids=["wide", "merge-keys", "recursive-seq", "recursive-map"],
)
@pytest.mark.parametrize("loader", ["libyaml", "python"])
def test_alias_variants_are_refused(
    text: str, loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if loader == "python":  # the fallback where PyYAML was built without libyaml
        monkeypatch.setattr(_yaml, "_Loader", _yaml._PyLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    with pytest.raises(UsageError, match=r"^<reana.yaml>: (aliases expand|alias \*a refers)"):
        _yaml.load_yaml(text, "reana.yaml")


def test_node_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml, "MAX_NODES", 1000)
    assert len(_yaml.load_yaml("x: [" + ",".join(["1"] * 990) + "]", "odrun.yaml")["x"]) == 990
    with pytest.raises(UsageError, match=r"<odrun.yaml>: more than 1000 nodes: refused"):
        _yaml.load_yaml("x: [" + ",".join(["1"] * 1000) + "]", "odrun.yaml")


def test_modest_aliases_still_load() -> None:
    doc = _yaml.load_yaml("a: &a {x: 1}\nb: *a\nc:\n  <<: *a\n  y: 2\n", "odrun.yaml")
    assert doc == {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1, "y": 2}}


def test_size_limit_and_deep_nesting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 2000 + "\n")
    monkeypatch.setattr(_yaml, "MAX_BYTES", 1000)
    with pytest.raises(ConfigError, match=r"big.yaml is 2004 bytes, more than the 1000 bytes"):
        _yaml.load_yaml(big, "image catalog", error=ConfigError)
    monkeypatch.undo()
    with pytest.raises(UsageError, match="nested too deeply"):
        _yaml.load_yaml("[" * 50_000 + "]" * 50_000, "reana.yaml")


def test_syntax_errors_name_file_line_and_column(odrun, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "reana.yaml").write_text("version: 0.9.0\ninputs:\n  files: [a, b\nworkflow: x\n")
    for command in ("validate", "run"):
        res = odrun(command, str(folder))
        assert res.code == 2, res.err
        lines = res.err.strip().splitlines()
        assert len(lines) == 1, res.err
        assert f"{folder / 'reana.yaml'}:4:" in lines[0], lines[0]
        assert "is not readable YAML" in lines[0]


def test_every_yaml_read_goes_through_the_bounded_loader() -> None:
    """No module but odrun/_yaml.py parses YAML (yaml.load / safe_load / full_load)."""
    offenders = []
    for path in (REPO / "odrun").rglob("*.py"):
        if path.name == "_yaml.py":
            continue
        text = path.read_text(encoding="utf-8")
        for bad in ("yaml.safe_load", "yaml.load(", "yaml.full_load", "yaml.unsafe_load"):
            if bad in text:
                offenders.append(f"{path.relative_to(REPO)}: {bad}")
    assert offenders == []


def test_snakemake_config_file_bomb_is_refused(tmp_path: Path) -> None:
    from odrun.workflow import load_analysis
    from odrun.workflow.snakemake import snakemake_config

    folder = tmp_path / "smk"
    folder.mkdir()
    (folder / "config.yaml").write_text(BOMB)
    (folder / "reana.yaml").write_text(
        textwrap.dedent("""\
        version: 0.9.0
        inputs: {parameters: {input: config.yaml}}
        workflow: {type: snakemake, file: Snakefile}
        """)
    )
    with pytest.raises(UsageError, match="aliases expand"):
        snakemake_config(load_analysis(folder))


def test_substitution_uses_only_used_parameters_and_is_capped() -> None:
    from odrun.workflow.spec import MAX_COMMAND, SpecError, substitute

    class Exploding:
        def __str__(self) -> str:
            raise AssertionError("an unused parameter was rendered")

    assert substitute("echo ${a}", {"a": "x", "unused": Exploding()}, "s") == "echo x"
    assert substitute("echo $x", {"x": "$x"}, "s") == "echo $x"  # no recursion
    with pytest.raises(SpecError, match=r"step s: the command expands to more than"):
        substitute("echo " + "$big " * 200, {"big": "y" * (MAX_COMMAND // 100)}, "step s")


def test_run_with_runaway_expansion_is_a_usage_error(odrun, tmp_path: Path) -> None:
    folder = tmp_path / "runaway"
    folder.mkdir()
    big = "y" * 60_000
    (folder / "reana.yaml").write_text(
        "version: 0.9.0\ninputs:\n  parameters:\n"
        f"    big: {big}\n"
        "workflow: {type: serial, specification: {steps: [{name: s, environment: bash:5, "
        'commands: ["echo $big $big $big $big $big"]}]}}\n'
    )
    res = odrun("run", str(folder), "--runtime", "host")
    assert res.code == 2, res.err
    assert "expands to more than" in res.err
    assert len(res.err.strip().splitlines()) == 1
    res = odrun("validate", str(folder))
    assert res.code == 2, res.err
    assert "expands to more than" in res.out
