"""odrun mirror writes a file:// portal that answers like the API, offline."""

from __future__ import annotations

import json
from pathlib import Path


def test_mirror_round_trip(portal, odrun, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ODRUN_PROTOCOL_MAP", f"root://eospublic.cern.ch={portal.url}")
    dest = tmp_path / "m"
    result = odrun(
        "--portal",
        portal.url,
        "mirror",
        "1",
        "5500",
        "10.7483/OPENDATA.CMS.ZQS3.LGLP",
        "17",
        "--to",
        str(dest),
        "--json",
    )
    assert result.code == 0, result.err
    entries = {e["recid"]: e for e in result.json()}
    assert entries["1"]["file_count"] == 2916
    assert entries["17"]["files_complete"] is False
    assert sorted(p.name for p in dest.iterdir()) == [
        "1.json",
        "17.json",
        "30522.json",
        "5500.json",
    ]
    doc = json.loads((dest / "1.json").read_text())
    assert {"id", "metadata"} <= set(doc)
    assert sum(len(i["files"]) for i in doc["metadata"]["_file_indices"]) == 2916
    for target in ("1", "10.7483/OPENDATA.CMS.A342.9982"):
        via_http = odrun("--portal", portal.url, "info", target, "--json").json()
        via_mirror = odrun(
            "--portal", f"file://{dest}", "--offline", "info", target, "--json"
        ).json()
        for key in ("recid", "doi", "title", "file_count", "total_size", "files"):
            assert via_mirror[key] == via_http[key]
    # a record whose indices were unavailable stays marked incomplete in the mirror
    incomplete = odrun("--portal", f"file://{dest}", "--offline", "info", "17", "--json").json()
    assert incomplete["files_complete"] is False


def test_relative_file_portal(mirror_dir: Path, odrun, monkeypatch) -> None:
    monkeypatch.chdir(mirror_dir.parent)
    result = odrun("--portal", f"file://{mirror_dir.name}", "info", "3005", "--json")
    assert result.code == 0, result.err
    assert result.json()["file_count"] == 1
