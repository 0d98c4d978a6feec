"""What reana-client 0.9.6 builds from a reana.yaml before it creates a workflow, built here.

``reana-client create`` (``reana_commons.specification.load_reana_spec``) sends the parsed
spec with, per workflow type:

- ``serial``: the spec as written;
- ``snakemake``: ``workflow.specification`` = the job graph Snakemake finds
  (:mod:`odrun.reana.smkgraph`, with the installed Snakemake; left out when it cannot be
  built), ``inputs.parameters`` replaced by the loaded parameters file
  (``inputs.parameters.input``) when there is one;
- ``cwl``: ``workflow.specification`` = the workflow packed by ``cwltool --pack``
  (``{"$graph": [...]}``), ``inputs.parameters`` replaced by the loaded job file;
- ``yadage``: ``workflow.specification`` = ``null`` (the engine loads the workflow from the
  workspace); the workflow is still loaded with yadage first, so a broken one fails here.

Then ``create`` uploads the spec file itself and ``upload`` the ``inputs.files`` and every
file under ``inputs.directories`` (those matched by the analysis's ``.gitignore`` or
``.reanaignore`` left out): :func:`upload_set`.

cwltool (extra ``cwl``) and yadage are imported only here, lazily; yadage's dependencies
conflict with odrun's (jsonschema), so it may live in a venv of its own named by the
``yadage_python`` setting (``ODRUN_YADAGE_PYTHON``). docs/reana.md lists the differences
from reana-client and why.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odrun._fs import confine
from odrun._yaml import load_yaml
from odrun.errors import ConfigError, SpecError
from odrun.settings import Settings, process_environment
from odrun.workflow.spec import Analysis, relative
from odrun.workflow.yadage import INSTALL_HINT as YADAGE_HINT
from odrun.workflow.yadage import yadage_python

#: seconds ``cwltool --pack`` or the yadage loader may take
LOAD_TIMEOUT = 300.0
#: workflow types whose REANA engine reads workflow.file from the workspace (cwl: packed
#: into the spec; serial: inline)
READ_FROM_WORKSPACE = ("snakemake", "yadage")
#: how much of a tool's error output a message shows
DETAIL_CHARS = 600
#: files whose patterns leave files of ``inputs.directories`` out, as reana-client reads them
IGNORE_FILES = (".gitignore", ".reanaignore")
CWL_HINT = "pip install 'odrun[cwl]' (cwltool>=3.1)"

#: run by the yadage python: load and validate the workflow as reana-commons' yadage_load
_YADAGE_LOAD = """
import json, sys
import yadageschemas
opts = {"schema_name": "yadage/workflow-schema", "schemadir": None}
try:
    yadageschemas.load(spec=sys.argv[1], specopts=dict(opts, toplevel=".", load_as_ref=False),
                       validopts=opts, validate=True)
except Exception as exc:
    text = str(getattr(exc, "message", "") or exc).strip().splitlines() or [type(exc).__name__]
    sys.stderr.write(text[0][:500] + "\\n")
    sys.exit(3)
