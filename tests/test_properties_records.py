"""Property tests: record metadata from the portal (parse.py, model.py, portal.py, resolve.py).

For ANY document - real records with keys dropped, types changed, huge numbers, NaN,
deep nesting, unicode, control characters - ``parse_record`` either returns a
:class:`Record` or raises an :class:`OdrunError`; and every record it returns is
safe to act on: each file path is relative, has no ``..``/``.``/empty part, no NUL
or backslash, and no two different files share a path.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from rich.console import Console

from odrun import render
from odrun.errors import MetadataError, OdrunError
from odrun.records import Resolver
from odrun.records.cite import cite
from odrun.records.model import Record
from odrun.records.parse import parse_record
from odrun.records.refs import parse_reference
from odrun.settings import Settings

import fuzzing
from fuzzing import RECORDS, hostile_file_entries, index_loader, mutated, mutated_records


def check_record(record: Record) -> None:
    """The invariants every parsed record keeps, whatever the input."""
    paths = [f.path for f in record.files]
    assert len(set(paths)) == len(paths), "two files share a download path"
    assert len({f.uri for f in record.files}) == len(record.files)
    for path in paths:
        parts = path.split("/")
        assert path, "an empty path"
        assert not path.startswith("/"), path
        assert "\x00" not in path, path
        assert "\\" not in path, path
        assert not any(part in ("", ".", "..") for part in parts), path
        path.encode("utf-8")  # a file name the file system can hold
    # its record URL is a reference to the same record
    assert parse_reference(record.record_url) == parse_reference(record.recid)
    # what `info --json`, `info` and `cite` do with it must not fail either
    json.dumps(record.to_dict(), allow_nan=False)
    console = Console(file=io.StringIO(), width=100)
    render.record_info(console, record)
    for fmt in ("text", "bibtex", "json"):
        cite(record, fmt)  # type: ignore[arg-type]


def parse_or_error(doc: Any, recid: str) -> Record | None:
    try:
        record = parse_record(doc, load_index=index_loader(recid))
    except OdrunError:
        return None
    check_record(record)
    return record


@pytest.mark.parametrize("recid", fuzzing.RECORD_IDS)
def test_the_real_records_parse(recid: str) -> None:
    """Negative control: the unmutated fixtures parse, so the properties below test something."""
    record = parse_or_error(RECORDS[recid], recid)
    assert record is not None
    assert record.recid == recid


@given(mutated_records())
def test_mutated_real_records_parse_or_raise_odrun_errors(case: tuple[str, dict[str, Any]]) -> None:
    recid, doc = case
    parse_or_error(doc, recid)


@given(mutated_records())
def test_mutated_records_in_an_api_envelope(case: tuple[str, dict[str, Any]]) -> None:
    recid, doc = case
    parse_or_error({"id": recid, "revision": 3, "metadata": doc}, recid)


@given(
    st.lists(hostile_file_entries(), min_size=1, max_size=6), st.sampled_from(fuzzing.RECORD_IDS)
)
def test_hostile_file_entries_never_give_unsafe_paths(
    entries: list[dict[str, Any]], recid: str
) -> None:
    doc = dict(RECORDS[recid])
    doc["files"] = [*entries, *(f for f in doc.get("files", []) if "type" not in f)]
    parse_or_error(doc, recid)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(("a", "b", "a/b", "c/a", "eos/x", "")),
            st.sampled_from(("f.root", "F.root", "g.root")),
        ),
        min_size=2,
        max_size=6,
    ),
    st.sampled_from(("root://eospublic.cern.ch/", "https://h/", "root://other/")),
    st.booleans(),
)
def test_files_with_colliding_names_get_distinct_paths(
    layout: list[tuple[str, str]], prefix: str, explicit_names: bool
) -> None:
    """Same base names in different (or the same) folders, on one or two hosts."""
    files = []
    for i, (folder, name) in enumerate(layout):
        uri = f"{prefix}/{folder}/{name}" if folder else f"{prefix}/{name}"
        if i % 2:
            uri = uri.replace("root://eospublic.cern.ch", "https://eospublic.cern.ch")
        files.append({"uri": uri, "filename": name} if explicit_names else {"uri": uri})
    parse_or_error({"recid": "1", "files": files}, "1")


_INDEX_JSON = (
    fuzzing.DATA
    / "file-indices/6004/CMS_Run2012B_DoubleMuParked_AOD_22Jan2013-v1_10000_file_index.json"
)
_INDEX = json.loads(_INDEX_JSON.read_text())
_INDEX_BYTES = st.one_of(
    mutated(_INDEX).map(fuzzing.dumps),
    st.binary(max_size=200),
    st.integers(min_value=100, max_value=50_000).map(lambda n: b"[" * n + b"]" * n),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\xff\xfe", b"[1e999]", b"[NaN]", b'[{"uri": "' + b"9" * 5000 + b'"}]']),
)


@given(_INDEX_BYTES, st.sampled_from(("index.json", "index.txt")))
def test_hostile_index_files_parse_or_raise(data: bytes, kind: str) -> None:
    doc = {
        "recid": "6004",
        "files": [{"type": kind, "uri": "root://eospublic.cern.ch//eos/x/i." + kind[6:]}],
    }
    try:
        record = parse_record(doc, load_index=lambda entry: data)
    except OdrunError:
        return
    check_record(record)


def _document_bytes(doc: dict[str, Any], how: str) -> bytes:
    if how == "deep":
        return b'{"metadata": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001
    data = fuzzing.dumps({"id": 1, "metadata": doc})
    return data[: len(data) // 2] if how == "truncated" else data


@given(mutated_records(), st.sampled_from(("json", "json", "truncated", "deep")))
def test_resolving_hostile_documents_from_a_mirror(
    case: tuple[str, dict[str, Any]], how: str
) -> None:
    """Bytes as a portal or mirror would serve them, through json.loads and the Resolver."""
    recid, doc = case
    data = _document_bytes(doc, how)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"{recid}.json").write_bytes(data)
        settings = Settings(
            portal_url=Path(tmp).as_uri(), cache_dir=Path(tmp) / "cache", offline=True, retries=0
        )
        try:
            with Resolver(settings) as resolver:
                record = resolver.resolve(recid)
        except OdrunError:
            return
    check_record(record)


@pytest.mark.parametrize(
    "uri", ["https://h:x/i.json", "https://[::1/i.json", "http://127.0.0.1:99999/i.json"]
)
def test_an_index_uri_httpx_refuses_is_an_unavailable_index(uri: str, tmp_path: Path) -> None:
    """https://h:x/ (a port that is not a number): httpx.InvalidURL escaped (exit 1)."""
    doc = {"recid": "7", "files": [{"type": "index.json", "uri": uri}, {"uri": "root://h//a"}]}
    (tmp_path / "7.json").write_text(json.dumps({"id": "7", "metadata": doc}))
    settings = Settings(portal_url=tmp_path.as_uri(), cache_dir=tmp_path / "cache", retries=0)
    try:
        with Resolver(settings) as resolver:
            record = resolver.resolve("7")
    except MetadataError:
        return  # the whole record refused: also a typed answer
    assert not record.files_complete
    check_record(record)


