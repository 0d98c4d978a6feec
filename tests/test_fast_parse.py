"""The fast path for big records (odrun.records.fast) gives what the general parser gives.

For every fixture record and for random variants of file lists (collisions,
duplicates, odd URIs, odd names, sizes and checksums, key orders), the fast
parser either declines (NeedsGeneralParserError) or builds a Record equal to
parse_record's, file by file. It must never accept what the general parser refuses.
"""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest

from odrun.errors import OdrunError
from odrun.records.fast import NeedsGeneralParserError, parse_streamed
from odrun.records.model import FileList, Record
from odrun.records.parse import parse_record

import portal_server
from conftest import RECIDS

URL = "http://127.0.0.1:1"


def general(doc: Any) -> Record | OdrunError:
    try:
        return parse_record(json.loads(json.dumps(doc)), portal_url=URL, load_index=_no_index)
    except OdrunError as exc:
        return exc


def fast(doc: Any) -> Record | OdrunError | None:
    data = json.dumps(doc).encode()
    try:
        return parse_streamed(io.BytesIO(data), portal_url=URL, load_index=_no_index)
    except NeedsGeneralParserError:
        return None
    except OdrunError as exc:
        return exc


def _no_index(entry: Any) -> bytes:
    raise OdrunError("no index in this test")


def same(doc: Any) -> bool:
    """True when the fast path took ``doc``; asserts it agrees with the general parser."""
    want, got = general(doc), fast(doc)
    if got is None:
        return False
    if isinstance(want, OdrunError):
        assert isinstance(got, OdrunError), f"fast path accepted what parse_record refuses: {want}"
        assert str(got) == str(want)
        return True
    assert isinstance(got, Record), got
    assert isinstance(got.files, FileList)
    assert list(got.files) == list(want.files)
    assert got == want
    assert got.total_size == want.total_size
    assert got.to_dict() == want.to_dict()
    return True


def test_fixture_records_agree() -> None:
    taken = 0
    for recid in RECIDS:
        doc = portal_server.to_api(portal_server.load_source(recid), URL, raw=False)
        taken += same(doc)
    assert taken >= 3, "the fast path took almost no real record"


BASES = ["root://eospublic.cern.ch//eos/opendata/cms/x", "https://h.example/a/b", "root://h/"]
NAMES = ["A.root", "a.root", "B.ROOT", "c d.root", "é.root", "x%41.root", "y?.root",
         ".", "..", "", " s.root", "t.root ", "u\\v.root", "[w].root", "AO2D.root"]  # fmt: skip
SUMS = [None, "", "adler32:0000000a", "adler32:a", "ADLER32:0000000a", "alder32:0000000a",
        "sha1:" + "0" * 40, "md5:" + "f" * 32, "adler32:zz", 12, "sha256:" + "1" * 64]  # fmt: skip
SIZES = [None, 0, 5, 2**40, -1, "7", 1.5, True, 2**63]


def entry(rnd: random.Random, n: int) -> dict[str, Any]:
    name = rnd.choice(NAMES) if rnd.random() < 0.3 else f"F{n:05d}.root"
    folder = rnd.choice(BASES) + (f"/{n % 3}" if rnd.random() < 0.3 else "")
    item: dict[str, Any] = {"uri": f"{folder}/{name}"}
    if rnd.random() < 0.15:
        item["filename"] = rnd.choice([*NAMES, None, 3, f"G{n}.root"])
    if rnd.random() < 0.9:
        item["size"] = rnd.choice(SIZES) if rnd.random() < 0.2 else 1000 + n
    if rnd.random() < 0.9:
        item["checksum"] = rnd.choice(SUMS) if rnd.random() < 0.3 else f"adler32:{n:08x}"
    if rnd.random() < 0.05:
        item["type"] = rnd.choice(["index.json", "index.txt", "root"])
    if rnd.random() < 0.05:
        item["uri"] = rnd.choice([5, None, " " + item["uri"], "file:/etc/passwd"])
    return item


def document(rnd: random.Random, clean: bool) -> dict[str, Any]:
    n = 0

    def files(k: int) -> list[Any]:
        nonlocal n
        out = []
        for _ in range(k):
            n += 1
            out.append({"uri": f"root://h//eos/d/F{n:05d}.root", "size": n,
                        "checksum": f"adler32:{n:08x}"} if clean else entry(rnd, n))  # fmt: skip
        if not clean and out and rnd.random() < 0.1:
            out.append(dict(rnd.choice(out)))  # listed twice
        return out

    indices = [
        {"key": f"idx{i}_file_index", "number_files": 3, "files": files(rnd.randrange(0, 6))}
        for i in range(rnd.randrange(0, 4))
    ]
    meta: dict[str, Any] = {"recid": "77", "title": "t"}
    parts = [("files", files(rnd.randrange(0, 4))), ("_file_indices", indices)]
    rnd.shuffle(parts)
    meta.update(parts)
    if rnd.random() < 0.5:
        meta["distribution"] = {"number_files": rnd.randrange(0, 12)}
    return {"id": "77", "metadata": meta}


@pytest.mark.parametrize("seed", range(8))
def test_random_documents_agree(seed: int) -> None:
    rnd = random.Random(seed)
    taken = sum(same(document(rnd, clean=False)) for _ in range(150))
    clean = sum(same(document(rnd, clean=True)) for _ in range(30))
    assert clean >= 20, "the fast path declined plain documents"
    assert taken >= 10


