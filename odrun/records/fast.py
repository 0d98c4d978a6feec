"""The fast path for big records: stream a document straight into a compact :class:`FileList`.

:func:`parse_streamed` reads a record document (:mod:`odrun.records.stream`) and
puts each file entry straight into columns, never holding a dict per file, so a
1,000,000-file record costs about 200 MB instead of a gigabyte. It takes only
the plain, common shape: every entry an object with a string ``root://`` or
``http(s)://`` URI whose last part is a plain ASCII name (or a plain ``filename``),
no duplicates, names distinct even ignoring case, an integer size, a canonical
checksum (``adler32:<8 hex>``, ``sha1:<40 hex>``...), and raw index files
(``index.json``/``index.txt`` in ``metadata.files``) only next to their expanded form.
For anything else it raises :class:`NeedsGeneralParserError` and the caller uses the general parser
(:func:`odrun.records.parse.parse_record`), which has the last word on every
irregularity and every error message: the fast path never decides an error.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import IO, Any

from odrun.checksum import ALGORITHMS, Checksum
from odrun.urls import REMOTE_SCHEMES

from .model import FileList, PackedStrings, Record
from .parse import INDEX_TYPES, IndexLoader, parse_record
from .stream import FILE_KEYS, load_record_document

_CHECKSUM = re.compile(r"(adler32|sha1|sha256|md5):([0-9a-f]+)")
#: bytes a plain URI never holds: controls (a batch of them is joined by "\n"), space,
#: non-URI characters, percent escapes, query, fragment, brackets
_UNPLAIN = bytes(range(33)) + b'"%<>?#[]\\^`{|}\x7f'
_SCHEMES = tuple(f"{scheme}://" for scheme in sorted(REMOTE_SCHEMES))
_ADLERS = re.compile(r"adler32:[0-9a-f]{8}(?:\nadler32:[0-9a-f]{8})*+")
_MAX_SIZE = 2**63 - 1
#: bits of the name-hash bitmap (a power of two)
_BITMAP = 1 << 26


class NeedsGeneralParserError(Exception):
    """This document needs the general parser."""


class _Placeholder(list[Any]):
    """Stands in the document for a file list whose entries went into the columns."""

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group


def _values(items: list[Any], key: str) -> list[Any]:
    """``item.get(key)`` of every item (dicts), in one C-level loop."""
    return list(map(dict.get, items, repeat(key)))


def _plain_lines(lines: str, n: int) -> bool:
    """``n`` lines of URI-safe ASCII (no newline, control, space, quote, percent, query,
    fragment, bracket or backslash inside a line)."""
    if not lines.isascii():
        return False
    data = lines.encode("ascii")
    return len(data.translate(None, _UNPLAIN)) == len(data) - (n - 1)


def _plain_tails(lines: str) -> bool:
    """No line of ``lines`` is "", "." or ".." (the last parts of URIs, one a line)."""
    return not (
        "\n\n" in lines
        or "\n.\n" in lines
        or "\n..\n" in lines
        or lines.startswith(("\n", ".\n", "..\n"))
        or lines.endswith(("\n", "\n.", "\n.."))
        or lines in ("", ".", "..")
    )


def _plain(name: str) -> bool:
    return (
        name.isascii()
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and name == name.strip()
    )


class _Columns:
    """A FileSink building the columns of a FileList; NeedsGeneralParserError if unusual."""

    def __init__(self) -> None:
        self.uris = PackedStrings()
        self.sizes: array[int] = array("q")
        self.sums: array[int] = array("I")
        self.algs = bytearray()
        self.other: dict[int, Checksum] = {}
        self.names: dict[int, str] = {}
        self.index_of: array[int] = array("I")
        #: hash of each name ignoring case
        self.hashes: array[int] = array("q")
        #: (where, first entry) of each file list, in document order
        self.groups: list[tuple[tuple[str | int, ...], int]] = []
        self.placeholder = _Placeholder(-1)
        self.raw_indices = False

    def begin(self, where: tuple[str | int, ...]) -> list[Any] | None:
        if where != ("metadata", "files") and not (
            len(where) == 4 and where[:2] == ("metadata", "_file_indices") and where[3] == "files"
        ):
            return None
        self.groups.append((where, len(self.uris)))
        self.placeholder = _Placeholder(len(self.groups) - 1)
        #: raw index files go in the document (for the general parser to see)
        self.raw_indices = where == ("metadata", "files")
        return self.placeholder

    def add_many(self, items: list[Any]) -> None:
        """Entries of the plainest shape are checked a batch at a time (C-level joins and
        regular expressions); a batch with anything else goes entry by entry (:meth:`add`).
        """
        if not items:
            return
        n = len(items)
        if not self._add_plain(items, n):
            for item in items:
                self.add(item)

    def _add_plain(self, items: list[Any], n: int) -> bool:
        """Add ``items`` if every one is of the plainest shape (what :meth:`add` would
        store the same way); False, and nothing added, if not."""
        if set(map(type, items)) != {dict}:
            return False
        types = _values(items, "type")
        if types.count(None) != n and any(map(INDEX_TYPES.__contains__, types)):
            return False
        uris = _values(items, "uri")
        names = _values(items, "filename")
        try:
            joined = "\n".join(uris)
            named = names.count(None) != n
            # every name given, and (tested below) the last part of its URI
            lines = "\n".join(names) if named else joined
        except TypeError:
            return False  # a URI or name that is not a string, or names not all given
        if (
            not _plain_lines(joined, n)
            or not all(map(str.startswith, uris, repeat(_SCHEMES)))
            # a "/" after "scheme://" (add wants one; "://" holds two)
            or min(map(str.count, uris, repeat("/"))) < 3
        ):
            return False
        if named:
            # the last part of its URI: no "/" in it, and the URI ends with "/" and it
            if "/" in lines or not all(map(str.endswith, uris, map("/".__add__, names))):
                return False
        else:
            lines = "\n".join([uri[uri.rfind("/") + 1 :] for uri in uris])
        if not _plain_tails(lines):
            return False
        keys = lines.lower().split("\n")
        sizes = _values(items, "size")
        if set(map(type, sizes)) != {int}:
            return False  # an unknown size (None) too: add stores it as -1
        try:
            column = array("q", sizes)
        except OverflowError:
            return False
        if min(column) < 0:
            return False
        sums = _values(items, "checksum")
        kinds = set(map(type, sums))
        if kinds == {type(None)}:
            algs, values = bytes(n), array("I", bytes(4 * n))
        else:
            if kinds != {str}:
                return False
            hexes = "\n".join(sums)
            if len(hexes) != 17 * n - 1 or _ADLERS.fullmatch(hexes) is None:
                return False
            algs, values = b"\x01" * n, array("I", bytes.fromhex(hexes.replace("adler32:", "")))
            if sys.byteorder == "little":
                values.byteswap()
        self.uris.extend_lines(joined, map(len, uris))
        self.sizes += column
        self.sums += values
        self.algs += algs
        self.index_of += array("I", [len(self.groups) - 1]) * n
        self.hashes.extend(map(hash, keys))
        return True

    def add(self, item: Any) -> None:
        if type(item) is not dict:
            raise NeedsGeneralParserError
        if item.get("type") in INDEX_TYPES:
            if not self.raw_indices:
                raise NeedsGeneralParserError  # in an index: a file to parse_record
            # the raw form of an index (expanded in _file_indices, else parse_streamed
            # steps aside when parse_record asks to load it)
            self.placeholder.append({k: item[k] for k in FILE_KEYS if k in item})
            return
        uri = item.get("uri")
        if type(uri) is not str or not uri.isascii() or uri != uri.strip():
            raise NeedsGeneralParserError
        scheme, sep, rest = uri.partition("://")
        slash = rest.rfind("/")
        if (
            not sep
            or scheme not in REMOTE_SCHEMES
            or slash < 0
            # how urllib reads such URIs is the general parser's to say
            or "%" in rest
            or "?" in rest
            or "#" in rest
            or "[" in rest
            or "]" in rest
            or "\\" in rest
            or "\x00" in rest
        ):
            raise NeedsGeneralParserError
        i = len(self.uris)
        tail = rest[slash + 1 :]
        if tail in ("", ".", "..") or tail != tail.strip():
            raise NeedsGeneralParserError
        name = item.get("filename")
        if name is not None and name != "":
            if type(name) is not str or not _plain(name):
                raise NeedsGeneralParserError
            if name != tail:
                self.names[i] = name
        size = item.get("size")
        if size is None:
            size = -1
        elif type(size) is not int or not 0 <= size <= _MAX_SIZE:
            raise NeedsGeneralParserError
        checksum = item.get("checksum")
        if checksum is None or checksum == "":
            self.algs.append(0)
            self.sums.append(0)
        else:
            match = _CHECKSUM.fullmatch(checksum) if type(checksum) is str else None
            if match is None or len(match[2]) != ALGORITHMS[match[1]]:
                raise NeedsGeneralParserError
            if match[1] == "adler32":
                self.algs.append(1)
                self.sums.append(int(match[2], 16))
            else:
                self.algs.append(2)
                self.sums.append(0)
                self.other[i] = Checksum(match[1], match[2])
        self.uris.append(uri)
        self.sizes.append(size)
        self.index_of.append(len(self.groups) - 1)
        self.hashes.append(hash((self.names.get(i) or tail).lower()))

    def names_distinct(self) -> bool:
        """Names distinct ignoring case (so also URIs, when every name is its URI's last part).

        Distinct hashes are distinct names; if two are alike, the names are compared
        exactly (:meth:`_exactly_distinct`).
        """
        uris, names = self.uris, self.names
        hashes = self.hashes
        if len(set(hashes)) != len(hashes) and not self._exactly_distinct():
            return False
        return not names or len(set(uris)) == len(uris)

    def _exactly_distinct(self) -> bool:
        """Two passes over a bitmap of name hashes (8 MB, not a set of a million): the
        names whose bit was hit twice are then compared exactly."""
        bits = bytearray(_BITMAP // 8)
        twice = bytearray(_BITMAP // 8)
        for key in self._name_keys():
            h = hash(key) & (_BITMAP - 1)
            byte, bit = h >> 3, 1 << (h & 7)
            if bits[byte] & bit:
                twice[byte] |= bit
            bits[byte] |= bit
        del bits
        seen: set[str] = set()
        for key in self._name_keys():
            h = hash(key) & (_BITMAP - 1)
            if twice[h >> 3] & (1 << (h & 7)):
                if key in seen:
                    return False
                seen.add(key)
        return True

    def _name_keys(self) -> Iterator[str]:
        names = self.names
        for i, uri in enumerate(self.uris):
            yield (names.get(i) or uri[uri.rfind("/") + 1 :]).lower()


def parse_streamed(
    fh: IO[bytes],
    *,
    portal_url: str | None = None,
    load_index: IndexLoader | None = None,
    local_root: Path | None = None,
) -> Record:
    """The record in ``fh`` with a compact file list; raise NeedsGeneralParserError when it
    needs the general parser (see the module docstring). ``load_index`` is never called:
    a raw index that must be read is the general parser's (it loads it once)."""
    columns = _Columns()
    doc = load_record_document(fh, sink=columns)
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or not columns.groups:
        raise NeedsGeneralParserError
    direct = meta.get("files")
    if isinstance(direct, list) and direct and not isinstance(direct, _Placeholder):
        raise NeedsGeneralParserError
    if not columns.names_distinct():
        raise NeedsGeneralParserError
    # the general parser reads the rest (the file lists are empty placeholders there)
    record = parse_record(doc, portal_url=portal_url, load_index=_decline, local_root=local_root)
    if record.files or any(not index.available for index in record.indices):
        raise NeedsGeneralParserError  # a file it read itself, or an index it could not
    files = _ordered(columns, meta, record)
    notes = [n for n in record.notes if "files but lists" not in n]
    declared = record.declared_file_count
    if declared is not None and declared != len(files):
        notes.insert(0, f"record declares {declared} files but lists {len(files)}")
    return _with_files(record, files, tuple(notes))


def _decline(entry: Any) -> bytes:
    """A raw index that is not also expanded: the general parser loads it (not an
    OdrunError, so parse_record does not record it as unreadable)."""
    raise NeedsGeneralParserError


def _ordered(columns: _Columns, meta: dict[str, Any], record: Record) -> FileList:
    """The columns as a FileList: direct files first, then each index's, in index order."""
    groups: list[int] = []
    index_names: list[str | None] = []
    # the lists the document holds once read as json.loads reads it (a key given twice:
    # the last one), by their placeholders; a list read but not used declines below
    direct = meta.get("files")
    if isinstance(direct, _Placeholder):
        groups.append(direct.group)
        index_names.append(None)
    indices = meta.get("_file_indices")
    for n, idx in enumerate(indices if isinstance(indices, list) else []):
        files = idx.get("files") if isinstance(idx, dict) else None
        if isinstance(files, _Placeholder):
            groups.append(files.group)
            index_names.append(record.indices[n].name)
    if sorted(groups) != list(range(len(columns.groups))):
        raise NeedsGeneralParserError  # a file list read but not used (a key given twice)
    bounds = [start for _, start in columns.groups] + [len(columns.uris)]
    listed = [group for group in groups if bounds[group] < bounds[group + 1]]
    if listed == sorted(listed):
        # the files are in order already (empty lists aside): name each group's index
        by_group: list[str | None] = [None] * len(groups)
        for group, name in zip(groups, index_names, strict=True):
            by_group[group] = name
        return FileList(columns.uris, columns.sizes, columns.sums, columns.algs, columns.other,
                        columns.names, columns.index_of, by_group)  # fmt: skip
    uris: list[str] = []
    sizes: array[int] = array("q")
    sums: array[int] = array("I")
    algs = bytearray()
    index_of: array[int] = array("I")
    other: dict[int, Checksum] = {}
    names: dict[int, str] = {}
    for k, group in enumerate(groups):
        a, b = bounds[group], bounds[group + 1]
        shift = len(uris) - a
        uris += columns.uris[a:b]
        sizes += columns.sizes[a:b]
        sums += columns.sums[a:b]
        algs += columns.algs[a:b]
        index_of += array("I", [k]) * (b - a)
        other.update((i + shift, c) for i, c in columns.other.items() if a <= i < b)
        names.update((i + shift, v) for i, v in columns.names.items() if a <= i < b)
    return FileList(uris, sizes, sums, algs, other, names, index_of, index_names)


def _with_files(record: Record, files: FileList, notes: tuple[str, ...]) -> Record:
    from dataclasses import replace  # noqa: PLC0415

    return replace(record, files=files, notes=notes)
