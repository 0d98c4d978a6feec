"""Load and validate an analysis: ``reana.yaml`` (REANA's schema) and ``odrun.yaml`` (ours).

Validation is strict and is ONE code path (:func:`validate`, :func:`ensure_valid`) for
``odrun run``, ``odrun verify``, ``odrun validate`` and ``odrun submit``: every schema
violation is an error, an unknown key included (named with the closest valid key), in
odrun.yaml and wherever REANA's schema forbids additional keys. Static checks add
parameters used but not defined, inputs that do not exist or lead outside the analysis
folder (:func:`inside_analysis`, the one confinement rule that staging uses too),
references that do not exist, and container images without a pinned tag or digest.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from odrun._fs import confine
from odrun._yaml import load_yaml
from odrun.errors import (
    InvalidReferenceError,
    OdrunError,
    SpecError,
    UnsafeMetadataError,
    UsageError,
)
from odrun.hepdata import PREFIX, is_remote, parse_ref
from odrun.records import FileFilter, parse_reference
from odrun.records.portal import mirror_path
from odrun.settings import Settings
from odrun.specs import load_spec

REANA_SCHEMA = "reana/reana_analysis_schema.v0.9.11.json"
ODRUN_SCHEMA = "odrun.schema.json"


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    where: str
    message: str
    #: a path leading out of the analysis through a link: refused as unsafe (exit 9)
    unsafe: bool = False

    @property
    def error(self) -> type[OdrunError]:
        """The error a run raises for this finding."""
        return UnsafeMetadataError if self.unsafe else SpecError

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass
class Analysis:
    root: Path
    reana: dict[str, Any] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    reana_path: Path | None = None
    manifest_path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.root.resolve().name)

    @property
    def workflow_type(self) -> str | None:
        value = (self.reana or {}).get("workflow", {}).get("type")
        return str(value) if value else None

    @property
    def parameters(self) -> dict[str, Any]:
        params = (self.reana or {}).get("inputs", {}).get("parameters") or {}
        return dict(params)

    @property
    def steps(self) -> list[dict[str, Any]]:
        spec = (self.reana or {}).get("workflow", {}).get("specification") or {}
        steps = spec.get("steps") or []
        return [s for s in steps if isinstance(s, dict)]

    def network(self, step: str) -> bool:
        """Whether odrun.yaml's ``network`` (true, or a list of step names) lets a step use
        the network; every other step runs with ``--network=none``."""
        allowed = self.manifest.get("network", False)
        return allowed is True or (isinstance(allowed, list) and step in allowed)

    def files_in(self, section: str, kind: str) -> list[str]:
        return [str(x) for x in (self.reana or {}).get(section, {}).get(kind) or []]


def record_settings(analysis: Analysis, settings: Settings) -> Settings:
    """Settings whose portal is the one odrun.yaml names (a relative mirror made absolute)."""
    portal = analysis.manifest.get("portal")
    if not portal:
        return settings
    folder = mirror_path(str(portal))
    if folder is not None and not folder.is_absolute():
        base = analysis.manifest_path.parent if analysis.manifest_path else analysis.root
        portal = (base / folder).resolve().as_uri()
    return settings.with_(portal_url=str(portal))


def _read_yaml(path: Path) -> dict[str, Any]:
    data = load_yaml(path, path.name, error=SpecError)
    if not isinstance(data, dict):
        raise SpecError(f"{path} must hold a YAML mapping, not {type(data).__name__}")
    return data


def load_analysis(path: Path) -> Analysis:
    """Read PATH: a folder with odrun.yaml and/or reana.yaml, or one of those files."""
    if path.is_dir():
        root, reana_path, manifest_path = path, path / "reana.yaml", path / "odrun.yaml"
    elif path.is_file():
        root = path.parent
        if path.name.startswith("odrun"):
            manifest_path, reana_path = path, root / "reana.yaml"
        else:
            reana_path, manifest_path = path, root / "odrun.yaml"
    else:
        raise SpecError(
            f"analysis {path} does not exist",
            hint="give a folder holding reana.yaml/odrun.yaml, a spec file, or a record DOI",
        )
    analysis = Analysis(root)
    if reana_path.is_file():
        analysis.reana, analysis.reana_path = _read_yaml(reana_path), reana_path
    if manifest_path.is_file():
        analysis.manifest, analysis.manifest_path = _read_yaml(manifest_path), manifest_path
    if analysis.reana is None and analysis.manifest_path is None:
        raise SpecError(f"{path} holds neither reana.yaml nor odrun.yaml")
    return analysis


_PARAM = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def used_parameters(command: str) -> set[str]:
    text = command.replace("$$", "")
    return {m.group("braced") or m.group("named") for m in _PARAM.finditer(text)}


#: the longest command a substitution may produce (Linux's MAX_ARG_STRLEN: one argument
#: of ``bash -c`` holds at most 128 KiB)
MAX_COMMAND = 128 * 1024 - 1


def substitute(command: str, params: dict[str, Any], where: str) -> str:
    """REANA serial substitution: ``$name`` / ``${name}``, ``$$`` is a literal ``$``.

    Only the parameters the command uses are rendered, once each and never again
    (a value holding ``$x`` stays as it is); a command that would expand beyond
    :data:`MAX_COMMAND` characters is refused before it is built.
    """
    used = used_parameters(command)
    values = {name: str(params[name]) for name in used if name in params}
    counts: dict[str, int] = {}
    for match in _PARAM.finditer(command.replace("$$", "")):
        name = match.group("braced") or match.group("named")
        counts[name] = counts.get(name, 0) + 1
    size = len(command) + sum(len(values.get(n, "")) * k for n, k in counts.items())
    if size > MAX_COMMAND:
        raise SpecError(
            f"{where}: the command expands to more than {MAX_COMMAND} characters ({size})",
            hint="pass large values in a file named by the parameter instead",
        )
    try:
        return string.Template(command).substitute(values)
    except KeyError as exc:
        raise SpecError(
            f"{where}: parameter {exc.args[0]} is not defined in inputs.parameters",
            hint="define it, or write $$ for a literal $ (shell variables: $${HOME})",
        ) from None
    except ValueError as exc:
        raise SpecError(f"{where}: bad $ placeholder in {command[:200]!r}: {exc}") from None


def validate(analysis: Analysis, *, staging: bool = True) -> list[Finding]:
    """Every problem found without running anything; errors first.

    The one validation of an analysis: ``run`` and ``submit`` refuse exactly its errors,
    ``validate`` prints them. ``staging=False`` (``verify``: nothing is staged) leaves out
    the checks of the inputs a run copies into its workspace.
    """
    findings: list[Finding] = []
    unknown: list[Finding] = []  # unknown keys: the other checks can still run
    for doc, name, label in (
        (analysis.reana, REANA_SCHEMA, "reana.yaml"),
        (analysis.manifest if analysis.manifest_path else None, ODRUN_SCHEMA, "odrun.yaml"),
    ):
        if doc is not None:
            broken, extra = _schema_findings(doc, name, label, draft7=label == "reana.yaml")
            findings += broken
            if label == "odrun.yaml":  # the schema's `minimum: 0` lets .inf and .nan through
                findings += list(_non_finite(doc, label))
            unknown += extra
    if findings:  # the other checks assume the schemas hold; unknown keys first (a
        return unknown + findings  # misspelt key is often why a required one is missing)
    findings = unknown
    if analysis.reana is not None:
        findings += _static_checks(analysis)
    if staging:
        findings += _input_checks(analysis)
    findings += _record_checks(analysis)
    findings += _reference_checks(analysis)
    return sorted(findings, key=lambda f: f.level != "error")


def worst_error(errors: list[Finding]) -> type[OdrunError]:
    """The error a run raises for these findings: unsafe (exit 9) if any is, else SpecError."""
    return UnsafeMetadataError if any(f.unsafe for f in errors) else SpecError


def ensure_valid(analysis: Analysis, *, staging: bool = True) -> list[Finding]:
    """:func:`validate`, raising :class:`SpecError` on the first error; returns the warnings."""
    findings = validate(analysis, staging=staging)
    errors = [f for f in findings if f.level == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise worst_error(errors)(
            f"{errors[0].where}: {errors[0].message}{more}",
            hint=f"odrun validate {analysis.root} lists every problem",
        )
    return findings


def _schema_findings(
    doc: dict[str, Any], name: str, label: str, draft7: bool
) -> tuple[list[Finding], list[Finding]]:
    """(schema violations, unknown keys) of one spec file: all errors."""
    schema = load_spec(name)
    cls = jsonschema.Draft7Validator if draft7 else jsonschema.Draft202012Validator
    broken, unknown = [], []
    for err in sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        keys = list(dict.fromkeys(_unknown_keys(err)))
        unknown += [Finding("error", label, message) for message in keys]
        if not keys or err.validator in ("oneOf", "anyOf"):
            broken.append(Finding("error", label + _json_path(err.absolute_path), err.message))
    return broken, unknown


def _non_finite(doc: Any, where: str) -> Iterator[Finding]:
    """An error per YAML ``.inf``/``.nan``: an infinite tolerance passes any output, a NaN
    expectation fails a correct one."""
    if isinstance(doc, float) and not math.isfinite(doc):
        shown = ".nan" if math.isnan(doc) else ("-.inf" if doc < 0 else ".inf")
        yield Finding("error", where, f"{shown} is not a finite number")
    elif isinstance(doc, dict):
        for key, value in doc.items():
            yield from _non_finite(value, f"{where}.{key}")
    elif isinstance(doc, list):
        for n, value in enumerate(doc):
            yield from _non_finite(value, f"{where}[{n}]")


def _json_path(path: Any) -> str:
    """``.expect[0].values.mass`` from a JSON path."""
    return "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in path)


def _unknown_keys(err: jsonschema.ValidationError) -> Iterator[str]:
    """One message per key the schema does not allow at that place, with the closest
    valid key (or the valid keys, when none is close)."""
    instance: Any = err.instance
    if err.validator in ("oneOf", "anyOf"):  # e.g. a number, or a mapping with tolerances
        for branch in err.context or []:
            yield from _unknown_keys(branch)
        return
    if err.validator == "additionalProperties" and err.validator_value is False:
        schema: Any = err.schema if isinstance(err.schema, dict) else {}
        valid = sorted(schema.get("properties") or {})
        patterns = list(schema.get("patternProperties") or {})
        keys = [
            str(k)
            for k in instance
            if k not in valid and not any(re.search(p, str(k)) for p in patterns)
        ]
        where = _json_path(err.absolute_path).removeprefix(".")
    elif "propertyNames" in err.schema_path and err.validator == "enum":
        choices: Any = err.validator_value
        valid = [str(v) for v in choices]
        keys = [str(instance)]
        where = _json_path(err.absolute_path).removeprefix(".")
    else:
        return
    for key in keys:
        place = f" in {where}" if where else ""
        yield f"unknown key `{key}`{place}: {suggest(key, valid)}"


def suggest(word: str, valid: list[str]) -> str:
    """``did you mean `x`?`` for the closest valid word, else the valid words."""
    close = difflib.get_close_matches(word, valid, n=1, cutoff=0.6)
    if not close:  # a longer or shorter spelling: destination -> dest
        close = [v for v in valid if min(len(v), len(word)) >= 3 and word.startswith(v)]
        close += [v for v in valid if min(len(v), len(word)) >= 3 and v.startswith(word)]
    if close:
        return f"did you mean `{close[0]}`?"
    return "expected one of " + ", ".join(f"`{v}`" for v in valid)


def _static_checks(analysis: Analysis) -> list[Finding]:
    out = []
    params = analysis.parameters
    for i, step in enumerate(analysis.steps):
        name = step.get("name") or f"step {i + 1}"
        for command in step.get("commands") or []:
            try:
                # the real values (the length cap is checked), missing ones reported below
                substitute(
                    str(command), dict.fromkeys(used_parameters(str(command)), "") | params, name
                )
            except SpecError as exc:
                out.append(Finding("error", f"reana.yaml step {name}", exc.message))
            for missing in sorted(used_parameters(str(command)) - set(params)):
                out.append(
                    Finding(
                        "error", f"reana.yaml step {name}", f"parameter ${missing} is not defined"
                    )
                )
        image = str(step.get("environment") or "")
        if image and not _pinned(image):
            out.append(
                Finding(
                    "warning",
                    f"reana.yaml step {name}",
                    f"image {image} is not pinned (tag or @sha256 digest)",
                )
            )
    return out


def relative(rel: str, what: str) -> Path:
    """``rel`` as a relative path that stays below its folder (no ``..``, not absolute)."""
    path = Path(rel)
    if not rel.strip() or path.is_absolute() or ".." in path.parts:
        raise SpecError(f"{what} {rel!r} must be a relative path inside the analysis")
    return path


def inside_analysis(root: Path, rel: str, what: str = "input") -> Path:
    """``root/rel``, refused unless it exists and everything it is or holds (symbolic links
    followed) lies inside ``root``: the one confinement rule for what a run stages, what
    REANA is sent and what ``expect`` references."""
    src = root / relative(rel, what)
    top = root.resolve()
    try:  # the one confinement rule (odrun._fs); a link out is unsafe (exit 9), not a typo
        confine(root, rel, what, error=SpecError)
    except UnsafeMetadataError:
        raise UnsafeMetadataError(f"{what} {rel} leads outside the analysis folder {top}") from None
    if not _present(src):
        raise SpecError(f"{what} {rel} does not exist in {root}")
    if src.is_dir() and not src.is_symlink():
        for path in _walk(src):
            if path.is_symlink() and not path.resolve().is_relative_to(top):
                inner = path.relative_to(root).as_posix()
                raise UnsafeMetadataError(f"{what} {inner} leads outside the analysis folder {top}")
    return src


def _walk(folder: Path) -> Iterator[Path]:
    """Everything below ``folder``, links not followed, run folders (.odrun) left out."""
    for path in sorted(folder.iterdir()):
        if path.name == ".odrun":
            continue
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)


def staged_inputs(analysis: Analysis) -> list[tuple[str, str]]:
    """(kind, path) of what a run copies into its workspace: the workflow file first, a
    snakemake parameters file, then ``inputs.files`` and ``inputs.directories``; each once."""
    workflow_file = (analysis.reana or {}).get("workflow", {}).get("file")
    staged = [("files", str(workflow_file))] if workflow_file else []
    params_file = analysis.parameters.get("input")
    if analysis.workflow_type in PARAMETER_FILE_TYPES and isinstance(params_file, str):
        staged.append(("files", params_file))
    for kind in ("files", "directories"):
        staged += [(kind, rel) for rel in analysis.files_in("inputs", kind)]
    return list(dict.fromkeys(staged))


def _input_checks(analysis: Analysis) -> list[Finding]:
    out = []
    for kind, rel in staged_inputs(analysis):
        try:
            inside_analysis(analysis.root, rel, "input")
        except (SpecError, UnsafeMetadataError) as exc:
            unsafe = isinstance(exc, UnsafeMetadataError)
            out.append(Finding("error", f"reana.yaml inputs.{kind}", exc.message, unsafe))
    if analysis.workflow_type in PARAMETER_FILE_TYPES and isinstance(
        analysis.parameters.get("input"), str
    ):
        try:
            workflow_parameters(analysis)  # what a run reads, read the same way
        except SpecError as exc:
            out.append(Finding("error", "reana.yaml inputs.parameters.input", exc.message))
    if analysis.workflow_type == "cwl" and not any(f.where.endswith(".files") for f in out):
        from odrun.workflow.cwl_refs import check_references, rebase_job  # noqa: PLC0415

        def job_of(analysis: Analysis) -> dict[str, Any]:
            name = analysis.parameters.get("input")
            job_file = name if isinstance(name, str) else None
            return rebase_job(workflow_parameters(analysis), job_file)

        for finding in check_references(analysis, job_of):
            out.append(Finding("error", "reana.yaml workflow.file", *finding))
    return out


def _record_checks(analysis: Analysis) -> list[Finding]:
    """Each ``records`` item names a record, a valid file selection and a safe ``dest``."""
    out = []
    for i, item in enumerate(analysis.manifest.get("records") or []):
        where = f"odrun.yaml records[{i}]"
        try:
            parse_reference(str(item["ref"]))
            ranges = [str(item["range"])] if item.get("range") else []
            regexp = str(item["regexp"]) if item.get("regexp") is not None else None
            FileFilter.build([str(n) for n in item.get("names") or []], regexp, ranges)
            if item.get("dest") is not None:
                relative(str(item["dest"]), "records dest")
        except UsageError as exc:
            message = exc.message.replace("--filter-regexp", "regexp").replace(
                "--filter-range", "range"
            )
            out.append(Finding("error", where, message))
    return out


def _reference_checks(analysis: Analysis) -> list[Finding]:
    """Histogram references named by ``expect`` exist; ``network`` names real steps."""
    out = []
    allowed = analysis.manifest.get("network")
    if isinstance(allowed, list) and analysis.workflow_type == "serial":
        names = {str(s.get("name")) for s in analysis.steps}
        for name in allowed:
            if name not in names:
                out.append(Finding("warning", "odrun.yaml network", f"no step named {name!r}"))
    for i, item in enumerate(analysis.manifest.get("expect") or []):
        refs = [
            (f"histograms.{key}", str(want["reference"]))
            for key, want in (item.get("histograms") or {}).items()
        ]
        ks = item.get("ks") or []
        for n, spec in enumerate([ks] if isinstance(ks, dict) else ks):
            refs.append(("ks" if isinstance(ks, dict) else f"ks[{n}]", str(spec["reference"])))
        for where, reference in refs:
            try:
                if is_remote(reference):
                    parse_ref(reference)  # fetched (and pinned) when the analysis runs
                    continue
                local = (
                    reference.removeprefix(PREFIX)
                    if reference.startswith(PREFIX)
                    else (reference.partition("#")[0])
                )
                inside_analysis(analysis.root, local, "reference")
            except (SpecError, UnsafeMetadataError, InvalidReferenceError) as exc:
                unsafe = isinstance(exc, UnsafeMetadataError)
                out.append(Finding("error", f"odrun.yaml expect[{i}].{where}", exc.message, unsafe))
    return out


def _present(path: Path, *, file: bool = False) -> bool:
    """Whether a path a spec names exists; False for names no file system takes (too long)."""
    try:
        return path.is_file() if file else path.exists()
    except (OSError, ValueError):
        return False


def _pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


#: workflow types whose ``inputs.parameters.input`` names a parameters file (staged)
PARAMETER_FILE_TYPES = ("snakemake", "cwl")


def workflow_parameters(analysis: Analysis) -> dict[str, Any]:
    """Snakemake's config or CWL's job, as REANA builds them: the file named by
    ``inputs.parameters.input`` (reana-client loads it whatever its extension: YAML, or
    JSON, which is YAML), else the parameters themselves."""
    params = analysis.parameters
    name = params.get("input")
    if isinstance(name, str) and analysis.workflow_type in PARAMETER_FILE_TYPES:
        what = f"{analysis.workflow_type} parameters file"
        path = confine(analysis.root, name, "inputs.parameters.input", error=SpecError)
        loaded = load_yaml(path, what, error=SpecError) or {}
        if not isinstance(loaded, dict):
            raise SpecError(f"{what} {name} must hold a mapping")
        return loaded
    return params


snakemake_config = workflow_parameters
