"""Turn a portal API document (``GET /api/records/<recid>``) into a :class:`Record`.

The portal's JSON is untrusted, messy input. This module is the only place that
reads it: it tolerates the known irregularities (string or list fields, missing
distribution numbers, checksum spellings) and rejects what would be unsafe (file
names escaping a folder, URIs with unexpected schemes).

File indices come in two shapes: already expanded by the API into
``metadata._file_indices[].files``, or as raw ``index.json`` / ``index.txt``
entries in ``metadata.files``; the latter are read through ``load_index``.

Every file gets a distinct download path (``RecordFile.path``), never one for two:

1. its name (``filename``, else the URI's base name) when all names differ, also
   ignoring case (so that a case-insensitive filesystem keeps them apart too);
2. else the URI's folder layout below the deepest folder all files share
   (``0001/AO2D.root``, ``0002/AO2D.root``);
3. two entries still on one path are the same file listed twice (e.g. by
   ``root://`` and ``https://``) when both declare the same size and checksum:
   the first is kept; otherwise, and when a path would be both a file and the
   folder of another (``x`` and ``x/y``), the record is refused with a
   MetadataError naming both URIs: there is no name to give either without
   guessing. Paths differing only in case are kept (they are distinct on the
   server); ``fetch`` refuses the second on a case-insensitive destination.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from odrun import untrusted
from odrun._fs import confine
from odrun.checksum import Checksum, parse_checksum
from odrun.errors import MetadataError, OdrunError, UnsafeMetadataError
from odrun.urls import REMOTE_SCHEMES, scheme_of

from .model import ContainerImage, Environment, FileIndex, Record, RecordFile
from .paths import PathClaims
from .refs import is_recid

#: reads the bytes of a raw index file entry; raises OdrunError when unavailable
IndexLoader = Callable[[Mapping[str, Any]], bytes]

INDEX_TYPES = ("index.json", "index.txt")


def parse_record(
    doc: Mapping[str, Any],
    *,
    portal_url: str | None = None,
    load_index: IndexLoader | None = None,
    local_root: Path | None = None,
) -> Record:
    """Build a :class:`Record` from an API envelope (or a bare metadata document)."""
    meta = doc.get("metadata", doc) if isinstance(doc, Mapping) else None
    if not isinstance(meta, Mapping):
        raise MetadataError("record document has no 'metadata' object")
    recid = _text(meta.get("recid")) or _text(doc.get("id"))
    if not recid:
        raise MetadataError("record document has no recid")
    if not is_recid(recid):
        # the recid names folders (fetch's default destination, mirror files)
        raise UnsafeMetadataError(
            f"record document has recid {recid[:80]!r}: expected digits or <experiment>-<digits>"
        )
    checker = _Checker(recid, local_root)

    # (index name or None, its entries): direct files first, then each index's
    direct: list[Mapping[str, Any]] = []
    groups: list[tuple[str | None, list[Mapping[str, Any]]]] = [(None, direct)]
    indices: list[FileIndex] = []
    raw_files = _list(meta.get("files"), f"record {recid} 'files'")
    expanded_names = set()
    for idx in _list(meta.get("_file_indices"), f"record {recid} '_file_indices'"):
        name = _index_name(_text(idx.get("key")) or _text(idx.get("description")) or "index")
        expanded_names.add(name)
        files = idx.get("files")
        indices.append(
            FileIndex(
                name=name,
                uri=_text(idx.get("uri")),
                declared_files=_int(idx.get("number_files")),
                declared_size=_int(idx.get("size")),
                available=isinstance(files, list),
                reason=None if isinstance(files, list) else "the portal listed no entries",
            )
        )
        if isinstance(files, list):
            groups.append((name, _list(files, f"index {name}")))

    json_stems = {
        _index_name(_basename(_text(f.get("uri")) or ""))
        for f in raw_files
        if f.get("type") == "index.json"
    }
    for raw in raw_files:
        kind = raw.get("type")
        if kind not in INDEX_TYPES:
            direct.append(raw)
            continue
        uri = _text(raw.get("uri")) or ""
        name = _index_name(_basename(uri))
        if name in expanded_names or (kind == "index.txt" and name in json_stems):
            continue  # the same index in another form
        checker.uri(uri)
        try:
            if load_index is None:
                raise MetadataError("the record lists a raw file index and no loader was given")
            items = _parse_index(load_index(raw), kind, name)
        except OdrunError as exc:
            indices.append(_index_entry(raw, name, available=False, reason=str(exc)))
            continue
        indices.append(_index_entry(raw, name, available=True, reason=None))
        groups.append((name, items))

    files = _build_files(groups, checker)
    dist_value = meta.get("distribution")
    dist: Mapping[str, Any] = dist_value if isinstance(dist_value, Mapping) else {}
    declared_count, declared_size = _int(dist.get("number_files")), _int(dist.get("size"))
    notes = []
    complete = all(index.available for index in indices)
    if complete and declared_count is not None and declared_count != len(files):
        notes.append(f"record declares {declared_count} files but lists {len(files)}")
    collision = meta.get("collision_information") or {}
    rtype = meta.get("type") or {}
    license_ = meta.get("license")
    return Record(
        recid=recid,
        doi=_text(meta.get("doi")) or None,
        title=_text(meta.get("title")) or "(untitled)",
        experiments=_strings(meta.get("experiment")),
        type_primary=_text(rtype.get("primary")) if isinstance(rtype, Mapping) else None,
        type_secondary=_strings(rtype.get("secondary")) if isinstance(rtype, Mapping) else (),
        files=files,
        indices=tuple(indices),
        collision_energy=_text(collision.get("energy")) if isinstance(collision, Mapping) else None,
        collision_type=_text(collision.get("type")) if isinstance(collision, Mapping) else None,
        years=_strings(meta.get("date_created")),
        date_published=_text(meta.get("date_published")),
        license=_text(license_.get("attribution")) if isinstance(license_, Mapping) else None,
        authors=tuple(
            author
            for a in _list(meta.get("authors"), "authors")
            if (author := _text(a.get("name")))
        ),
        collaboration=_nested_text(meta.get("collaboration"), "name"),
        publisher=_text(meta.get("publisher")),
        environment=_environment(meta.get("system_details")),
        source_code_url=_nested_text(meta.get("source_code_repository"), "url"),
        declared_file_count=declared_count,
        declared_size=declared_size,
        revision=_int(doc.get("revision")),
        updated=_text(doc.get("updated")),
        portal_url=portal_url,
        notes=tuple(notes),
    )


class _Checker:
    """Rejects URIs and names that are unsafe to act on.

    ``file:`` URIs are accepted only from a local mirror (``local_root``); a
    relative one (``file:files/1/x.root``) is resolved against the mirror folder,
    so a mirror keeps working when it is moved.
    """

    def __init__(self, recid: str, local_root: Path | None) -> None:
        self.recid = recid
        self.local_root = local_root
        self.allowed = REMOTE_SCHEMES

    def _mirror_file(self, uri: str) -> str:
        """A mirror's ``file:files/...`` URI as an absolute one, if it stays inside the mirror."""
        assert self.local_root is not None
        rel = unquote(uri[len("file:") :])
        root = self.local_root.resolve()
        try:
            target = confine(root, self.relpath(rel, uri), f"record {self.recid}: file URI")
        except UnsafeMetadataError:
            raise UnsafeMetadataError(
                f"record {self.recid}: file URI {uri!r} points outside the mirror {root}; "
                "a mirror may only use relative file:files/... URIs"
            ) from None
        return target.as_uri()

    def uri(self, uri: str) -> str:
        if self.local_root and uri.startswith("file:"):
            return self._mirror_file(uri)
        scheme = scheme_of(uri)
        if not uri or scheme not in self.allowed:
            raise UnsafeMetadataError(
                f"record {self.recid}: file URI {uri!r} has scheme {scheme or 'none'!r}; "
                f"expected one of {', '.join(sorted(self.allowed))}"
            )
        return uri

    def relpath(self, path: str, uri: str, *, plain: bool = False) -> str:
        if (
            plain
            and path.isascii()
            and path not in ("", ".", "..")
            and "/" not in path
            and "\\" not in path
            and "\x00" not in path
        ):
            return path  # a plain ASCII name (the common case, once per file): fast path
        parts = path.split("/")
        if (
            not path
            or (plain and len(parts) > 1)
            or path.startswith("/")
            or "\\" in path
            or "\x00" in path
            or not _encodable(path)
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise UnsafeMetadataError(
                f"record {self.recid}: file name {path!r} (from {uri}) would escape the "
                "download folder; refusing this record's metadata"
            )
        return path


def _encodable(path: str) -> bool:
    """False for names no file system takes (lone surrogates from JSON ``\\ud800`` escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_distinct(files: tuple[RecordFile, ...], recid: str) -> None:
    """Two different files must never be saved to one path (the second would overwrite)."""
    owner: dict[str, str] = {}
    for f in files:
        if owner.setdefault(f.path, f.uri) != f.uri:
            raise MetadataError(
                f"record {recid}: files {owner[f.path]} and {f.uri} would both be saved as "
                f"{f.path!r}; refusing this record's metadata"
            )


def _build_files(
    groups: list[tuple[str | None, list[Mapping[str, Any]]]], checker: _Checker
) -> tuple[RecordFile, ...]:
    prepared = []
    seen: set[str] = set()
    for index, raw in ((name, raw) for name, items in groups for raw in items):
        uri = checker.uri(_text(raw.get("uri")) or "")
        if uri in seen:
            continue  # the same file listed twice (e.g. in two indices): keep it once
        seen.add(uri)
        filename = _text(raw.get("filename")) or _basename(uri)
        checker.relpath(filename, uri, plain=True)
        checksum = _checksum(raw.get("checksum"), checker.recid, uri)
        prepared.append((uri, _int(raw.get("size")), checksum, filename, index))
    names = [p[3] for p in prepared]
    if len({name.casefold() for name in names}) == len(names):
        # names checked plain (no "/") and distinct even ignoring case: each is its own
        # path, no two alike, none another's folder (what _distinct would find)
        return tuple(
            RecordFile(uri, size, checksum, filename, filename, index)
            for uri, size, checksum, filename, index in prepared
        )
    # names collide (e.g. every ALICE file is AO2D.root): keep the URI layout
    # below the deepest folder all files share
    dirs = [_uri_path(p[0]) for p in prepared]
    common = posixpath.commonpath(["/" + posixpath.dirname(d) for d in dirs])
    paths = [
        posixpath.relpath("/" + posixpath.dirname(d), common) + "/" + p[3]
        if posixpath.dirname(d)
        else p[3]
        for d, p in zip(dirs, prepared, strict=True)
    ]
    paths = [p.removeprefix("./") for p in paths]
    files = [
        RecordFile(uri, size, checksum, filename, checker.relpath(path, uri), index)
        for (uri, size, checksum, filename, index), path in zip(prepared, paths, strict=True)
    ]
    kept = _distinct(files, checker.recid)
    _check_distinct(kept, checker.recid)
    return kept


def _distinct(files: list[RecordFile], recid: str) -> tuple[RecordFile, ...]:
    """Keep one of a file listed twice on one path; refuse two files on one path."""
    claims = PathClaims()
    by_path: dict[str, RecordFile] = {}
    kept = []
    for f in files:
        owner = claims.claim(f.path, f.uri)
        if owner is None:
            by_path[f.path] = f
            kept.append(f)
            continue
        first = by_path.get(owner[0])
        if (
            first is not None
            and first.path == f.path
            and f.checksum is not None
            and (first.size, first.checksum) == (f.size, f.checksum)
        ):
            continue  # the same bytes listed under two URIs: one file
        if owner[0] == f.path:
            raise MetadataError(
                f"record {recid}: files {owner[1]} and {f.uri} would both be saved as "
                f"{f.path}; refusing a file list that would overwrite one with the other"
            )
        raise MetadataError(
            f"record {recid}: {min(owner[0], f.path, key=len)} would be both a file and a "
            f"folder ({owner[1]} and {f.uri}); refusing this file list"
        )
    return tuple(kept)


def _parse_index(data: bytes, kind: str, name: str) -> list[Mapping[str, Any]]:
    try:
        if kind == "index.txt":
            return [{"uri": line.strip()} for line in data.decode().splitlines() if line.strip()]
        items = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MetadataError(f"file index {name} is not valid {kind}: {exc}") from None
    if isinstance(items, Mapping) and isinstance(items.get("files"), list):
        items = items["files"]  # the portal's /file_index/ form
    return _list(items, f"file index {name}")


def _index_entry(
    raw: Mapping[str, Any], name: str, *, available: bool, reason: str | None
) -> FileIndex:
    return FileIndex(
        name=name,
        uri=_text(raw.get("uri")),
        declared_files=None,
        declared_size=None,
        available=available,
        reason=reason,
    )


def _checksum(value: Any, recid: str, uri: str) -> Checksum | None:
    if value is None or value == "":
        return None
    where = f"record {recid}: checksum of {uri}"
    if not isinstance(value, str):
        raise MetadataError(f"{where} is a {type(value).__name__}: expected 'adler32:<hex>'")
    return parse_checksum(value, where=where)


def _environment(details: Any) -> Environment | None:
    if not isinstance(details, Mapping):
        return None
    images = tuple(
        ContainerImage(name, _text(image.get("registry")))
        for image in _list(details.get("container_images"), "container_images")
        if (name := _text(image.get("name")))
    )
    env = Environment(
        release=_text(details.get("release")),
        global_tag=_text(details.get("global_tag")),
        container_images=images,
        description=_text(details.get("description")),
        recid=_text(details.get("recid")),
    )
    return env if env != Environment() else None


def _index_name(filename: str) -> str:
    for ext in (".json", ".txt"):
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return filename


def _uri_path(uri: str) -> str:
    try:
        path = unquote(urlsplit(uri).path)
    except ValueError as exc:
        raise MetadataError(f"file URI {uri[:200]!r} is malformed: {exc}") from None
    return "/".join(part for part in path.split("/") if part)


def _basename(uri: str) -> str:
    return _uri_path(uri).rsplit("/", 1)[-1]


def _text(value: Any) -> str | None:
    return untrusted.text(value)


def _nested_text(value: Any, key: str) -> str | None:
    return _text(value.get(key)) if isinstance(value, Mapping) else None


def _int(value: Any) -> int | None:
    return untrusted.count(value)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        return tuple(t for v in value if (t := _text(v)))
    return ()


def _list(value: Any, what: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise MetadataError(f"{what} is not a list of objects")
    return value