print("ok")
"""


def build_spec(
    analysis: Analysis,
    settings: Settings,
    say: Callable[[str], None] = lambda _: None,
    *,
    untrusted: bool = False,
) -> dict[str, Any]:
    """The body of ``POST /api/workflows``, as reana-client 0.9.6 builds it (module doc).
    ``untrusted`` (an analysis from a record, not trusted with --trust-snakefile): a
    Snakefile, which is Python run on this host to build the job graph, is refused."""
    if analysis.reana is None:
        raise SpecError(
            f"{analysis.root} has no reana.yaml: REANA runs reana.yaml workflows",
            hint="add a reana.yaml (serial, snakemake, cwl or yadage)",
        )
    spec = copy.deepcopy(analysis.reana)
    workflow = spec.get("workflow") or {}
    wtype = workflow.get("type")
    if wtype == "cwl":
        workflow["specification"] = pack_cwl(analysis.root, _workflow_file(analysis))
    elif wtype == "yadage":
        check_yadage(analysis.root, _workflow_file(analysis), settings)
        workflow["specification"] = None
    elif wtype == "snakemake":
        graph = snakemake_graph(analysis, say, untrusted=untrusted)
        if graph is not None:
            workflow["specification"] = graph
    if wtype in ("cwl", "snakemake"):
        params = input_parameters(analysis)
        if params is not None:
            spec.setdefault("inputs", {})["parameters"] = params
    return spec


def _workflow_file(analysis: Analysis) -> str:
    wfile = (analysis.reana or {}).get("workflow", {}).get("file")
    wtype = analysis.workflow_type
    if not wfile:
        raise SpecError(f"reana.yaml: a {wtype} workflow needs workflow.file")
    rel = relative(str(wfile), "workflow.file").as_posix()
    if not confine(analysis.root, rel, "workflow.file", error=SpecError).is_file():
        raise SpecError(f"workflow.file {rel} does not exist in {analysis.root}")
    return rel


def input_parameters(analysis: Analysis) -> Any:
    """The parameters file (``inputs.parameters.input``) loaded, or None without one (cwl
    and snakemake: reana-client then keeps ``inputs.parameters`` as written)."""
    name = analysis.parameters.get("input")
    if not isinstance(name, str):
        return None
    path = confine(analysis.root, name, "inputs.parameters.input", error=SpecError)
    if not path.is_file():
        raise SpecError(f"inputs.parameters.input {name} does not exist in {analysis.root}")
    loaded = load_yaml(path, f"parameters file {name}", error=SpecError)
    if loaded is not None and not isinstance(loaded, dict):
        raise SpecError(f"parameters file {name} must hold a mapping, not {type(loaded).__name__}")
    return loaded


def snakemake_graph(
    analysis: Analysis, say: Callable[[str], None], *, untrusted: bool = False
) -> dict[str, Any] | None:
    """The job graph reana-client sends for a Snakemake workflow (:mod:`.smkgraph`, run with
    the installed Snakemake), or None (said) when it cannot be built: without Snakemake, or
    when the Snakefile needs files that are not there yet (records fetched later).
    ``untrusted``: ConfigError (exit 8) before any of the Snakefile runs."""
    wfile = (analysis.reana or {}).get("workflow", {}).get("file") or "Snakefile"
    rel = relative(str(wfile), "workflow.file").as_posix()
    if untrusted:
        raise ConfigError(
            f"this analysis comes from a record: building the Snakemake job graph that "
            f"reana-client sends would run the Python of its {rel} on this host (top-level "
            "code, input functions), outside any container",
            hint="review it, then submit with --trust-snakefile",
        )
    if importlib.util.find_spec("snakemake") is None:
        say("note: Snakemake is not installed: the job graph reana-client would send as "
            "workflow.specification is left out (REANA's engine builds its own)")  # fmt: skip
        return None
    params_file = analysis.parameters.get("input")
    config = str(params_file) if isinstance(params_file, str) else "-"
    with tempfile.TemporaryDirectory(prefix="odrun-smkgraph-") as tmp:
        out = Path(tmp, "graph.json")
        script = str(Path(__file__).with_name("smkgraph.py"))
        try:
            _run([sys.executable, script, rel, config, str(out)], analysis.root, "snakemake")
            graph = json.loads(out.read_text(encoding="utf-8"))
        except (SpecError, OSError, ValueError) as exc:
            say(f"note: the Snakemake job graph of {rel} cannot be built here ({exc}): "
                "sent without it (REANA's engine builds its own)")  # fmt: skip
            return None
    return graph if isinstance(graph, dict) else None


def pack_cwl(root: Path, rel: str) -> dict[str, Any]:
    """``cwltool --pack --quiet rel`` run in ``root``, as reana-commons' cwl_load does."""
    if importlib.util.find_spec("cwltool") is None:
        raise ConfigError("submitting a CWL workflow needs cwltool to pack it", hint=CWL_HINT)
    argv = [sys.executable, "-m", "cwltool", "--pack", "--quiet", rel]
    out = _run(argv, root, f"cwltool --pack {rel}")
    try:
        packed = json.loads(out)
    except ValueError:
        raise SpecError(f"cwltool --pack {rel} did not print JSON") from None
    if not isinstance(packed, dict):
        raise SpecError(f"cwltool --pack {rel} printed {type(packed).__name__}, not an object")
    return packed


