"""``odrun run DOI``: fetch the analysis a record ships, so it can run like a local folder.

A record ships an analysis when its files include a ``reana.yaml`` / ``odrun.yaml``
(the record's files are then the analysis folder) or a code archive
(``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``), fetched into ``record-<recid>/.odrun/``
and unpacked into ``record-<recid>/`` by :mod:`odrun.workflow.unpack` (confined,
never through an existing file, within size/ratio/member limits). Both are untrusted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from odrun._fs import atomic_write, confine, detach
from odrun.errors import NotFoundError
from odrun.records import Resolver
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer.fetch import Fetcher, fetch_error
from odrun.workflow.spec import load_analysis
from odrun.workflow.unpack import Limits, unpack

SPEC_NAMES = ("reana.yaml", "reana.yml", "odrun.yaml")
ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")
#: where code archives are fetched (private copies), out of their members' reach
ARCHIVE_DIR = ".odrun"
#: in ``record-<recid>/.odrun/``: this folder holds a record's analysis (untrusted), written
#: before anything of the record, which can add files but never remove one
ORIGIN = "from-record.json"


def fetch_analysis(
    target: str, settings: Settings, dest_root: Path, say: Callable[[str], None]
) -> Path:
    """Fetch the record's analysis under ``dest_root/record-<recid>``; return its folder."""
    with Resolver(settings) as resolver:
        record = resolver.resolve(target)
    direct = [f for f in record.files if f.index is None]
    specs = [f for f in direct if f.filename in SPEC_NAMES]
    archives = [f for f in direct if f.filename.endswith(ARCHIVES)]
    if not specs and not archives:
        hint = (
            f"its code is at {record.source_code_url}: clone it and run odrun run FOLDER"
            if record.source_code_url
            else "give a folder holding reana.yaml/odrun.yaml instead"
        )
        raise NotFoundError(
            f"record {record.recid} ships no analysis: none of its {len(direct)} files is a "
            "reana.yaml, odrun.yaml or code archive",
            hint=hint,
        )
    folder = dest_root / f"record-{record.recid}"
    private = folder / ARCHIVE_DIR  # the archives, apart from what they unpack to
    private.mkdir(parents=True, exist_ok=True)
    origin = {"recid": record.recid, "target": target}
    atomic_write(private / ORIGIN, (json.dumps(origin, sort_keys=True) + "\n").encode())
    with Fetcher(settings) as fetcher:

        def get(files: list[RecordFile], dest: Path = folder) -> None:
            report = fetcher.fetch_files(files, dest, recid=record.recid)
            error = fetch_error(report)
            if error is not None:
                raise error
            for f in files:  # private copies: no step can write through them into the cache
                detach(dest / f.path)

        if specs:
            # the specs first, then only the files they name: a record may also hold data
            get(specs)
            needed = _named_inputs(folder)
            folders = tuple(d for d in needed if d.endswith("/"))
            rest = [
                f for f in direct
                if f not in specs and (f.path in needed or f.path.startswith(folders))
            ]  # fmt: skip
            say(f"fetched the analysis of record {record.recid}: {len(specs) + len(rest)} files")
            get(rest)
        else:
            say(f"fetching the code archive of record {record.recid} into {folder}")
            get(archives, private)
    if not specs:
        for archive in archives:
            unpack_archive(confine(private, archive.path, "archive"), folder, settings)
    found = sorted(
        p.parent
        for name in SPEC_NAMES
        for p in folder.rglob(name)
        if ARCHIVE_DIR not in p.relative_to(folder).parts
    )
    if not found:
        raise NotFoundError(f"record {record.recid}: its archive holds no reana.yaml or odrun.yaml")
    return min(found, key=lambda p: len(p.parts))


def record_origin(path: Path) -> str | None:
    """The record an analysis folder (or a spec file in it) was fetched from by
    :func:`fetch_analysis` (``record-<recid>/.odrun/from-record.json`` in it or a folder
    above it), or None: an analysis from a record stays untrusted when it is named by its
    folder (``odrun run record-N/``, ``odrun submit record-N/``)."""
    start = path.resolve()
    for folder in ([start] if start.is_dir() else []) + list(start.parents):
        marker = folder / ARCHIVE_DIR / ORIGIN
        if marker.is_file():
            return folder.name
    return None


def _named_inputs(folder: Path) -> set[str]:
    """Files and folders (with a trailing /) the fetched reana.yaml says the analysis needs."""
    analysis = load_analysis(folder)
    names = set(analysis.files_in("inputs", "files"))
    names |= {d.rstrip("/") + "/" for d in analysis.files_in("inputs", "directories")}
    workflow = (analysis.reana or {}).get("workflow", {}) if analysis.reana else {}
    for extra in (workflow.get("file"), analysis.parameters.get("input")):
        if isinstance(extra, str):
            names.add(extra)
    return names


def unpack_archive(archive: Path, dest: Path, settings: Settings | None = None) -> None:
    """Unpack a record's code archive into ``dest`` with the rules and limits of
    :mod:`odrun.workflow.unpack`; MetadataError (exit 9) for anything unreadable or unsafe."""
    limits = Limits.of(settings or Settings())
    unpack(archive, dest, limits, dest / ARCHIVE_DIR)
