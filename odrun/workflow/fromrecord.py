"""``odrun run DOI``: fetch the analysis a record ships, so it can run like a local folder.

A record ships an analysis when its files include a ``reana.yaml`` / ``odrun.yaml``
(the record's files are then the analysis folder) or a code archive
(``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``), which is unpacked safely.
"""

from __future__ import annotations

import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from odrun.errors import MetadataError, NotFoundError
from odrun.records import Resolver
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer.fetch import Fetcher, fetch_error

SPEC_NAMES = ("reana.yaml", "reana.yml", "odrun.yaml")
#: what tarfile and zipfile raise on a corrupt or hostile archive: bad headers, bad
#: compressed data, encrypted members (RuntimeError), unknown compression methods
#: (NotImplementedError), members that clash with each other on disk (OSError)
_UNREADABLE = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    zlib.error,
    lzma.LZMAError,
)
ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")


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
    with Fetcher(settings) as fetcher:

        def get(files: list[RecordFile]) -> None:
            report = fetcher.fetch_files(files, folder, recid=record.recid)
            error = fetch_error(report)
            if error is not None:
                raise error

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
            get(archives)
    if not specs:
        for archive in archives:
            unpack_archive(folder / archive.path, folder)
    found = sorted(p.parent for name in SPEC_NAMES for p in folder.rglob(name))
    if not found:
        raise NotFoundError(f"record {record.recid}: its archive holds no reana.yaml or odrun.yaml")
    return min(found, key=lambda p: len(p.parts))


def _named_inputs(folder: Path) -> set[str]:
    """Files and folders (with a trailing /) the fetched reana.yaml says the analysis needs."""
    from odrun.workflow.spec import load_analysis  # noqa: PLC0415 - cycle

    analysis = load_analysis(folder)
    names = set(analysis.files_in("inputs", "files"))
    names |= {d.rstrip("/") + "/" for d in analysis.files_in("inputs", "directories")}
    workflow = (analysis.reana or {}).get("workflow", {}) if analysis.reana else {}
    for extra in (workflow.get("file"), analysis.parameters.get("input")):
        if isinstance(extra, str):
            names.add(extra)
    return names


def unpack_archive(archive: Path, dest: Path) -> None:
    """Unpack a record's code archive into ``dest``; MetadataError for anything unreadable."""
    try:
        _unpack(archive, dest)
    except _UNREADABLE as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MetadataError(f"cannot unpack {archive.name}: {detail}") from None


def _unpack(archive: Path, dest: Path) -> None:
    """Unpack without letting a member escape ``dest`` (no absolute paths, no ``..``, no links)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_member(name, archive)
            zf.extractall(dest)
        return
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            _check_member(member.name, archive)
            if member.issym() or member.islnk() or member.isdev():
                raise MetadataError(f"{archive.name}: member {member.name} is a link or device")
        if hasattr(tarfile, "data_filter"):  # 3.11.4+, 3.10.12+: the safe extraction filter
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - members checked above
            tf.extractall(dest)


def _check_member(name: str, archive: Path) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise MetadataError(f"{archive.name}: member {name!r} would escape the folder")
