"""Write a ``file://`` portal mirror: one ``<recid>.json`` per record, as the API serves it.

Raw ``index.json``/``index.txt`` entries are replaced by ``_file_indices`` with
their entries expanded, so a mirror answers without any network. With files
(``--with-files``), each record's files are fetched (verified, through the
cache) to ``files/<recid>/<path>`` and the record's URIs point at them as
relative ``file:files/...`` URIs, so the mirror can be moved or copied to an
air-gapped machine; the original URI is kept as ``original_uri``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from odrun._fs import atomic_write
from odrun.records.model import Record
from odrun.records.parse import INDEX_TYPES
from odrun.records.resolve import Resolved, Resolver
from odrun.transfer.fetch import Fetcher, FetchReport, Progress, State

LOCAL = (State.DOWNLOADED, State.CACHED, State.PRESENT)


@dataclass(frozen=True)
class MirrorEntry:
    recid: str
    path: Path
    file_count: int
    files_complete: bool
    #: the fetch of the record's files, with --with-files
    report: FetchReport | None = None


def mirror_document(resolved: Resolved, local: dict[str, str] | None = None) -> dict[str, Any]:
    """The API document of a record with every available file index expanded.

    ``local`` maps original URIs to the mirror-relative URIs that replace them.
    """
    local = local or {}

    def uri_fields(uri: str) -> dict[str, str]:
        return {"uri": local[uri], "original_uri": uri} if uri in local else {"uri": uri}

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
                    **uri_fields(f.uri),
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
    meta["files"] = [
        dict(f, **uri_fields(f["uri"])) if f.get("uri") in local else f
        for f in files
        if f.get("type") not in INDEX_TYPES
    ]
    return doc


def write_mirror(
    targets: Iterable[str],
    dest: Path,
    resolver: Resolver,
    fetcher: Fetcher | None = None,
    *,
    jobs: int = 4,
    progress: Progress | None = None,
) -> Iterator[MirrorEntry]:
    """Resolve each target and write ``dest/<recid>.json``; yields one entry per record.

    With a ``fetcher`` the record's files are fetched into ``dest/files/<recid>/``
    first; files that could not be fetched keep their remote URI.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for target in targets:
        resolved = resolver.resolve_full(target)
        record = resolved.record
        report = None
        local: dict[str, str] = {}
        if fetcher is not None:
            folder = Path("files") / record.recid
            report = fetcher.fetch_files(
                record.files, dest / folder, jobs=jobs, progress=progress, recid=record.recid
            )
            local = {
                r.uri: "file:" + quote((folder / r.path).as_posix())
                for r in report.results
                if r.state in LOCAL
            }
        path = dest / f"{record.recid}.json"
        data = json.dumps(mirror_document(resolved, local), indent=1, ensure_ascii=False)
        atomic_write(path, data.encode() + b"\n")
        yield MirrorEntry(record.recid, path, record.file_count, record.files_complete, report)
