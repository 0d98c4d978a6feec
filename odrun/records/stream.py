"""Read a record document without holding all of it: file entries are slimmed as they stream.

A record with a 1,000,000-file index is a ~270 MB JSON document; ``json.loads``
turns it into ~1 GB of dicts. :func:`load_record_document` reads it from a
binary file in chunks instead: every value is parsed with the stdlib decoder
(``raw_decode``, in C), but the entries of the file lists
(``metadata.files`` and ``metadata._file_indices[].files``) are parsed one at a
time and only the keys :mod:`odrun.records.parse` reads are kept. The result is
the same document for the parser, minus the keys of file entries it ignores.
Malformed JSON raises :class:`ValueError` (a :class:`json.JSONDecodeError`).
"""

from __future__ import annotations

import codecs
import json
import re
from typing import IO, Any, Protocol


class FileSink(Protocol):
    """Takes file entries instead of the document (the fast path of :mod:`odrun.records.fast`)."""

    def begin(self, where: tuple[str | int, ...]) -> list[Any] | None:
        """A file list starts at ``where`` (keys from the root): the list to put in the
        document in its place, its entries then given to :meth:`add`; or None to keep it."""

    def add_many(self, items: list[Any]) -> None:
        """The next entries of the list begun last, in order."""


#: the keys of a file entry that parse_record reads
FILE_KEYS = ("uri", "filename", "size", "checksum", "type")
CHUNK = 1 << 20
#: the window is refilled for a batch when less than this is left in it
BATCH = CHUNK // 2

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
#: what may follow a value in a valid document
_AFTER = frozenset(",]}: \t\n\r")


class _Reader:
    """A window on a JSON text stream (decoded as json.loads decodes bytes), refilled as
    values are consumed."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        #: made for the first bytes: the encoding json.loads reads bytes in (UTF-8, with
        #: or without a BOM, UTF-16 or UTF-32)
        self._decoder: codecs.IncrementalDecoder | None = None
        self.buf = ""
        self.pos = 0
        self.eof = False
        #: how often the window moved (positions in an older window are stale)
        self.refills = 0

    def more(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at the end of the data."""
        if self.eof:
            return False
        data = self._fh.read(CHUNK)
        self.eof = not data
        if self._decoder is None:
            self._decoder = codecs.getincrementaldecoder(json.detect_encoding(data))()
        self.buf = self.buf[self.pos :] + self._decoder.decode(data, final=self.eof)
        self.pos = 0
        self.refills += 1
        return True

    def peek(self) -> str:
        """The next character after whitespace ("" at the end)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise json.JSONDecodeError(f"expected {char!r}", self.buf, self.pos)
        self.pos += 1

    def value(self) -> Any:
        """One whole JSON value."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise
            if (end >= len(self.buf) or self.buf[end] not in _AFTER) and self.more():
                continue  # cut at the end of the window ("12" of "123", "1" of "1.5"): go on
            self.pos = end
            return value

    def key(self) -> str:
        key = self.value()
        if not isinstance(key, str):
            raise json.JSONDecodeError("expected a string key", self.buf, self.pos)
        self.expect(":")
        return key


def _members(reader: _Reader) -> Any:
    """Yield the keys of an object whose ``{`` is next; the caller reads each value."""
    reader.expect("{")
    if reader.peek() == "}":
        reader.pos += 1
        return
    while True:
        yield reader.key()
        if reader.peek() == ",":
            reader.pos += 1
            continue
        reader.expect("}")
        return


def _items(reader: _Reader) -> Any:
    """Yield once per item of an array whose ``[`` is next; the caller reads each item."""
    reader.expect("[")
    if reader.peek() == "]":
        reader.pos += 1
        return
    while True:
        yield
        if reader.peek() == ",":
            reader.pos += 1
            continue
        reader.expect("]")
        return


