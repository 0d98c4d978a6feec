"""Unreadable file indices: the failure is remembered for a while, commands that need no
file list never read indices, and ``odrun files`` exits 6 when its list is incomplete."""

from __future__ import annotations

import pytest

import portal_server

RECID = "17"  # three raw index.json files that the test portal cannot serve


def eos_requests(server: portal_server.PortalServer) -> int:
    return sum(path.startswith("/eos/") for path in server.requests)


def index_paths(server: portal_server.PortalServer) -> set[str]:
    doc = server.record(RECID)
    assert doc is not None
    return {
        "/" + f["uri"].split("//", 2)[2].lstrip("/")
        for f in doc["metadata"]["files"]
        if f.get("type") == "index.json"
    }


@pytest.fixture
def portal(fresh_portal, monkeypatch) -> portal_server.PortalServer:
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", f"root://eospublic.cern.ch={fresh_portal.url}")
    return fresh_portal


@pytest.mark.parametrize("fault", ["503", "404"])
def test_index_failure_is_remembered(odrun, portal, monkeypatch, fault: str) -> None:
    if fault == "503":
        portal.broken |= index_paths(portal)
    first = odrun("--portal", portal.url, "info", RECID, "--json")
    assert first.code == 0, first.err
    assert first.json()["files_complete"] is False
    tried = eos_requests(portal)
    assert tried >= 1
    if fault == "503":
        assert tried == 4  # 1 + ODRUN_RETRIES for the first index; the others fail fast
    again = odrun("--portal", portal.url, "info", RECID, "--json")
    assert again.code == 0, again.err
    doc = again.json()
    assert doc["files_complete"] is False
    assert len(doc["missing_indices"]) == 3
    assert eos_requests(portal) == tried, "the remembered failure was asked again"
    reasons = [index["reason"] for index in doc["indices"] if not index["available"]]
    assert all("ODRUN_INDEX_FAILURE_TTL" in reason for reason in reasons), reasons
    # --refresh asks again, and so does every call when the TTL is 0
    odrun("--portal", portal.url, "--refresh", "info", RECID, "--json")
    refreshed = eos_requests(portal)
    assert refreshed > tried
    monkeypatch.setenv("ODRUN_INDEX_FAILURE_TTL", "0")
    odrun("--portal", portal.url, "info", RECID, "--json")
    assert eos_requests(portal) > refreshed


@pytest.mark.parametrize("fmt", ["text", "bibtex", "json"])
def test_cite_reads_no_index(odrun, portal, fmt: str) -> None:
    portal.broken |= index_paths(portal)
    result = odrun("--portal", portal.url, "cite", RECID, "--format", fmt)
    assert result.code == 0, result.err
    assert "CERN Open Data Portal" in result.out
    assert eos_requests(portal) == 0


def test_files_exits_6_when_the_list_is_incomplete(odrun, portal) -> None:
    plain = odrun("--portal", portal.url, "files", RECID)
    assert plain.code == 6, plain.err
    assert "incomplete" in plain.err
    assert plain.err.strip().splitlines()[-1].startswith("odrun: partial")
    as_json = odrun("--portal", portal.url, "files", RECID, "--json")
    assert as_json.code == 6, as_json.err
    assert as_json.json()["files_complete"] is False
    # info --json still exits 0 and says files_complete
    info = odrun("--portal", portal.url, "info", RECID, "--json")
    assert info.code == 0
    assert info.json()["files_complete"] is False


@pytest.mark.parametrize("extra", [(), ("--json",), ("--dry-run", "--json")])
def test_fetch_exits_6_when_the_list_is_incomplete(odrun, portal, tmp_path, extra) -> None:
    """A fetch of what a record lists is not the record when indices are missing: a
    script running ``odrun fetch R && analyse`` must not go on as if it had everything."""
    result = odrun("--portal", portal.url, "fetch", RECID, "--dest", str(tmp_path / "d"), *extra)
    assert result.code == 6, result.err
    assert "file list is incomplete" in result.err
    assert result.err.strip().splitlines()[-1].startswith("odrun: partial")
    if "--json" in extra:
        assert result.json()["files_complete"] is False
    # negative control: a whole record (its files are on EOS: a dry run)
    whole = odrun("--portal", portal.url, "fetch", "1", "--dry-run", "--json", "--dest",
                  str(tmp_path / "w"), "--filter-range", "1-3")  # fmt: skip
    assert whole.code == 0, whole.err
    assert whole.json()["files_complete"] is True


def test_files_exits_0_when_the_list_is_complete(odrun, portal) -> None:
    """Negative control: a whole list is not partial, with or without filters."""
    assert odrun("--portal", portal.url, "files", "1").code == 0
    assert odrun("--portal", portal.url, "files", "1", "--json").code == 0
    assert odrun("--portal", portal.url, "files", "1", "--filter-range", "1-2").code == 0


def test_bad_failure_ttl_is_a_config_error(odrun, portal, monkeypatch) -> None:
    monkeypatch.setenv("ODRUN_INDEX_FAILURE_TTL", "soon")
    result = odrun("--portal", portal.url, "info", RECID)
    assert result.code == 8
    assert "index_failure_ttl" in result.err