def test_direct_files_after_the_indices_keep_their_place() -> None:
    """Portal documents list keys alphabetically: _file_indices before files."""
    doc = {
        "id": "5",
        "metadata": {
            "_file_indices": [{"key": "i", "files": [{"uri": "root://h//e/B.root"}]}],
            "files": [{"uri": "root://h//e/A.root", "size": 1}],
            "recid": "5",
        },
    }
    assert same(doc)
    record = fast(doc)
    assert isinstance(record, Record)
    assert [f.filename for f in record.files] == ["A.root", "B.root"]
    assert [f.index for f in record.files] == [None, "i"]


def one(*items: dict[str, Any], key_first: str = "files") -> dict[str, Any]:
    files = list(items)
    meta: dict[str, Any] = {"recid": "9"}
    parts = {"files": files[:1], "_file_indices": [{"key": "k", "files": files[1:]}]}
    meta[key_first] = parts[key_first]
    meta.update(parts)
    return {"id": "9", "metadata": meta}


@pytest.mark.parametrize(
    "items",
    [
        # names alike ignoring case: the general parser keeps the URI layout
        ({"uri": "root://h//e/0/A.root"}, {"uri": "root://h//e/1/a.root"}),
        # the same name, once given as filename
        ({"uri": "root://h//e/0/A.root"}, {"uri": "root://h//e/1/B.root", "filename": "A.root"}),
        # one URI listed twice under two names
        ({"uri": "root://h//e/A.root"}, {"uri": "root://h//e/A.root", "filename": "B.root"}),
        # urllib refuses the host: the general parser says so
        ({"uri": "root://[h/e/A.root"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "root://h//e/A%2Fx.root"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "root://h//e/A.root?x=1"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "ROOT://h//e/A.root"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "root://h//e/A.root", "size": "12"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "root://h//e/A.root", "checksum": "adler32:A"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "root://h//e/A.root", "filename": " A.root"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "root://h//e/", "filename": "A.root"}, {"uri": "root://h//e/B.root"}),
        ({"uri": "root://h", "filename": "A.root"}, {"uri": "root://h//e/B.root"}),
    ],
)
@pytest.mark.parametrize("key_first", ["files", "_file_indices"])
def test_tricky_lists_agree(items: tuple[dict[str, Any], ...], key_first: str) -> None:
    doc = one(*items, key_first=key_first)
    same(doc)
    want = general(doc)
    if isinstance(want, Record) and isinstance(fast(doc), Record):
        assert [f.path for f in want.files] == [f.path for f in fast(doc).files]  # type: ignore[union-attr]


def test_bitmap_collisions_are_checked_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an 8-bit bitmap every name shares a bit: distinct names still pass, alike fail."""
    from odrun.records import fast as fast_module

    monkeypatch.setattr(fast_module, "_BITMAP", 8)
    rnd = random.Random(3)
    assert sum(same(document(rnd, clean=True)) for _ in range(20)) >= 15
    assert not same(one({"uri": "root://h//e/0/A.root"}, {"uri": "root://h//e/1/a.root"}))


def test_file_list_behaves_like_the_tuple() -> None:
    doc = one(
        {"uri": "root://h//e/A.root", "size": 3, "checksum": "adler32:0000000a"},
        {"uri": "https://h/e/B.root", "filename": "C.root", "checksum": "sha1:" + "ab" * 20},
        {"uri": "root://h//e/D.root", "size": 0},
    )
    want = general(doc)
    got = fast(doc)
    assert isinstance(want, Record)
    assert isinstance(got, Record)
    files, tuple_ = got.files, tuple(want.files)
    assert isinstance(files, FileList)
    assert len(files) == 3
    assert files[-1] == tuple_[-1]
    assert files[0:2] == tuple_[0:2]
    assert files[::-1] == tuple_[::-1]
    assert files == tuple_
    assert tuple_ == files
    assert hash(files) == hash(tuple_)
    assert files != tuple_[:2]
    assert files.index(tuple_[1]) == 1
    assert tuple_[1] in files
    assert [f.filename for f in files] == ["A.root", "C.root", "D.root"]
    assert got.total_size == 3
    with pytest.raises(IndexError):
        files[3]
    with pytest.raises(IndexError):
        files[-4]


def _with_raw_indices(expanded: bool) -> dict[str, Any]:
    """The portal's shape: the index files listed raw in 'files' and expanded alongside."""
    raw = [
        {"uri": "root://h//e/file-indexes/CMS_x_file_index.json", "type": "index.json", "size": 9},
        {"uri": "root://h//e/file-indexes/CMS_x_file_index.txt", "type": "index.txt", "size": 5},
    ]
    entries = [{"uri": f"root://h//e/F{n}.root", "size": n, "checksum": f"adler32:{n:08x}"}
               for n in range(5)]  # fmt: skip
    meta: dict[str, Any] = {
        "_file_indices": [{"key": "CMS_x_file_index" if expanded else "other", "files": entries}],
        "files": [raw[0], {"uri": "root://h//e/README.txt", "size": 1}, raw[1]],
        "recid": "12",
    }
    return {"id": "12", "metadata": meta}


def test_raw_index_files_next_to_their_expanded_form_take_the_fast_path() -> None:
    assert same(_with_raw_indices(expanded=True))
    record = fast(_with_raw_indices(expanded=True))
    assert isinstance(record, Record)
    assert [f.filename for f in record.files] == ["README.txt"] + [f"F{n}.root" for n in range(5)]
    assert [f.index for f in record.files][:2] == [None, "CMS_x_file_index"]
    # not expanded: the index must be read, and the general parser reads it
    assert fast(_with_raw_indices(expanded=False)) is None
