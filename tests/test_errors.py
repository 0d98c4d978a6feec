"""Bad input: one line on stderr, no traceback, a distinct exit code per failure family."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xrootd_server import free_port


def run_odrun(
    *args: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODRUN_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "odrun", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]
    assert proc.stdout == ""


def test_bad_doi(portal, tmp_path: Path) -> None:
    proc = run_odrun(
        "--portal", portal.url, "info", "doi:10.74/x", env_extra={"ODRUN_CACHE_DIR": str(tmp_path)}
    )
    assert_one_line(proc, 2, "not a valid DOI", "10.7483/OPENDATA.CMS.A342.9982")


def test_garbage_reference(portal, tmp_path: Path) -> None:
    proc = run_odrun(
        "--portal", portal.url, "info", "higgs", env_extra={"ODRUN_CACHE_DIR": str(tmp_path)}
    )
    assert_one_line(proc, 2, "'higgs'", "recid")


def test_unknown_recid(portal, tmp_path: Path) -> None:
    proc = run_odrun(
        "--portal", portal.url, "info", "999999", env_extra={"ODRUN_CACHE_DIR": str(tmp_path)}
    )
    assert_one_line(proc, 3, "record 999999 does not exist", portal.url)


def test_unknown_doi(portal, tmp_path: Path) -> None:
    proc = run_odrun(
        "--portal",
        portal.url,
        "cite",
        "10.7483/OPENDATA.CMS.NOPE.NOPE",
        env_extra={"ODRUN_CACHE_DIR": str(tmp_path)},
    )
    assert_one_line(proc, 3, "no record with DOI 10.7483/OPENDATA.CMS.NOPE.NOPE")


def test_unreachable_portal(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_odrun(
        "--portal",
        url,
        "files",
        "5500",
        env_extra={"ODRUN_CACHE_DIR": str(tmp_path), "ODRUN_RETRY_BACKOFF": "0.01"},
    )
    assert_one_line(proc, 5, "cannot get record 5500", "attempts")


def test_bad_portal_setting(tmp_path: Path) -> None:
    proc = run_odrun(
        "info", "5500", env_extra={"ODRUN_PORTAL_URL": "ftp://x", "ODRUN_CACHE_DIR": str(tmp_path)}
    )
    assert_one_line(proc, 8, "ftp://x", "ODRUN_PORTAL_URL")
    proc = run_odrun("info", "5500", env_extra={"ODRUN_TIMEOUT": "soon"})
    assert_one_line(proc, 8, "ODRUN_TIMEOUT", "'soon'")


def test_missing_mirror_folder(tmp_path: Path) -> None:
    proc = run_odrun("--portal", f"file://{tmp_path}/nope", "info", "1")
    assert_one_line(proc, 8, "does not exist")


def test_bad_filter_range(mirror_dir: Path) -> None:
    proc = run_odrun("--portal", f"file://{mirror_dir}", "files", "1", "--filter-range", "5-2")
    assert_one_line(proc, 2, "--filter-range", "1-10")


def test_click_usage_error_exit_2() -> None:
    proc = run_odrun("info")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Missing argument" in proc.stderr


def test_help_lists_exit_codes() -> None:
    proc = run_odrun("--help")
    assert proc.returncode == 0
    for code in ("0", "2", "3", "5", "8", "9", "130"):
        assert f"\n    {code:>3}  " in proc.stdout or f"  {code}  " in proc.stdout


@pytest.mark.parametrize(
    "bad_uri",
    ["file:///etc/passwd", "ftp://x/y.root", "/abs/path.root"],
)
def test_unsafe_uri_rejected(fresh_portal, odrun, bad_uri: str) -> None:
    import portal_server

    doc = portal_server.to_api(portal_server.load_source("3005"))
    doc["metadata"]["files"][0]["uri"] = bad_uri
    fresh_portal.overrides["3005"] = doc
    result = odrun("--portal", fresh_portal.url, "info", "3005")
    assert result.code == 9
    assert "unsafe metadata" in result.err
    assert bad_uri in result.err


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b", ".."])
def test_escaping_file_name_rejected(fresh_portal, odrun, name: str) -> None:
    import portal_server

    doc = portal_server.to_api(portal_server.load_source("9"))
    doc["metadata"]["_file_indices"][0]["files"][3]["filename"] = name
    fresh_portal.overrides["9"] = doc
    result = odrun("--portal", fresh_portal.url, "files", "9")
    assert result.code == 9, result.err
    assert "would escape" in result.err
    assert result.out == ""


def test_malformed_record_document(fresh_portal, odrun) -> None:
    fresh_portal.overrides["3005"] = {"id": "3005", "metadata": {"recid": "3005", "files": "nope"}}
    result = odrun("--portal", fresh_portal.url, "info", "3005")
    assert result.code == 9
    assert "not a list of objects" in result.err


@pytest.mark.parametrize("recid", ["../../../tmp/escaped", "/root", "5500/../x", ""])
def test_unsafe_recid_rejected(
    fresh_portal, odrun, recid: str, tmp_path: Path, monkeypatch
) -> None:
    import portal_server

    doc = portal_server.to_api(portal_server.load_source("3005"))
    doc["metadata"]["recid"] = recid
    doc["id"] = recid
    fresh_portal.overrides["3005"] = doc
    work = tmp_path / "deep" / "er" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    result = odrun("--portal", fresh_portal.url, "fetch", "3005")
    assert result.code == 9, result.err
    assert sorted(p.name for p in tmp_path.rglob("*") if "cache" not in p.parts) == [
        "deep",
        "er",
        "work",
    ]


def test_mirror_file_uris_stay_inside_the_mirror(odrun, tmp_path: Path) -> None:
    import json

    import portal_server

    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "files").symlink_to("/etc")
    for n, uri in enumerate(["file:///etc/hostname", "file:files/hostname", "file:../x"]):
        doc = portal_server.to_api(portal_server.load_source("3005"))
        doc["metadata"]["files"][0]["uri"] = uri
        (mirror / "3005.json").write_text(json.dumps(doc))
        result = odrun(
            "--portal", f"file://{mirror}", "fetch", "3005", "--dest", str(tmp_path / str(n))
        )
        assert result.code == 9, (uri, result.err)
        assert "outside the mirror" in result.err or "escape" in result.err
        assert not (tmp_path / str(n)).exists()
