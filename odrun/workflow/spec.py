"""Load and validate an analysis: ``reana.yaml`` (REANA's schema) and ``odrun.yaml`` (ours).

Validation follows REANA: ``additionalProperties`` violations are warnings,
every other schema violation is an error. Static checks add parameters used but
not defined, input files that do not exist, and container images without a
pinned tag or digest.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from odrun.errors import UsageError
from odrun.records.portal import mirror_path
from odrun.settings import Settings
from odrun.specs import load_spec

REANA_SCHEMA = "reana/reana_analysis_schema.v0.9.11.json"
ODRUN_SCHEMA = "odrun.schema.json"


class SpecError(UsageError):
    """An analysis specification that cannot run (exit code 2)."""

    label = "invalid specification"


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    where: str
    message: str

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
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise SpecError(f"{path} is not readable YAML: nested too deeply") from None
    except (OSError, yaml.YAMLError, ValueError) as exc:  # ValueError: not UTF-8, 5000 digits
        raise SpecError(f"{path} is not readable YAML: {exc}".splitlines()[0]) from None
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


def substitute(command: str, params: dict[str, Any], where: str) -> str:
    """REANA serial substitution: ``$name`` / ``${name}``, ``$$`` is a literal ``$``."""
    try:
        return string.Template(command).substitute({k: str(v) for k, v in params.items()})
    except KeyError as exc:
        raise SpecError(
            f"{where}: parameter {exc.args[0]} is not defined in inputs.parameters",
            hint="define it, or write $$ for a literal $ (shell variables: $${HOME})",
        ) from None
    except ValueError as exc:
        raise SpecError(f"{where}: bad $ placeholder in {command!r}: {exc}") from None


def validate(analysis: Analysis) -> list[Finding]:
    """Every problem found without running anything; errors first."""
    findings: list[Finding] = []
    if analysis.reana is not None:
        findings += _schema_findings(analysis.reana, REANA_SCHEMA, "reana.yaml", draft7=True)
    if analysis.manifest_path is not None:
        findings += _schema_findings(analysis.manifest, ODRUN_SCHEMA, "odrun.yaml", draft7=False)
    if analysis.reana is not None and not any(f.level == "error" for f in findings):
        findings += _static_checks(analysis)  # they assume the schema holds
    if not any(f.level == "error" for f in findings):
        findings += _reference_checks(analysis)
    return sorted(findings, key=lambda f: f.level != "error")


def _schema_findings(doc: dict[str, Any], name: str, label: str, draft7: bool) -> list[Finding]:
    schema = load_spec(name)
    cls = jsonschema.Draft7Validator if draft7 else jsonschema.Draft202012Validator
    out = []
    for err in sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = label + "".join(
            f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path
        )
        level = "warning" if err.validator == "additionalProperties" else "error"
        out.append(Finding(level, where, err.message))
    return out


def _static_checks(analysis: Analysis) -> list[Finding]:
    out = []
    params = analysis.parameters
    for i, step in enumerate(analysis.steps):
        name = step.get("name") or f"step {i + 1}"
        for command in step.get("commands") or []:
            try:
                substitute(
                    str(command),
                    dict.fromkeys(params, "") | dict.fromkeys(used_parameters(str(command)), ""),
                    name,
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
    for kind in ("files", "directories"):
        for rel in analysis.files_in("inputs", kind):
            if not _present(analysis.root / rel):
                out.append(
                    Finding(
                        "error",
                        f"reana.yaml inputs.{kind}",
                        f"{rel} does not exist in {analysis.root}",
                    )
                )
    wtype = analysis.workflow_type
    if wtype in ("cwl", "yadage"):
        out.append(
            Finding(
                "warning", "reana.yaml workflow.type", f"{wtype} runs only on REANA (odrun submit)"
            )
        )
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
        for key, want in (item.get("histograms") or {}).items():
            ref = str(want["reference"]).partition("#")[0]
            path = Path(ref)
            if path.is_absolute() or ".." in path.parts:
                problem = f"reference {ref} must be a path inside the analysis folder"
            elif not _present(analysis.root / path, file=True):
                problem = f"reference {ref} does not exist in {analysis.root}"
            else:
                continue
            out.append(Finding("error", f"odrun.yaml expect[{i}].histograms.{key}", problem))
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
