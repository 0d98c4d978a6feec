"""The streaming record reader (odrun.records.stream) equals json.loads, minus ignored keys.

Documents are cut into windows of every small size, so that values (numbers,
strings, escapes, multi-byte characters) are split at every position.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest

from odrun.records import stream
from odrun.records.stream import FILE_KEYS, load_record_document

RND = random.Random(14)


def entry(i: int) -> dict[str, Any]:
    return {
        "uri": f"root://h//eos/x/{i}\u00e9\\u2603.root",
        "size": RND.randrange(10**15),
        "checksum": f"adler32:{i:08x}",
        "key": "k",
        "nested": [1, {"a": None, "b": 1.5e-3}],
        "filename": None if i % 3 else 12.5,
        "type": "root",
    }


DOCS: list[Any] = [
    {
        "id": "1",
        "metadata": {
            "recid": "1",
            "files": [entry(i) for i in range(12)],
            "_file_indices": [
                {"files": [entry(i) for i in range(9)] + [7, "s", None, 1e5, 100000.0, True]},
                {"key": "b", "files": []},
            ],
            "title": '\u00e9 \u00fc \u2603 \U0001f600 \\" quoted',
        },
    },
    {"recid": "2", "files": [], "_file_indices": None},
    {"metadata": {"files": "not a list", "_file_indices": [{"files": [1, "a", None, 123456789]}]}},
    {"metadata": {"files": [123, 4567, -1.25e10]}, "revision": 12345},
    [1, 2],
    12345.5,
    "text",
]


def slim(doc: Any) -> Any:
    """What the stream reader must give: file entries keep FILE_KEYS only."""
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key == "files" and isinstance(value, list):
                out[key] = [
                    {k: v for k, v in item.items() if k in FILE_KEYS}
                    if isinstance(item, dict)
                    else item
                    for item in value
                ]
            else:
                out[key] = slim(value)
        return out
    if isinstance(doc, list):
        return [slim(v) for v in doc]
    return doc


def texts(doc: Any) -> list[str]:
    return [
        json.dumps(doc),
        json.dumps(doc, indent=2, ensure_ascii=False),
        json.dumps(doc, separators=(",", ":")),
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 13, 64, 1 << 20])
def test_stream_equals_json_loads(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(stream, "CHUNK", chunk)
    for doc in DOCS:
        for text in texts(doc):
            assert json.loads(text) == doc
            assert load_record_document(io.BytesIO(text.encode())) == slim(doc), text


@pytest.mark.parametrize(
    "bad",
    [b"", b'{"a": 1', b'{"a": 1} x', b'{"a" 1}', b'{"files": [1,]}', b'{"files": [1 2]}',
     b'{"files": [{"a": 1}', b'{"metadata": {"files": [1.]}}', b"\xff{}"],
)  # fmt: skip
@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_malformed_json_is_a_value_error(
    monkeypatch: pytest.MonkeyPatch, bad: bytes, chunk: int
) -> None:
    monkeypatch.setattr(stream, "CHUNK", chunk)
    with pytest.raises(ValueError):
        load_record_document(io.BytesIO(bad))


def test_big_file_list_is_slimmed_as_it_streams() -> None:
    entries = [entry(i) for i in range(2000)]
    text = json.dumps({"metadata": {"recid": "5", "_file_indices": [{"files": entries}]}})
    doc = load_record_document(io.BytesIO(text.encode()))
    files = doc["metadata"]["_file_indices"][0]["files"]
    assert len(files) == 2000
    assert set(files[0]) == {"uri", "size", "checksum", "filename", "type"}
    assert files[1999]["uri"] == entries[1999]["uri"]