def _file_list(reader: _Reader, where: tuple[str | int, ...], sink: FileSink | None) -> Any:
    """A file list, each entry slimmed to FILE_KEYS as it is read (the hot loop).

    Runs of whole entries in the window are parsed by one C-level decode each
    (:func:`_batch`); where that fails (a cut inside a string, malformed JSON, an
    odd last entry) the entries up to the cut are read one at a time as before,
    so errors and values are those of the entry-by-entry reader.
    """
    if reader.peek() != "[":
        return reader.value()
    reader.pos += 1
    placeholder = sink.begin(where) if sink is not None else None
    out: list[Any] = []
    keys = FILE_KEYS

    def keep(items: list[Any]) -> None:
        if placeholder is None:
            out.extend(
                {k: item[k] for k in keys if k in item} if type(item) is dict else item
                for item in items
            )
        else:
            sink.add_many(items)  # type: ignore[union-attr]

    decode = _DECODER.raw_decode
    if reader.peek() == "]":
        reader.pos += 1
        return out if placeholder is None else placeholder
    slow_end, refills = -1, reader.refills  # entries before slow_end are read one at a time
    while True:
        if refills != reader.refills:
            slow_end, refills = -1, reader.refills  # the window moved: positions changed
        items = None
        if reader.pos >= slow_end:
            if len(reader.buf) - reader.pos < BATCH and not reader.eof:
                reader.more()
                slow_end, refills = -1, reader.refills
            items, cut = _batch(reader.buf, reader.pos)
            if items is None:
                slow_end = cut
            else:
                keep(items)
                reader.pos = cut
        if items is None:
            buf, pos = reader.buf, reader.pos
            try:
                item, end = decode(buf, pos)
            except json.JSONDecodeError:
                item, end = None, -1
            # a value running to the end of the window may be cut: read more and parse again
            if end < 0 or end >= len(buf) or buf[end] not in _AFTER:
                item = reader.value()
                end = reader.pos
            keep([item])
            reader.pos = end
        sep = reader.peek()
        if sep == ",":
            reader.pos += 1
            reader.peek()
            continue
        reader.expect("]")
        return out if placeholder is None else placeholder


def _batch(buf: str, pos: int) -> tuple[list[Any] | None, int]:
    """The whole entries of ``buf`` from ``pos`` (where an entry starts) and the end of the
    last one; or None and where to try again (entries before it are read one by one).

    The cut is after a ``}`` followed by ``,`` or ``]``. A wrong cut (inside a string or a
    nested value) leaves ``[<text>]`` unbalanced, so it never parses: what parses is
    exactly the entries the entry-by-entry reader reads there, with the same values.
    """
    cut, tries = len(buf), 2
    for _ in range(8):
        cut = buf.rfind("}", pos, cut)
        if cut < 0:
            return None, len(buf)  # no object ends in this window
        after = _WS.match(buf, cut + 1).end()  # type: ignore[union-attr]
        if after >= len(buf) or buf[after] not in ",]":
            continue
        try:
            return _DECODER.decode("[" + buf[pos : cut + 1] + "]"), cut + 1
        except (ValueError, RecursionError):
            tries -= 1  # e.g. the "}" that closes the index after its list: try once more
            if not tries:
                return None, cut + 1
    return None, max(cut, pos) + 1


def _object(reader: _Reader, where: tuple[str | int, ...], sink: FileSink | None) -> Any:
    """A document, its metadata or one file index: file lists slimmed, the rest read whole."""
    if reader.peek() != "{":
        return reader.value()
    out: dict[str, Any] = {}
    for key in _members(reader):
        if key == "files":
            out[key] = _file_list(reader, (*where, key), sink)
        elif key in ("metadata", "_file_indices") and reader.peek() in "{[":
            if reader.peek() == "[":
                out[key] = [
                    _object(reader, (*where, key, n), sink) for n, _ in enumerate(_items(reader))
                ]
            else:
                out[key] = _object(reader, (*where, key), sink)
        else:
            out[key] = reader.value()
    return out


def load_record_document(fh: IO[bytes], sink: FileSink | None = None) -> Any:
    """The record document in ``fh`` (an API envelope or bare metadata), file entries slimmed
    (or given to ``sink``)."""
    reader = _Reader(fh)
    value = _object(reader, (), sink)
    if reader.peek() != "":
        raise json.JSONDecodeError("extra data after the document", reader.buf, reader.pos)
    return value
