"""Write a ``file://`` portal mirror: one ``<recid>.json`` per record, as the API serves it.

Raw ``index.json``/``index.txt`` entries are replaced by ``_file_indices`` with
their entries expanded, so a mirror answers without any network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import atomic_write
from .model import Record
from .parse import INDEX_TYPES
from .resolve import Resolved, Resolver


@dataclass(frozen=True)
class MirrorEntry:
    recid: str
    path: Path
    file_count: int
    files_complete: bool


def mirror_document(resolved: Resolved) -> dict[str, Any]:
    """The API document of a record with every available file index expanded."""
    doc: dict[str, Any] = json.loads(json.dumps(resolved.document))  # deep copy
    meta = doc.setdefault("metadata", {}) if "metadata" in doc else doc
    record: Record = resolved.record
    by_index: dict[str, list[dict[str, Any]]] = {}
    for f in record.files:
        if f.index is not None:
            by_index.setdefault(f.index, []).append(
                {
                    "checksum": str(f.checksum) if f.checksum else None,
                    "filename": f.filename,
                    "size": f.size,
                    "uri": f.uri,
                }
            )
    indices = []
    for index in record.indices:
        entry: dict[str, Any] = {"key": index.name, "description": index.name}
        if index.uri:
            entry["uri"] = index.uri
        if index.available:
            files = by_index.get(index.name, [])
            entry.update(
                number_files=len(files), size=sum(f["size"] or 0 for f in files), files=files
            )
        indices.append(entry)
    meta["_file_indices"] = indices
    files = meta.get("files") or []
    meta["files"] = [f for f in files if f.get("type") not in INDEX_TYPES]
    return doc


def write_mirror(targets: Iterable[str], dest: Path, resolver: Resolver) -> Iterator[MirrorEntry]:
    """Resolve each target and write ``dest/<recid>.json``; yields one entry per record."""
    dest.mkdir(parents=True, exist_ok=True)
    for target in targets:
        resolved = resolver.resolve_full(target)
        path = dest / f"{resolved.record.recid}.json"
        data = json.dumps(mirror_document(resolved), indent=1, ensure_ascii=False)
        atomic_write(path, data.encode() + b"\n")
        yield MirrorEntry(
            resolved.record.recid, path, resolved.record.file_count, resolved.record.files_complete
        )
