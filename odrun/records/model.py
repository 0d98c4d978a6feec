"""Typed record metadata: :class:`Record`, :class:`RecordFile` and friends.

These are what the rest of odrun works with; nothing downstream reads the
portal's JSON. ``Record.to_dict()`` is the stable document behind ``--json``
(schema: ``specs/record.schema.json``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, overload

from odrun.checksum import Checksum

#: version of the ``odrun info --json`` document
RECORD_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class RecordFile:
    """One data file of a record (index files already expanded)."""

    uri: str
    size: int | None
    checksum: Checksum | None
    #: name as declared (basename of the URI unless the index says otherwise)
    filename: str
    #: safe, unique path relative to a download folder
    path: str
    #: the file index this entry came from; None for a file listed directly
    index: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "size": self.size,
            "checksum": str(self.checksum) if self.checksum else None,
            "filename": self.filename,
            "path": self.path,
            "index": self.index,
        }


class PackedStrings(Sequence[str]):
    """Strings kept as slices of a few big ones: 8 bytes each instead of a str object
    (about 57 bytes more per string; a million URIs save about 55 MB)."""

    __slots__ = ("_chunk_of", "_chunks", "_starts")

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._chunk_of: array[int] = array("I")
        self._starts: array[int] = array("I")

    def append(self, text: str) -> None:
        self._chunk_of.append(len(self._chunks))
        self._starts.append(0)
        self._chunks.append(text)

    def extend_lines(self, joined: str, lengths: Iterable[int]) -> None:
        """Add the lines of ``joined`` (no line holds a newline), of the given lengths."""
        starts = array("I", accumulate(map((1).__add__, lengths), initial=0))
        starts.pop()
        self._chunk_of += array("I", [len(self._chunks)]) * len(starts)
        self._starts += starts
        self._chunks.append(joined)

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        n = len(self._starts)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("string index out of range")
        chunk = self._chunk_of[i]
        text = self._chunks[chunk]
        start = self._starts[i]
        if i + 1 < n and self._chunk_of[i + 1] == chunk:
            return text[start : self._starts[i + 1] - 1]
        return text[start:]

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))


class FileList(Sequence[RecordFile]):
    """A record's files stored column by column; each :class:`RecordFile` is made on access.

    A million files as RecordFile objects cost about 450 MB; as columns (the URI
    strings, sizes and adler32 values in arrays) about 200 MB. Built only by the
    streaming parser (:mod:`odrun.records.fast`) for files whose name is the
    base name of their URI or stored aside, and whose path is their name.
    """

    __slots__ = ("_algs", "_index_names", "_index_of", "_names", "_other", "_sizes", "_sums",
                 "_uris", "total_size")  # fmt: skip

    def __init__(
        self,
        uris: Sequence[str],
        sizes: array[int],
        sums: array[int],
        algs: bytearray,
        other: dict[int, Checksum],
        names: dict[int, str],
        index_of: array[int],
        index_names: list[str | None],
    ) -> None:
        self._uris = uris
        self._sizes = sizes  # -1: unknown
        self._sums = sums  # adler32 values where algs[i] == 1
        self._algs = algs  # 0: no checksum, 1: adler32, 2: other (in self._other)
        self._other = other
        self._names = names  # names that are not the URI's last part
        self._index_of = index_of
        self._index_names = index_names
        self.total_size = sum(sizes) + sizes.count(-1)  # sizes are -1 or >= 0

    def __len__(self) -> int:
        return len(self._uris)

    def _make(self, i: int) -> RecordFile:
        uri = self._uris[i]
        size = self._sizes[i]
        alg = self._algs[i]
        checksum = (
            None
            if alg == 0
            else Checksum("adler32", f"{self._sums[i]:08x}")
            if alg == 1
            else self._other[i]
        )
        name = self._names.get(i) or uri[uri.rfind("/") + 1 :]
        index = self._index_names[self._index_of[i]]
        return RecordFile(uri, size if size >= 0 else None, checksum, name, name, index)

    @overload
    def __getitem__(self, i: int) -> RecordFile: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[RecordFile, ...]: ...
    def __getitem__(self, i: int | slice) -> RecordFile | tuple[RecordFile, ...]:
        if isinstance(i, slice):
            return tuple(self._make(j) for j in range(len(self))[i])
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("file index out of range")
        return self._make(i)

    def __iter__(self) -> Iterator[RecordFile]:
        return (self._make(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"FileList({len(self)} files)"


@dataclass(frozen=True, slots=True)
class FileIndex:
    """A file index (``*_file_index.json``) of a record, and whether its entries are known."""

    name: str
    uri: str | None
    declared_files: int | None
    declared_size: int | None
    available: bool
    #: why the entries are missing, when they are
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uri": self.uri,
            "declared_files": self.declared_files,
            "declared_size": self.declared_size,
            "available": self.available,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ContainerImage:
    name: str
    registry: str | None = None


@dataclass(frozen=True, slots=True)
class Environment:
    """What a record declares it needs to run (its ``system_details``)."""

    release: str | None = None
    global_tag: str | None = None
    container_images: tuple[ContainerImage, ...] = ()
    description: str | None = None
    #: recid of a record describing the environment (e.g. a VM image)
    recid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "global_tag": self.global_tag,
            "container_images": [
                {"name": image.name, "registry": image.registry} for image in self.container_images
            ],
            "description": self.description,
            "recid": self.recid,
        }


@dataclass(frozen=True)
class Record:
    """A CERN Open Data record, resolved."""

    recid: str
    doi: str | None
    title: str
    experiments: tuple[str, ...]
    type_primary: str | None
    type_secondary: tuple[str, ...]
    #: a tuple, or a compact :class:`FileList` for records read by the streaming parser
    files: Sequence[RecordFile]
    indices: tuple[FileIndex, ...] = ()
    collision_energy: str | None = None
    collision_type: str | None = None
    years: tuple[str, ...] = ()
    date_published: str | None = None
    license: str | None = None
    authors: tuple[str, ...] = ()
    collaboration: str | None = None
    publisher: str | None = None
    abstract: str | None = None
    environment: Environment | None = None
    source_code_url: str | None = None
    declared_file_count: int | None = None
    declared_size: int | None = None
    #: portal bookkeeping, for pinning in lock files
    revision: int | None = None
    updated: str | None = None
    portal_url: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def experiment(self) -> str | None:
        return ", ".join(self.experiments) or None

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def total_size(self) -> int:
        if isinstance(self.files, FileList):
            return self.files.total_size
        return sum(f.size or 0 for f in self.files)

    @property
    def missing_indices(self) -> tuple[FileIndex, ...]:
        return tuple(index for index in self.indices if not index.available)

    @property
    def files_complete(self) -> bool:
        return not self.missing_indices

    @property
    def record_url(self) -> str:
        base = (self.portal_url or "https://opendata.cern.ch").rstrip("/")
        if not base.startswith("http"):
            base = "https://opendata.cern.ch"
        return f"{base}/record/{self.recid}"

    @property
    def type(self) -> str | None:
        if not self.type_primary:
            return None
        if self.type_secondary:
            return f"{self.type_primary} / {', '.join(self.type_secondary)}"
        return self.type_primary

    def to_dict(self, *, with_files: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format_version": RECORD_FORMAT_VERSION,
            "recid": self.recid,
            "doi": self.doi,
            "title": self.title,
            "experiment": self.experiment,
            "experiments": list(self.experiments),
            "type": self.type,
            "type_primary": self.type_primary,
            "type_secondary": list(self.type_secondary),
            "collision_energy": self.collision_energy,
            "collision_type": self.collision_type,
            "years": list(self.years),
            "date_published": self.date_published,
            "license": self.license,
            "authors": list(self.authors),
            "collaboration": self.collaboration,
            "publisher": self.publisher,
            "environment": self.environment.to_dict() if self.environment else None,
            "source_code_url": self.source_code_url,
            "file_count": self.file_count,
            "total_size": self.total_size,
            "declared_file_count": self.declared_file_count,
            "declared_size": self.declared_size,
            "files_complete": self.files_complete,
            "indices": [index.to_dict() for index in self.indices],
            "missing_indices": [index.name for index in self.missing_indices],
            "notes": list(self.notes),
            "revision": self.revision,
            "updated": self.updated,
            "record_url": self.record_url,
        }
        if with_files:
            doc["files"] = [f.to_dict() for f in self.files]
        return doc
