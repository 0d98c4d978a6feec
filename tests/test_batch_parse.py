"""File lists read in batches (issue 14): same values, same errors, less work and memory.

``odrun.records.stream`` decodes runs of whole file entries with one C-level decode
and ``odrun.records.fast`` checks a batch of entries at once (``_Columns.add_many``).
Both must agree with the entry-by-entry reference on ANY input: the stream with
``json.loads`` (same slimmed document, or a ValueError/RecursionError for both), and
``add_many`` with ``add`` called once per entry (same columns, or both decline).
"""

from __future__ import annotations

import io
import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odrun.records import fast, model, stream
from odrun.records.fast import NeedsGeneralParserError, parse_streamed
from odrun.records.model import FileList

import fuzzing  # noqa: F401  (the hypothesis profiles)

BASE = "root://eospublic.cern.ch//eos/opendata/cms/Run2012B/DoubleMuParked/AOD/22Jan2013-v1"


def plain_entry(i: int) -> dict[str, Any]:
    name = f"{i:08X}-0000-E211-B0B3-00266CF9B{i % 1000:03d}.root"
    return {
        "checksum": f"adler32:{(i * 2654435761) & 0xFFFFFFFF:08x}",
        "filename": name,
        "size": 3_000_000_000 + i,
        "uri": f"{BASE}/{i // 1000:05d}/{name}",
        "key": f"idx_{i}",
    }


def big_document(n: int) -> bytes:
    meta = {
        "recid": "7",
        "_file_indices": [{"key": "k", "files": [plain_entry(i) for i in range(n)]}],
    }
    return json.dumps({"id": "7", "metadata": meta}).encode()


class CountingDecoder(json.JSONDecoder):
    calls = 0

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        CountingDecoder.calls += 1
        return super().decode(s, *args, **kwargs)

    def raw_decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        CountingDecoder.calls += 1
        return super().raw_decode(s, *args, **kwargs)


