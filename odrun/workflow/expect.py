"""Check a run's outputs against odrun.yaml ``expect``: checksums, numbers, histograms.

Numbers are addressed by dotted keys: ``a.b.0`` in JSON, ``<row>.<column>`` in CSV
(rows counted from 0 after the header). Histograms are compared bin by bin with a
reference file (``reference: path[#key]``, relative to the analysis folder); see
:mod:`odrun.workflow.histograms` for the formats (JSON, CSV, ROOT via uproot).

Produces one :class:`Check` per expectation item; ``junit_xml`` renders them for CI.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from odrun import untrusted
from odrun.checksum import checksum_file, parse_checksum
from odrun.errors import MetadataError
from odrun.workflow.histograms import HistogramError, Tolerance, compare, read_histogram


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def _load_table(path: Path) -> Any:
    """JSON as is; CSV as a list of rows (dicts by header), so keys read ``<row>.<column>``."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    return untrusted.load_json(text)


def _lookup(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        index = untrusted.count(part)  # not int(): '²'.isdigit() is True
        if isinstance(doc, list) and index is not None and index < len(doc):
            doc = doc[index]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise KeyError(dotted)
    return doc


def check_value(actual: float, want: dict[str, Any]) -> tuple[bool, str]:
    value = float(want["value"])
    tol = max(float(want.get("abs", 0.0)), float(want.get("rel", 0.0)) * abs(value))
    ok = math.isfinite(actual) and abs(actual - value) <= tol
    return ok, f"{actual:g} vs expected {value:g} ± {tol:g}"


def _inside(rel: str) -> bool:
    return not Path(rel).is_absolute() and ".." not in Path(rel).parts


def check_histogram(path: Path, key: str, want: dict[str, Any], base: Path) -> tuple[bool, str]:
    """Compare the histogram ``key`` of ``path`` with ``want['reference']`` under ``base``."""
    ref_file, _, ref_key = str(want["reference"]).partition("#")
    if not _inside(ref_file):
        return False, f"reference {ref_file} is not a path inside the analysis folder"
    ref_path = base / ref_file
    if not ref_path.is_file():
        return False, f"reference {ref_file} not found in {base}"
    try:
        actual = read_histogram(path, key)
        reference = read_histogram(ref_path, ref_key or key)
    except HistogramError as exc:
        return False, str(exc)
    result = compare(actual, reference, Tolerance.of(want))
    return result.ok, result.detail


def evaluate(
    workspace: Path, expectations: list[dict[str, Any]], base: Path | None = None
) -> list[Check]:
    """One Check per expectation; histogram references are read from ``base`` (the analysis
    folder; the workspace when not given)."""
    checks: list[Check] = []
    for item in expectations:
        rel = str(item["file"])
        path = workspace / rel
        label = str(item.get("name") or rel)
        if not _inside(rel):
            checks.append(Check(label, False, f"{rel} is not a path inside the workspace"))
            continue
        if not path.is_file():
            checks.append(Check(label, False, f"{rel} was not produced"))
            continue
        if "checksum" in item:
            try:
                want = parse_checksum(str(item["checksum"]), where=f"expect {rel}")
            except MetadataError as exc:
                checks.append(Check(f"{label} checksum", False, str(exc)))
            else:
                digest = checksum_file(path, want.algorithm)
                checks.append(
                    Check(f"{label} checksum", digest == want, f"{digest} vs expected {want}")
                )
        values = item.get("values") or {}
        histograms = item.get("histograms") or {}
        if "checksum" not in item and not values and not histograms:
            checks.append(Check(label, True, f"{rel} present ({path.stat().st_size} bytes)"))
        doc: Any = None
        if values:
            try:
                doc = _load_table(path)
            except (OSError, ValueError, csv.Error) as exc:
                checks.append(Check(label, False, f"{rel} is not readable JSON/CSV: {exc}"))
                continue
        for key, want in values.items():
            try:
                actual = float(_lookup(doc, key))
            except (KeyError, TypeError, ValueError, OverflowError):
                checks.append(Check(f"{label} {key}", False, f"{key} missing or not a number"))
                continue
            ok, detail = check_value(actual, want)
            checks.append(Check(f"{label} {key}", ok, detail))
        for key, want in histograms.items():
            ok, detail = check_histogram(path, key, want, base or workspace)
            checks.append(Check(f"{label} {key}", ok, detail))
    return checks


def junit_xml(suite: str, checks: list[Check], seconds: float = 0.0) -> bytes:
    failures = sum(1 for c in checks if not c.ok)
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        time=f"{seconds:.3f}",
    )
    for check in checks:
        case = ET.SubElement(root, "testcase", classname=suite, name=check.name)
        if not check.ok:
            ET.SubElement(case, "failure", message=check.detail).text = check.detail
        else:
            ET.SubElement(case, "system-out").text = check.detail
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data
