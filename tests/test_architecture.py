"""The shape of the package: the import graph is a layered DAG, and configuration is read
only through :class:`odrun.settings.Settings`.

Layers, lowest first; a module may import from its own layer or any lower one, never
from a higher one, and the graph has no cycle. Imports inside functions count (a local
import that dodges a cycle is still a cycle); imports under ``if TYPE_CHECKING:`` do not
(they never run). Importing a name from a package's ``__init__`` is an edge to that
``__init__`` (``from odrun import __version__`` is an upward import to the top).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "odrun"

#: (layer name, module-name patterns), lowest layer first. An exact name wins over a
#: ``prefix.*`` pattern; among patterns the first match wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "odrun._version",
            "odrun.errors",
            "odrun._retry",
            "odrun._fs",
            "odrun._yaml",
            "odrun.untrusted",
            "odrun.redact",
            "odrun.urls",
            "odrun.settings",
            "odrun.checksum",
            "odrun.specs",
            "odrun.cvmfs",
            "odrun.http",
        ),
    ),
    ("records", ("odrun.records", "odrun.records.*")),
    ("render", ("odrun.render",)),
    ("transfer", ("odrun.transfer", "odrun.transfer.*")),
    ("hepdata", ("odrun.hepdata", "odrun.hepdata.*")),
    ("services", ("odrun.mirror", "odrun.progress", "odrun.environments")),
    ("workflow", ("odrun.workflow", "odrun.workflow.*")),
    ("reana", ("odrun.reana", "odrun.reana.*")),
    ("compare", ("odrun.compare", "odrun.compare.*")),
    ("report", ("odrun.report", "odrun.report.*")),
    ("tools", ("odrun.doctor", "odrun.appliance", "odrun.appliance_vm")),
    ("api", ("odrun.api",)),
    # the CLI package in three layers: the shared options, the command modules (every other
    # odrun.cli.* module: a new command module lands here), then the group that names the
    # commands and the entry points. A command module never imports the group back.
    ("cli-common", ("odrun.cli._common",)),
    ("cli-commands", ("odrun.cli.*",)),
    ("cli", ("odrun", "odrun.__main__", "odrun.cli", "odrun.cli._group")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    for index, (_name, patterns) in enumerate(LAYERS):
        if module in patterns:
            return index
    for index, (_name, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if pattern.endswith("*") and module.startswith(pattern[:-1]):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported odrun module, line) for every import that runs, wherever it is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            for child in getattr(node, "orelse", []):
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names if a.name.startswith("odrun"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "odrun" or target.startswith("odrun."):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in known else target, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) for m, p in mods.items()}


def find_cycle(edges: dict[str, list[tuple[str, int]]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target, _line in edges.get(node, []):
            if target == node or target not in edges:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = dfs(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def describe_cycle(cycle: list[str], edges: dict[str, list[tuple[str, int]]]) -> str:
    steps = []
    for a, b in itertools.pairwise(cycle):
        line = next(line for target, line in edges[a] if target == b)
        steps.append(f"{a} (line {line}) imports {b}")
    return "import cycle: " + "; ".join(steps)


def upward_imports(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    return [
        f"{module}:{line} imports {target} "
        f"({LAYERS[layer_of(module)][0]} -> {LAYERS[layer_of(target)][0]})"
        for module, targets in edges.items()
        for target, line in targets
        if target != module and layer_of(target) > layer_of(module)
    ]


def test_no_upward_import() -> None:
    bad = upward_imports(graph())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def cli_coupling(edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    """Imports of a command module from the CLI other than odrun.cli._common (a sibling
    command module, the group, the package): each command stands alone on _common."""
    commands = layer_of("odrun.cli.data")
    return [
        f"{module}:{line} imports {target}"
        for module, targets in edges.items()
        if module.startswith("odrun.cli.") and layer_of(module) == commands
        for target, line in targets
        if (target == "odrun.cli" or target.startswith("odrun.cli."))
        and target != "odrun.cli._common"
    ]


def test_command_modules_import_only_common() -> None:
    bad = cli_coupling(graph())
    assert not bad, "command modules import from the CLI only odrun.cli._common:\n" + "\n".join(bad)


def test_no_import_cycle() -> None:
    edges = graph()
    cycle = find_cycle(edges)
    assert cycle is None, describe_cycle(cycle, edges) if cycle else ""


def test_the_checks_can_fail() -> None:
    """The checker itself sees a cycle and an upward import (a test that cannot fail is none)."""
    edges = {"odrun.a": [("odrun.b", 3)], "odrun.b": [("odrun.a", 7)]}
    assert find_cycle(edges) == ["odrun.a", "odrun.b", "odrun.a"]
    assert "odrun.b (line 7) imports odrun.a" in describe_cycle(
        ["odrun.a", "odrun.b", "odrun.a"], edges
    )
    assert layer_of("odrun.cli.run") > layer_of("odrun.workflow.runner") > layer_of("odrun.errors")


def test_the_checks_see_a_command_module_importing_the_group() -> None:
    """A command module that imports the group or the package back (as the old
    ``odrun.cli_*`` modules did, to register on ``cli``) is an upward import, and with the
    group's lazy import of it, a cycle."""
    assert (
        layer_of("odrun.cli._common")
        < layer_of("odrun.cli.data")
        == layer_of("odrun.cli.some_new_command")
        < layer_of("odrun.cli._group")
        == layer_of("odrun.cli")
    )
    for group in ("odrun.cli._group", "odrun.cli"):
        edges = {
            "odrun.cli.data": [("odrun.cli._common", 12), (group, 13)],
            "odrun.cli._group": [("odrun.cli._common", 20), ("odrun.cli.data", 90)],
            "odrun.cli._common": [("odrun.errors", 5)],
        }
        assert upward_imports(edges) == [f"odrun.cli.data:13 imports {group} (cli-commands -> cli)"]
    edges = {
        "odrun.cli.data": [("odrun.cli._group", 13)],
        "odrun.cli._group": [("odrun.cli.data", 90)],
    }
    assert find_cycle(edges) == ["odrun.cli._group", "odrun.cli.data", "odrun.cli._group"]
    # _common is the bottom of the CLI: importing a command module from it is upward too
    assert upward_imports({"odrun.cli._common": [("odrun.cli.run", 3)]})
    sibling = {"odrun.cli.run": [("odrun.cli._common", 3), ("odrun.cli.data", 4)]}
    assert cli_coupling(sibling) == ["odrun.cli.run:4 imports odrun.cli.data"]
    assert cli_coupling({"odrun.cli.run": [("odrun.cli", 2)]}) == [
        "odrun.cli.run:2 imports odrun.cli"
    ]
    # and the real graph is read the way these fakes are written
    real = graph()
    assert "odrun.cli._common" in {t for t, _ in real["odrun.cli._group"]}
    assert "odrun.cli._common" in {t for t, _ in real["odrun.cli.data"]}


def test_nothing_imports_the_version_from_the_package() -> None:
    """``__version__`` lives in odrun/_version.py: importing it from ``odrun`` loads the
    whole package's __init__ (and, from below, is an upward import)."""
    bad = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and any(
                a.name == "__version__" for a in node.names
            ):
                source = node.module or ""
                if (node.level == 0 and source == "odrun") or (
                    node.level and not source.endswith("_version")
                ):
                    bad.append(f"{module}:{node.lineno}")
    assert not bad, "import __version__ from odrun._version, not the package: " + ", ".join(bad)