def test_a_big_file_list_is_decoded_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 entries: a few dozen decoder calls, not one (or more) per entry."""
    monkeypatch.setattr(stream, "_DECODER", CountingDecoder())
    CountingDecoder.calls = 0
    record = parse_streamed(io.BytesIO(big_document(20_000)))
    assert len(record.files) == 20_000
    assert CountingDecoder.calls < 200, CountingDecoder.calls


def test_a_big_file_list_holds_no_object_per_uri() -> None:
    """The URIs of a FileList cost their characters and a few bytes each, not a str each."""
    data = big_document(20_000)
    uri_chars = sum(len(plain_entry(i)["uri"]) for i in range(20_000))
    tracemalloc.start()
    try:
        record = parse_streamed(io.BytesIO(data))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert isinstance(record.files, FileList)
    per_file = (held - uri_chars) / 20_000
    # sizes 8, adler32 4, algorithm 1, index 4, URI offsets 8 bytes (a str: 57 more)
    assert per_file < 45, f"{per_file:.0f} bytes per file besides the URI's characters"


def test_packed_strings_index_like_a_list() -> None:
    packed = model.PackedStrings()
    packed.append("a\nb")  # one string holding a newline, added alone
    packed.extend_lines("xy\n\nz", [2, 0, 1])
    packed.append("")
    want = ["a\nb", "xy", "", "z", ""]
    assert list(packed) == want
    assert len(packed) == 5
    assert packed[-2] == "z"
    assert packed[1:4] == want[1:4]
    with pytest.raises(IndexError):
        packed[5]


# -- the stream: batches read what json.loads reads --------------------------------------

#: strings that look like the cut a batch makes, or break it
_TRICKY = st.sampled_from(
    ["}, {", "},", "}]", '"}', '\\"}, {"a": 1', "]}", "{", "\\", "\u00e9}", ""]
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=12), _TRICKY,
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | _TRICKY, inner, max_size=3)
    ),
    max_leaves=8,
)
_ENTRIES = st.one_of(
    _VALUES,
    st.dictionaries(
        st.sampled_from(["uri", "filename", "size", "checksum", "type", "key", "nested"]),
        _VALUES,
        max_size=6,
    ),
)


def _slim(doc: Any) -> Any:
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    for files in [meta.get("files") if isinstance(meta, dict) else None]:
        if isinstance(files, list):
            meta["files"] = [
                {k: v for k, v in item.items() if k in stream.FILE_KEYS}
                if isinstance(item, dict)
                else item
                for item in files
            ]
    return doc


def _read(text: str) -> Any:
    try:
        return stream.load_record_document(io.BytesIO(text.encode("utf-8", "surrogatepass")))
    except (ValueError, RecursionError):
        return ValueError


def _reference(text: str) -> Any:
    try:
        return _slim(json.loads(text))
    except (ValueError, RecursionError):
        return ValueError


@given(
    entries=st.lists(_ENTRIES, max_size=40),
    separators=st.sampled_from([(", ", ": "), (",", ":"), (" ,\n ", " :\t")]),
    cut=st.integers(0, 10**6),
    junk=st.sampled_from(["", "}", ",", "]", '"', "x", "\\", "{", " ", "},"]),
    chunk=st.sampled_from([1, 3, 7, 64, 4096]),
)
@example(entries=[{"uri": "}, {"}] * 3, separators=(", ", ": "), cut=10**6, junk="", chunk=7)
def test_batches_read_what_json_reads(
    entries: list[Any],
    separators: tuple[str, str],
    cut: int,
    junk: str,
    chunk: int,
) -> None:
    """Valid or not (a character inserted anywhere), the stream equals json.loads."""
    text = json.dumps({"metadata": {"files": entries, "recid": "1"}}, separators=separators)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream, "CHUNK", chunk)
        patch.setattr(stream, "BATCH", max(1, chunk // 2))
        at = cut % (len(text) + 1)
        for variant in (text, text[:at] + junk + text[at:]):
            assert _read(variant) == _reference(variant)


def test_a_deeply_nested_entry_is_read_as_before() -> None:
    """A batch adds a level of nesting: at the recursion limit it steps aside, it does not fail."""
    deep = "[" * 900 + "]" * 900
    text = '{"metadata": {"files": [{"a": 1}, ' + deep + ', {"b": 2}]}}'
    assert _read(text) == _reference(text)


# -- the sink: add_many keeps what add keeps ---------------------------------------------

_URI_PARTS = st.lists(
    st.sampled_from([
        "root://", "https://", "http://", "ROOT://", "file:/", "root:/", "h", "eos.cern.ch",
        "/", "//", "eos", "a b", "%41", "?x", "#", "[x]", "\\", "\u00e9", "\n", "\x1f", ".",
        "..", " ", "\t", "://", "A.root", "a.root", "x", "-_~.root",
    ]),
    min_size=1,
    max_size=7,
).map("".join)  # fmt: skip
_PLAIN_URIS = st.builds(
    lambda folder, name: f"root://eospublic.cern.ch//eos/{folder}/{name}",
    st.sampled_from(["a", "b/c", "D"]),
    st.sampled_from(["A.root", "a.root", "B.ROOT", "x-1_2.root", ".", "..", "c.root"]),
)
_CHECKSUMS = st.one_of(
    st.none(), st.just(""), st.integers(0, 2**32 - 1).map("adler32:{:08x}".format),
    st.sampled_from(["adler32:a", "ADLER32:0000000a", "adler32:0000000A", "sha1:" + "0" * 40,
                     "md5:" + "f" * 32, "adler32:0000000a\nadler32:0000000b", "adler32:zz"]),
    st.integers(),
)  # fmt: skip
_SIZES = st.one_of(
    st.integers(0, 2**64), st.integers(-3, 3), st.none(), st.booleans(), st.floats(), st.just("7")
)


@st.composite
def _file_entries(draw: st.DrawFn) -> Any:
    uri = draw(st.one_of(_PLAIN_URIS, _PLAIN_URIS, _URI_PARTS, st.none(), st.integers()))
    item: dict[str, Any] = {"uri": uri}
    tail = uri.rsplit("/", 1)[-1] if isinstance(uri, str) else "x"
    name = draw(st.sampled_from(["absent", "absent", "tail", "tail", "other"]))
    if name == "tail":
        item["filename"] = tail
    elif name == "other":
        item["filename"] = draw(
            st.one_of(
                st.sampled_from(["", "Z.root", "a/b", "..", tail + " "]), st.none(), st.integers()
            )
        )
    item["size"] = draw(_SIZES)
    item["checksum"] = draw(_CHECKSUMS)
    if draw(st.integers(0, 9)) == 0:
        item["type"] = draw(st.sampled_from(["index.json", "index.txt", "root", None, ["x"]]))
    return item if draw(st.integers(0, 19)) else draw(_SCALARS)


def _columns(items: list[Any], batched: bool) -> tuple[Any, ...] | None:
    columns = fast._Columns()
    columns.begin(("metadata", "files"))
    try:
        if batched:
            columns.add_many(items)
        else:
            for item in items:
                columns.add(item)
    except NeedsGeneralParserError:
        return None
    return (
        list(columns.uris), columns.sizes, columns.sums, columns.algs, columns.other,
        columns.names, columns.index_of, columns.hashes,
    )  # fmt: skip


@given(st.lists(_file_entries(), max_size=12))
@example(
    [{"uri": "root://h//e/A.root", "filename": "A.root", "size": 1, "checksum": "adler32:0000000a"}]
)
@example([{"uri": "root://h/A.root", "size": 2**63 - 1}, {"uri": "https://h/B.root", "size": 0}])
@example([{"uri": "root://A.root", "size": 1}])
@example([{"uri": "root://h/.", "size": 1}])
@example([{"uri": "root://h/A.root", "size": -1}])
@example([{"uri": "root://h/A.root", "size": None}])
@example([{"uri": "root://h/A.root", "size": 1, "filename": ""}])
def test_add_many_keeps_what_add_keeps(items: list[Any]) -> None:
    assert _columns(items, batched=True) == _columns(items, batched=False)


def test_plain_batches_take_the_batch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: the portal's plain entries never go entry by entry."""

    def refuse(self: Any, item: Any) -> None:
        raise AssertionError("an entry went one by one")

    monkeypatch.setattr(fast._Columns, "add", refuse)
    record = parse_streamed(io.BytesIO(big_document(3000)))
    assert len(record.files) == 3000
    assert record.files[2999].filename == plain_entry(2999)["filename"]
