"""HEPData tables as references: the API client (:mod:`odrun.hepdata.client`) and the
table format with its mapping to bins (:mod:`odrun.hepdata.table`).

:func:`load_reference` opens what an expectation's ``reference`` names: a table on
HEPData (``hepdata:ins1234567/Table 3@1``) or a HEPData YAML/JSON table file in the
analysis folder (``hepdata:reference/table.yaml``, or a plain path with
``format: hepdata``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from odrun._fs import confine
from odrun.errors import HepdataError
from odrun.hepdata.client import (
    PREFIX,
    HepdataClient,
    ResolvedTable,
    TablePin,
    TableRef,
    is_remote,
    parse_ref,
)
from odrun.hepdata.table import Bins, Table, parse_table, to_bins
from odrun.settings import Settings

#: the file size a local table may have (the YAML loader's own limit is 16 MiB)
MAX_LOCAL_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Reference:
    """An opened table, and (for a HEPData table) the version and checksum it was."""

    table: Table
    resolved: ResolvedTable | None = None
    label: str = ""


def is_hepdata(reference: str, fmt: object = None) -> bool:
    """The expectation's reference is a HEPData table (``hepdata:`` or ``format: hepdata``)."""
    return reference.startswith(PREFIX) or fmt == "hepdata"


def read_local(path: Path, label: str) -> Table:
    """A HEPData table file (``.json`` is JSON, anything else YAML)."""
    try:
        if path.stat().st_size > MAX_LOCAL_BYTES:
            raise HepdataError(f"HEPData table {label} is larger than {MAX_LOCAL_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise HepdataError(f"HEPData table {label} cannot be read: {exc.strerror or exc}") from None
    return parse_table(data, label, "json" if path.suffix.lower() == ".json" else "yaml")


def _pin(value: object) -> TablePin | None:
    if isinstance(value, TablePin):
        return value if value.version >= 1 else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return TablePin(value)
    return None


def load_reference(
    reference: str,
    base: Path,
    settings: Settings | None = None,
    client: HepdataClient | None = None,
    versions: Mapping[str, TablePin | int] | None = None,
) -> Reference:
    """Open ``reference``: remote (through ``client``, else one made from ``settings``) or
    a file under ``base``. A remote reference without ``@version`` takes its version from
    ``versions`` (``ins…/Table`` -> :class:`TablePin` or version: a run's lock pins) when
    it is there, else the record's current one; a pinned sha256 must then be the bytes'
    (HepdataError otherwise: the server changed a published version, and the run is never
    judged against other bytes than it pinned). OdrunError (HepdataError, NotFoundError,
    TransportError, ...) names what failed."""
    if is_remote(reference):
        ref = parse_ref(reference)
        pin = _pin((versions or {}).get(ref.unversioned))
        if pin is not None and ref.version is None:
            ref = TableRef(ref.inspire, ref.table, pin.version)
        if client is not None:
            resolved = client.fetch(ref)
        else:
            with HepdataClient(settings or Settings.load()) as own:
                resolved = own.fetch(ref)
        if (
            pin is not None
            and pin.sha256 is not None
            and resolved.version == pin.version
            and resolved.sha256 != pin.sha256
        ):
            raise HepdataError(
                f"HEPData table {resolved.pinned} is not the table this run pinned: "
                f"sha256 {resolved.sha256[:16]}…, the lock has {pin.sha256[:16]}… "
                "(the server changed a published version)",
                hint="compare against the pinned bytes, or run again to pin the new ones",
            )
        return Reference(resolved.table(), resolved, f"hepdata:{resolved.pinned}")
    rel = reference[len(PREFIX) :] if reference.startswith(PREFIX) else reference
    path = confine(base, rel, "HEPData table", error=HepdataError)
    if not path.is_file():
        raise HepdataError(f"HEPData table {rel} not found in {base}")
    return Reference(read_local(path, rel), None, rel)


__all__ = [
    "PREFIX",
    "Bins",
    "HepdataClient",
    "Reference",
    "ResolvedTable",
    "Table",
    "TablePin",
    "TableRef",
    "is_hepdata",
    "is_remote",
    "load_reference",
    "parse_ref",
    "parse_table",
    "read_local",
    "to_bins",
]
