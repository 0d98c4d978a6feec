"""The streamed, batched reader of record documents against the general one, end to end.

:func:`odrun.records.fast.parse_streamed` either declines (NeedsGeneralParserError) or
gives exactly the files :func:`odrun.records.parse.parse_record` gives for the document
``json.loads`` reads, whose rule for a key given twice is: the last one counts. The
documents here are written as text, so keys can repeat at every level.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.errors import OdrunError
from odrun.records.fast import NeedsGeneralParserError, parse_streamed
from odrun.records.parse import parse_record
from odrun.records.stream import load_record_document

import fuzzing  # noqa: F401  (the hypothesis profiles)

Pairs = list[tuple[str, Any]]


def _text(value: Any) -> str:
    """JSON text of ``value``; a list of (key, value) pairs tagged ``obj`` is an object
    whose keys may repeat."""
    if isinstance(value, tuple) and value and value[0] == "obj":
        return "{" + ",".join(f"{json.dumps(k)}:{_text(v)}" for k, v in value[1]) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return json.dumps(value)


def _entry(i: int, size: int = 5) -> Any:
    name = f"f{i}.root"
    return {"uri": f"root://eos/d/{name}", "filename": name, "size": size,
            "checksum": f"adler32:{i:08x}"}  # fmt: skip


_ENTRIES = st.lists(st.builds(_entry, st.integers(0, 40), st.integers(0, 10**12)), max_size=4)
_INDEX = st.builds(
    lambda key, files, twice: ("obj", [("key", key), ("files", files), *twice]),
    st.sampled_from(["a", "b"]),
    _ENTRIES,
    st.lists(st.tuples(st.sampled_from(["files", "key"]), _ENTRIES), max_size=1),
)
_META = st.lists(
    st.one_of(
        st.tuples(st.just("recid"), st.sampled_from(["7", "8"])),
        st.tuples(st.just("files"), _ENTRIES),
        st.tuples(st.just("_file_indices"), st.lists(_INDEX, max_size=2)),
    ),
    min_size=1,
    max_size=5,
)
_DOCUMENT = st.builds(
    lambda metas: ("obj", [("id", "7")] + [("metadata", ("obj", m)) for m in metas]),
    st.lists(_META, min_size=1, max_size=2),
)


def _files(data: bytes, fast: bool) -> Any:
    try:
        record = parse_streamed(io.BytesIO(data)) if fast else parse_record(json.loads(data))
    except NeedsGeneralParserError:
        return None
    except OdrunError as exc:
        return type(exc).__name__
    return [(f.uri, f.size, str(f.checksum), f.path, f.index) for f in record.files]


@given(document=_DOCUMENT)
@example(
    document=("obj", [("id", "7"), ("metadata", ("obj", [
        ("recid", "7"), ("files", [_entry(1)]), ("files", [_entry(2)])]))])
)  # fmt: skip
@example(
    document=("obj", [("id", "7"),
              ("metadata", ("obj", [("recid", "7"), ("files", [_entry(1)])])),
              ("metadata", ("obj", [("recid", "7"), ("files", [_entry(2)])]))])
)  # fmt: skip
def test_a_key_given_twice_counts_once_as_json_reads_it(document: Any) -> None:
    data = _text(document).encode()
    fast = _files(data, fast=True)
    if fast is not None:
        assert fast == _files(data, fast=False), data


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])
def test_a_document_json_loads_reads_is_read_alike_whatever_its_encoding(encoding: str) -> None:
    """json.loads reads bytes with a BOM, or in UTF-16/32 (RFC 8259 8.1 readers may): the
    streamed reader reads the same document, the same files (else resolve and
    resolve_full disagreed: one 'not valid JSON', the other the record)."""
    doc = {"id": "7", "metadata": {"recid": "7", "files": [_entry(i) for i in range(3)]}}
    data = json.dumps(doc).encode(encoding)
    assert load_record_document(io.BytesIO(data)) == json.loads(data)
    assert (
        _files(data, fast=True)
        == _files(data, fast=False)
        == _files(json.dumps(doc).encode(), fast=True)
    )
