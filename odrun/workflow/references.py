"""HEPData tables as histogram references of expectations, and their pins in the lock.

An expectation's ``reference`` is a HEPData table when it starts with ``hepdata:``
(``hepdata:ins1234567/Table 3@1`` on HEPData, ``hepdata:reference/table.yaml`` a file
in the analysis folder) or carries ``format: hepdata``. ``dependent`` (a name or an
index) and ``qualifiers`` (``{name: value}``) choose the dependent variable, ``errors``
the uncertainty (``total``, the default, all sources in quadrature; or one label).
See :mod:`odrun.hepdata.table` for the mapping.

``covariance`` names the reference's covariance (or correlation) matrix, a HEPData table
of its own (:mod:`odrun.hepdata.matrix`): a reference string, or a mapping with
``reference``, ``kind`` (``covariance``, the default, or ``correlation``), ``dependent``,
``qualifiers`` and ``index_base``. The chi2 test then treats the bins as correlated.
Remote matrix tables are pinned in the lock like the references.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from odrun.errors import HistogramError, OdrunError
from odrun.hepdata import (
    HepdataClient,
    TablePin,
    is_hepdata,
    is_remote,
    load_reference,
    parse_ref,
    to_bins,
)
from odrun.hepdata.matrix import Matrix, to_matrix
from odrun.settings import Settings
from odrun.workflow.histograms import Histogram


def uses_hepdata(want: dict[str, Any]) -> bool:
    return is_hepdata(str(want.get("reference", "")), want.get("format"))


def hepdata_histogram(
    want: dict[str, Any],
    base: Path,
    settings: Settings | None = None,
    versions: Mapping[str, TablePin | int] | None = None,
) -> tuple[Histogram, str]:
    """The reference histogram a HEPData expectation names, and where it came from
    (HistogramError with the reason when it cannot be had); ``versions`` are the table
    versions a run pinned (:func:`pinned_versions`)."""
    reference = str(want["reference"])
    try:
        opened = load_reference(reference, base, settings, versions=versions)
        bins = to_bins(
            opened.table,
            want.get("dependent"),
            want.get("errors", "total"),
            want.get("qualifiers") or {},
        )
    except OdrunError as exc:
        raise HistogramError(f"reference {reference}: {exc}") from None
    errors = tuple((d + u) / 2 for d, u in zip(bins.down, bins.up, strict=True))
    asym = None if bins.symmetric else tuple(zip(bins.down, bins.up, strict=True))
    histogram = Histogram(bins.edges, bins.values, errors, asym)
    return histogram, f"{opened.label}: {bins.described}"


def matrix_spec(want: dict[str, Any]) -> dict[str, Any] | None:
    """The expectation's ``covariance`` as a mapping (``{reference, kind, ...}``), or None."""
    raw = want.get("covariance")
    if raw is None:
        return None
    if isinstance(raw, str):
        return {"reference": raw}
    if isinstance(raw, dict) and isinstance(raw.get("reference"), str):
        return raw
    raise HistogramError(
        "covariance must be a HEPData table reference (hepdata:ins…/Table or hepdata:<file>) "
        "or a mapping with one under reference"
    )


def hepdata_matrix(
    want: dict[str, Any],
    edges: tuple[float, ...],
    base: Path,
    settings: Settings | None = None,
    versions: Mapping[str, TablePin | int] | None = None,
) -> Matrix | None:
    """The covariance/correlation matrix the expectation names over the reference's bins
    ``edges`` (None without ``covariance``; HistogramError with the reason when it cannot
    be had)."""
    spec = matrix_spec(want)
    if spec is None:
        return None
    reference = spec["reference"]
    if not reference.startswith("hepdata:"):
        reference = f"hepdata:{reference}"
    try:
        opened = load_reference(reference, base, settings, versions=versions)
        return to_matrix(
            opened.table,
            edges,
            str(spec.get("kind", "covariance")),
            spec.get("dependent"),
            spec.get("qualifiers") or {},
            spec.get("index_base"),
        )
    except OdrunError as exc:
        raise HistogramError(f"covariance {spec['reference']}: {exc}") from None


def remote_references(expectations: Iterable[dict[str, Any]]) -> list[str]:
    """The ``hepdata:ins…`` references of the expectations' histograms and of their
    covariance matrices, in order, once."""
    found: list[str] = []
    for item in expectations:
        for want in (item.get("histograms") or {}).values():
            if not isinstance(want, dict):
                continue
            matrix = want.get("covariance")
            if isinstance(matrix, dict):
                matrix = matrix.get("reference")
            for reference in (want.get("reference"), matrix):
                if isinstance(reference, str) and is_remote(reference) and reference not in found:
                    found.append(reference)
    return found


def hepdata_pins(
    expectations: Iterable[dict[str, Any]], settings: Settings
) -> list[dict[str, Any]]:
    """Resolve (download and cache) every HEPData table the expectations name: the lock's
    ``hepdata`` entries, sorted. Raises OdrunError when one cannot be had."""
    references = remote_references(expectations)
    if not references:
        return []
    pins = []
    with HepdataClient(settings) as client:
        for reference in references:
            resolved = client.fetch(parse_ref(reference))
            resolved.table()  # parses, or HepdataError before anything runs
            pins.append(resolved.pin())
    return sorted(pins, key=lambda p: (p["reference"], p["version"]))


def pinned_versions(pins: Iterable[Any]) -> dict[str, TablePin]:
    """``ins…/Table`` -> :class:`~odrun.hepdata.TablePin` (version and sha256) from a
    lock's ``hepdata`` entries (malformed ones skipped): a run is judged against the table
    versions it pinned, even after HEPData publishes new ones, and against the very bytes
    it pinned (other bytes for that version are refused)."""
    out: dict[str, TablePin] = {}
    for pin in pins:
        if isinstance(pin, dict) and isinstance(pin.get("reference"), str):
            version, sha256 = pin.get("version"), pin.get("sha256")
            if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
                digest = sha256 if isinstance(sha256, str) and sha256 else None
                out[pin["reference"]] = TablePin(version, digest)
    return out


__all__ = [
    "hepdata_histogram",
    "hepdata_matrix",
    "hepdata_pins",
    "matrix_spec",
    "pinned_versions",
    "remote_references",
    "uses_hepdata",
]