def check_yadage(root: Path, rel: str, settings: Settings) -> None:
    """Load and validate the yadage workflow ``rel`` (toplevel: ``root``) with yadage."""
    python = yadage_python(settings)
    _run([python, "-c", _YADAGE_LOAD, rel], root, f"yadage workflow {rel}", python=python)


def _run(argv: list[str], cwd: Path, what: str, python: str | None = None) -> str:
    env = process_environment() | {"PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True,
            timeout=LOAD_TIMEOUT, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise ConfigError(
            f"{what}: python {python or argv[0]} does not exist", hint=YADAGE_HINT
        ) from None
    except subprocess.TimeoutExpired:
        raise SpecError(f"{what}: still loading after {LOAD_TIMEOUT:g} s") from None
    # cwltool --pack exits 0 on a workflow it cannot load, printing nothing: check both
    if proc.returncode != 0 or (what.startswith("cwltool") and not proc.stdout.strip()):
        detail = _detail(proc.stderr) or f"exit {proc.returncode}"
        if python and "No module named" in detail:
            raise ConfigError(f"{what}: {python} cannot import yadage: {detail}", hint=YADAGE_HINT)
        raise SpecError(f"{what} does not load: {detail}")
    return proc.stdout


def _detail(stderr: str) -> str:
    """A tool's error output as one line: colours out, lines joined, cut."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", stderr).split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 3] + "..."


def ignored(root: Path) -> Any:
    """A matcher of the paths ``.gitignore``/``.reanaignore`` (in ``root``) leave out."""
    import pathspec  # noqa: PLC0415 - lazy

    specs = []
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            specs.append(pathspec.PathSpec.from_lines("gitignore", lines))
    return lambda rel: any(spec.match_file(rel) for spec in specs)


def upload_set(analysis: Analysis) -> list[tuple[str, Path]]:
    """(workspace path, local file) of what ``reana-client create`` + ``upload`` send: the
    spec file, ``inputs.files``, the files under ``inputs.directories`` not ignored; then
    (odrun only) the workflow file of the types whose engine reads it from the workspace,
    and a snakemake parameters file, if not among them."""
    root = analysis.root.resolve()
    out: dict[str, Path] = {}
    if analysis.reana_path is not None:  # always in the analysis folder (load_analysis)
        _add(root, analysis.reana_path.name, out, lambda _: False)
    skip = ignored(root)
    for rel in analysis.files_in("inputs", "files"):
        _add(root, rel, out, lambda _: False)
    for rel in analysis.files_in("inputs", "directories"):
        _add(root, rel, out, skip)
    wfile = (analysis.reana or {}).get("workflow", {}).get("file")
    if wfile and analysis.workflow_type in READ_FROM_WORKSPACE:
        _add(root, str(wfile), out, lambda _: False)
    params_file = analysis.parameters.get("input")
    if analysis.workflow_type == "snakemake" and isinstance(params_file, str):
        _add(root, params_file, out, lambda _: False)
    return list(out.items())


def _add(root: Path, wanted: str, out: dict[str, Path], skip: Any) -> None:
    rel = relative(wanted, "input").as_posix()
    src = confine(root, rel, "input", error=SpecError)  # links followed, kept inside
    if not src.exists():
        raise SpecError(f"input {rel} does not exist in {root}")
    if not src.is_dir():
        out.setdefault(rel, src)
        return
    for here, dirs, files in os.walk(src):  # not into linked folders, as reana-client
        dirs[:] = sorted(d for d in dirs if d != ".odrun")
        for name in sorted(files):
            inside = Path(rel, os.path.relpath(Path(here, name), src)).as_posix()
            if skip(inside):
                continue
            path = confine(root, inside, "input", error=SpecError)  # a link may lead out
            if path.is_file():
                out.setdefault(inside, path)