# -- failing examples found by the properties above, kept as plain unit tests ---------------


@given(st.sampled_from(["²", "٣", "0" * 4400 + "7", "9" * 5000]))
@example("²")
def test_digit_strings_int_refuses_are_not_a_size(size: str) -> None:
    record = parse_record({"recid": "1", "files": [{"uri": "root://h//a.root", "size": size}]})
    assert record.files[0].size in (None, 7)


def test_absurd_sizes_are_ignored_not_rendered() -> None:
    """A 400-digit size made `odrun info` fail with OverflowError (float(size))."""
    huge = 10**400
    record = parse_record(
        {
            "recid": "1",
            "distribution": {"size": huge},
            "files": [{"uri": "root://h//a", "size": huge}],
        }
    )
    assert record.files[0].size is None
    assert record.declared_size is None
    check_record(record)


def test_a_recid_of_5000_digits_is_unsafe_metadata() -> None:
    with pytest.raises(MetadataError):
        parse_record({"recid": "1" * 5000})


def test_a_huge_integer_title_is_not_a_crash() -> None:
    record = parse_record({"recid": "1", "title": 10**5000})
    check_record(record)


@pytest.mark.parametrize("cached", [b"\xff5500", b"../../etc", b"", b"9" * 5000])
def test_a_damaged_doi_cache_entry_is_a_miss(cached: bytes, tmp_path: Path) -> None:
    """A cache entry that is not UTF-8 raised UnicodeDecodeError (exit 1); '../../etc' was
    used as a recid."""
    with Resolver(Settings(cache_dir=tmp_path, offline=True)) as resolver:
        resolver.cache.put_doi("10.1234/x", "5500")
        resolver.cache._doi_path("10.1234/x").write_bytes(cached)
        with pytest.raises(OdrunError):  # OfflineError: not cached, and --offline
            resolver.recid_of(parse_reference("10.1234/x"))
