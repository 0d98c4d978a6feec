"""``odrun verify-files`` vouches for a record's files only when it knows all of them: a
record whose file index could not be read (a server answering 404 or 500 for it, or
bytes that do not match its checksum) is never reported "ok"."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_verify_files_of_an_incomplete_record_is_not_ok(
    odrun, portal, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", f"root://eospublic.cern.ch={portal.url}")
    info = odrun("--portal", portal.url, "info", "17", "--json").json()
    assert info["files_complete"] is False  # its three indices are not served
    dest = tmp_path / "d"
    dest.mkdir()
    res = odrun("--portal", portal.url, "verify-files", str(dest), "17", "--json")
    assert res.code == 6, (res.code, res.out, res.err)
    assert res.json()["ok"] is False
    assert res.json()["files_complete"] is False
    assert "incomplete" in res.err
    human = odrun("--portal", portal.url, "verify-files", str(dest), "17")
    assert human.code == 6, (human.out, human.err)
    assert "index" in human.err
    assert len(human.err.strip().splitlines()) <= 2, human.err
