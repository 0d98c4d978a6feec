"""Reference parsing, checksums, record parsing edge cases, filters, citations."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from odrun.checksum import Checksum, checksum_file, parse_checksum
from odrun.errors import InvalidReferenceError, MetadataError, UsageError
from odrun.records import FileFilter, parse_reference
from odrun.records.cite import as_bibtex, as_csl, as_text
from odrun.records.parse import parse_record

DOI = "10.7483/OPENDATA.CMS.A342.9982"


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        (DOI, "doi", DOI),
        (f"doi:{DOI}", "doi", DOI),
        (f"DOI: {DOI}", "doi", DOI),
        (f"https://doi.org/{DOI}", "doi", DOI),
        ("http://dx.doi.org/10.7483/OPENDATA.CMS.A342.9982", "doi", DOI),
        ("https://doi.org/10.7483%2FOPENDATA.CMS.A342.9982", "doi", DOI),
        ("5500", "recid", "5500"),
        ("007", "recid", "7"),
        ("CMS-5500", "recid", "cms-5500"),
        ("https://opendata.cern.ch/record/5500", "recid", "5500"),
        ("https://opendata.cern.ch/record/5500/files/x.root", "recid", "5500"),
        ("opendata.cern.ch/record/cms-5500", "recid", "cms-5500"),
        ("http://127.0.0.1:5000/api/records/9", "recid", "9"),
        ("10.7483/OOPENDATA.LHCB.EBYF.C7OY", "doi", "10.7483/OOPENDATA.LHCB.EBYF.C7OY"),
    ],
)
def test_parse_reference(text: str, kind: str, value: str) -> None:
    ref = parse_reference(text)
    assert (ref.kind, ref.value) == (kind, value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "doi:",
        "doi:10.7483",
        "10.74/x",
        "10.7483/",
        "higgs",
        "https://opendata.cern.ch/search?q=x",
    ],
)
def test_bad_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


def test_checksum_parsing() -> None:
    assert parse_checksum("adler32:aa8c36a") == Checksum("adler32", "0aa8c36a")
    assert parse_checksum("alder32:C89ABB9B") == Checksum("adler32", "c89abb9b")
    assert str(parse_checksum("sha1:" + "a" * 40)) == "sha1:" + "a" * 40
    for bad in ("adler32:", "crc:12", "adler32:xyz", "adler32:123456789", "nocolon"):
        with pytest.raises(MetadataError):
            parse_checksum(bad)


def test_checksum_file_streams(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40000  # 10 MB, more than one block
    path = tmp_path / "f"
    path.write_bytes(data)
    assert checksum_file(path) == Checksum("adler32", f"{zlib.adler32(data):08x}")
    import hashlib

    assert checksum_file(path, "sha1").value == hashlib.sha1(data).hexdigest()


def _doc(files: list[dict[str, object]], **meta: object) -> dict[str, object]:
    return {
        "id": "1",
        "metadata": {
            "recid": "1",
            "title": "t",
            "_file_indices": [{"key": "idx_file_index", "files": files}],
        }
        | meta,
    }


def test_identical_basenames_get_unique_paths() -> None:
    base = "root://eospublic.cern.ch//eos/opendata/alice/2015/LHC15o"
    files = [
        {"uri": f"{base}/000245349/{n:04d}/AO2D.root", "size": 1, "checksum": "adler32:1"}
        for n in (1, 2, 3)
    ]
    record = parse_record(_doc(files))
    assert [f.path for f in record.files] == ["0001/AO2D.root", "0002/AO2D.root", "0003/AO2D.root"]
    assert {f.filename for f in record.files} == {"AO2D.root"}


def test_raw_txt_index_used_when_no_json() -> None:
    doc = {
        "metadata": {
            "recid": "2",
            "files": [
                {
                    "uri": "root://eospublic.cern.ch//eos/x/a_file_index.txt",
                    "type": "index.txt",
                    "size": 10,
                    "checksum": "adler32:1",
                }
            ],
        }
    }
    record = parse_record(
        doc, load_index=lambda entry: b"root://h//eos/x/1.root\nroot://h//eos/x/2.root\n"
    )
    assert [f.filename for f in record.files] == ["1.root", "2.root"]
    assert record.files[0].checksum is None
    assert record.files_complete


def test_unavailable_index_marks_incomplete() -> None:
    doc = {
        "metadata": {
            "recid": "2",
            "distribution": {"number_files": 5},
            "files": [
                {"uri": "root://eospublic.cern.ch//eos/x/a_file_index.json", "type": "index.json"}
            ],
        }
    }

    def fail(entry: object) -> bytes:
        raise MetadataError("gone")

    record = parse_record(doc, load_index=fail)
    assert not record.files_complete
    assert record.missing_indices[0].reason == "gone"
    assert record.notes == ()  # no count mismatch note for an incomplete list


def test_filters() -> None:
    files = [
        {"uri": f"root://h//eos/d/{i // 10}/f{i}.{'root' if i % 2 else 'txt'}", "size": i}
        for i in range(1, 31)
    ]
    record = parse_record(_doc(files))
    assert len(FileFilter.build(["*.root"]).apply(record.files)) == 15
    assert [f.filename for f in FileFilter.build(regexp=r"^f2\d\.").apply(record.files)][:2] == [
        "f20.txt",
        "f21.root",
    ]
    picked = FileFilter.build(["*.root"], ranges=["1-2", "15-20"]).apply(record.files)
    assert [f.filename for f in picked] == ["f1.root", "f3.root", "f29.root"]
    with pytest.raises(UsageError):
        FileFilter.build(regexp="(")
    with pytest.raises(UsageError):
        FileFilter.build(ranges=["0-3"])


def test_citations() -> None:
    doc = {
        "metadata": {
            "recid": "5500",
            "doi": "10.7483/X.Y",
            "title": "Higgs & 4_l",
            "authors": [{"name": "Doe, Jane"}, {"name": "Roe, Rick"}],
            "date_published": "2017",
            "experiment": ["CMS"],
            "type": {"primary": "Software"},
        }
    }
    record = parse_record(doc)
    assert as_text(record) == (
        "Doe, Jane; Roe, Rick (2017). Higgs & 4_l. CERN Open Data Portal. DOI:10.7483/X.Y"
    )
    bib = as_bibtex(record)
    assert bib.startswith("@misc{CMS_OpenData_5500,")
    assert "author = {Doe, Jane and Roe, Rick}" in bib
    assert r"title = {{Higgs \& 4\_l}}" in bib
    assert "doi = {10.7483/X.Y}" in bib
    csl = as_csl(record)
    assert csl["type"] == "software"
    assert csl["issued"] == {"date-parts": [[2017]]}
    assert csl["DOI"] == "10.7483/X.Y"


# -- file name collisions: distinct paths or a MetadataError, never one file for two --------


def _files(*entries: tuple[str, str | None, str]) -> list[dict[str, object]]:
    """(uri, filename, checksum) -> index entries."""
    out: list[dict[str, object]] = []
    for uri, name, checksum in entries:
        entry: dict[str, object] = {"uri": uri, "size": 1, "checksum": checksum}
        if name:
            entry["filename"] = name
        out.append(entry)
    return out


@pytest.mark.parametrize(
    "entries",
    [
        # the same URI path on two servers, different content
        [("root://a.cern.ch//eos/x/f.root", None, "adler32:1"),
         ("root://b.cern.ch//eos/x/f.root", None, "adler32:2")],
        # one declared file name for two files of one folder
        [("root://h//eos/x/1.root", "f.root", "adler32:1"),
         ("root://h//eos/x/2.root", "f.root", "adler32:2")],
        # a query string makes another URI, not another path
        [("https://h/eos/x/f.root?v=1", None, "adler32:1"),
         ("https://h/eos/x/f.root?v=2", None, "adler32:2")],
        # 'x' would be a file and the folder of 'x/x'
        [("root://h//eos/r/x", None, "adler32:1"), ("root://h//eos/r/x/x", None, "adler32:2")],
        # no checksum: identical content cannot be assumed
        [("root://a.cern.ch//eos/x/f.root", None, ""),
         ("root://b.cern.ch//eos/x/f.root", None, "")],
    ],
)  # fmt: skip
def test_colliding_paths_are_a_metadata_error(entries: list[tuple[str, str | None, str]]) -> None:
    with pytest.raises(MetadataError, match=r"would both be saved as|both a file and a folder"):
        parse_record(_doc(_files(*entries)))


def test_paths_are_distinct_case_insensitively_when_possible() -> None:
    record = parse_record(
        _doc(_files(("root://h//eos/a/Data.root", None, "adler32:1"),
                    ("root://h//eos/b/data.root", None, "adler32:2")))
    )  # fmt: skip
    assert [f.path for f in record.files] == ["a/Data.root", "b/data.root"]


def test_one_file_listed_by_two_protocols_is_kept_once() -> None:
    record = parse_record(
        _doc(_files(("root://h//eos/x/f.root", None, "adler32:1"),
                    ("https://h/eos/x/f.root", None, "adler32:1")))
    )  # fmt: skip
    assert [(f.path, f.uri) for f in record.files] == [("f.root", "root://h//eos/x/f.root")]


def test_fetch_never_links_two_files_to_one_path(tmp_path: Path) -> None:
    """The fetcher's own guard, for file lists not made by parse_record (exact and case)."""
    from odrun.records.paths import claim_paths
    from odrun.settings import Settings
    from odrun.transfer.fetch import Fetcher

    files = []
    for n, path in enumerate(["f.root", "f.root", "d", "d/x.root", "C.root", "c.root"]):
        src = tmp_path / f"src{n}"
        src.write_bytes(bytes([n]) * 10)
        digest = f"adler32:{zlib.adler32(src.read_bytes()):08x}"
        files.append(_record_file(src.as_uri(), path, digest))
    settings = Settings.load({"cache_dir": str(tmp_path / "cache")})
    with Fetcher(settings) as fetcher:
        report = fetcher.fetch_files(files, tmp_path / "dest")
    states = [(r.path, r.state.value, r.exit_code) for r in report.results]
    assert ("f.root", "failed", 9) in states
    assert ("f.root", "downloaded", 0) in states
    assert ("d/x.root", "failed", 9) in states
    assert (tmp_path / "dest" / "f.root").read_bytes() == bytes([0]) * 10
    assert claim_paths(["C.root", "c.root"], case_insensitive=True) == [None, "C.root"]
    assert claim_paths(["C.root", "c.root"], case_insensitive=False) == [None, None]
    assert claim_paths(["a/b", "a"], case_insensitive=False) == [None, "a/b"]


def _record_file(uri: str, path: str, checksum: str) -> object:
    from odrun.records.model import RecordFile

    return RecordFile(uri, 10, parse_checksum(checksum), path.rsplit("/", 1)[-1], path)


def test_lock_marks_files_without_checksum_unverified() -> None:
    from odrun.records.model import RecordFile
    from odrun.workflow.lock import file_entry

    with_sum = RecordFile("root://h//a", 1, parse_checksum("adler32:1"), "a", "a")
    without = RecordFile("root://h//b", 1, None, "b", "b")
    assert file_entry(with_sum)["integrity"] == "verified"
    assert file_entry(without)["integrity"] == "unverified"
