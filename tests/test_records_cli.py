"""odrun info / files / cite on every real fixture record, via the HTTP API and a file:// mirror."""

from __future__ import annotations

import jsonschema
import pytest

from odrun.specs import load_spec

import portal_server
from conftest import RECIDS, expected

RECORD_SCHEMA = jsonschema.Draft202012Validator(load_spec("record.schema.json"))

PORTALS = ["http", "mirror"]


@pytest.fixture(params=PORTALS)
def portal_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "http":
        server = request.getfixturevalue("portal")
        # raw index files of records not expanded offline are looked up on this server
        monkeypatch.setenv("ODRUN_PROTOCOL_MAP", f"root://eospublic.cern.ch={server.url}")
        return str(server.url)
    return "file://" + str(request.getfixturevalue("mirror_dir"))


def references(recid: str) -> list[str]:
    refs = [recid, f"https://opendata.cern.ch/record/{recid}"]
    doi = expected(recid).doi
    if doi:
        refs += [doi, f"doi:{doi}", f"https://doi.org/{doi}"]
    return refs


@pytest.mark.parametrize("recid", RECIDS)
def test_info_json_matches_record(odrun, portal_url: str, recid: str) -> None:
    want = expected(recid)
    for ref in references(recid):
        result = odrun("--portal", portal_url, "info", ref, "--json")
        assert result.code == 0, (ref, result.err)
        doc = result.json()
        RECORD_SCHEMA.validate(doc)
        assert doc["recid"] == recid
        assert doc["doi"] == want.doi
        assert doc["file_count"] == len(want.uris)
        assert doc["total_size"] == want.total_size
        assert [f["uri"] for f in doc["files"]] == want.uris
        assert doc["files_complete"] is want.complete
        assert all(
            f["checksum"] is None or f["checksum"].split(":")[0] in ("adler32", "sha1")
            for f in doc["files"]
        )
        for key in ("title", "experiment", "type", "total_size", "file_count"):
            assert key in doc


@pytest.mark.parametrize("recid", RECIDS)
def test_info_human_and_cite_and_files(odrun, portal_url: str, recid: str) -> None:
    want = expected(recid)
    info = odrun("--portal", portal_url, "info", recid)
    assert info.code == 0, info.err
    assert f"{len(want.uris)} (" in info.out
    if not want.complete:
        assert "INCOMPLETE" in info.out
        assert "file list incomplete" in info.out
    files = odrun("--portal", portal_url, "files", recid)
    # an incomplete list is partial (exit 6), so that scripts cannot take it for a whole one
    assert files.code == (0 if want.complete else 6), files.err
    assert files.out.splitlines() == want.uris
    for fmt in ("text", "bibtex", "json"):
        cite = odrun("--portal", portal_url, "cite", recid, "--format", fmt)
        assert cite.code == 0, cite.err
        assert "CERN Open Data Portal" in cite.out
        if want.doi:
            assert want.doi in cite.out


def test_recid_1_expands_2916_files(odrun, portal) -> None:
    doc = odrun("--portal", portal.url, "info", "10.7483/OPENDATA.CMS.A342.9982", "--json").json()
    assert doc["file_count"] == 2916
    assert doc["total_size"] == 2_678_962_237_287
    assert doc["declared_file_count"] == 2916
    assert doc["files_complete"] is True
    assert doc["environment"]["container_images"][0]["name"].startswith("docker.io/cmsopendata/")


def test_experiment_prefixed_recid(odrun, portal, mirror_dir) -> None:
    for url in (portal.url, f"file://{mirror_dir}"):
        doc = odrun("--portal", url, "info", "cms-5500", "--json").json()
        assert doc["recid"] == "5500"
        wrong = odrun("--portal", url, "info", "atlas-5500")
        assert wrong.code == 3, wrong.err


def test_incomplete_record_says_so(odrun, portal, monkeypatch) -> None:
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", f"root://eospublic.cern.ch={portal.url}")
    doc = odrun("--portal", portal.url, "info", "17", "--json").json()
    assert doc["files_complete"] is False
    assert len(doc["missing_indices"]) == 3
    assert doc["declared_file_count"] == 1378
    assert doc["file_count"] == 0


def test_declared_count_differs_from_list(odrun, portal) -> None:
    doc = odrun("--portal", portal.url, "info", "5500", "--json").json()
    assert doc["declared_file_count"] == 10
    assert doc["file_count"] == 11
    assert "declares 10 files but lists 11" in doc["notes"][0]


@pytest.mark.parametrize(
    ("recid", "checksum"),
    [
        ("133", "adler32:0aa8c36a"),  # not zero-padded in the record
        ("3901", "adler32:c89abb9b"),  # misspelled 'alder32:'
    ],
)
def test_messy_checksums_normalised(odrun, portal, recid: str, checksum: str) -> None:
    doc = odrun("--portal", portal.url, "info", recid, "--json").json()
    assert doc["files"][0]["checksum"] == checksum


def test_sha1_index_checksums_kept(odrun, portal) -> None:
    doc = odrun("--portal", portal.url, "info", "272", "--json").json()
    assert doc["file_count"] == 1386
    algorithms = {f["checksum"].split(":")[0] for f in doc["files"]}
    assert algorithms <= {"adler32", "sha1"}


def test_odd_dois(odrun, portal) -> None:
    typo = odrun("--portal", portal.url, "info", "10.7483/OOPENDATA.LHCB.EBYF.C7OY", "--json")
    assert typo.code == 0
    assert typo.json()["recid"] == "93945"
    empty = odrun("--portal", portal.url, "info", "26999", "--json").json()
    assert empty["doi"] is None
    cite = odrun("--portal", portal.url, "cite", "26999")
    assert "JADE collaboration" in cite.out
    assert "/record/26999" in cite.out


def test_raw_index_listing_is_fetched_and_verified(odrun, raw_portal, monkeypatch) -> None:
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", f"root://eospublic.cern.ch={raw_portal.url}")
    doc = odrun("--portal", raw_portal.url, "info", "9", "--json").json()
    assert doc["file_count"] == 325
    assert doc["files_complete"] is True
    assert [f["uri"] for f in doc["files"]] == expected("9").uris
    # the index is now cached by checksum: offline still expands it
    offline = odrun("--portal", raw_portal.url, "--offline", "info", "9", "--json").json()
    assert offline["file_count"] == 325


@pytest.mark.parametrize("recid", RECIDS)
def test_test_portal_documents_follow_the_read_schema(recid: str) -> None:
    validator = jsonschema.Draft202012Validator(load_spec("portal-record.schema.json"))
    validator.validate(portal_server.to_api(portal_server.load_source(recid)))
    validator.validate(portal_server.to_api(portal_server.load_source(recid), raw=True))
