"""odrun doctor and CVMFS: a real read-only repository tree at /cvmfs/<repo>, its revision
pinned in the lock and the RO-Crate, and bound read-only into podman containers."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from odrun import cvmfs
from odrun.doctor import check_cvmfs_quota

import cvmfs_tree
from test_run import serial_spec
from test_run_podman import use_image


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cvmfs_tree.Mounted]:
    reason = cvmfs_tree.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with cvmfs_tree.mounted_repo(tmp_path_factory.mktemp("cvmfs")) as mounted:
        yield mounted


def by_name(doc: dict, name: str) -> dict:  # type: ignore[type-arg]
    (check,) = [c for c in doc["checks"] if c["name"] == name]
    return check


def test_the_tree_is_read_only_with_cvmfs_xattrs(repo: cvmfs_tree.Mounted) -> None:
    assert os.path.ismount(repo.path)
    if shutil.which("squashfuse"):
        assert repo.how == "squashfuse"
    assert (repo.path / "hello.txt").read_text() == cvmfs_tree.HELLO
    with pytest.raises(OSError, match="Read-only file system"):
        (repo.path / "new.txt").write_text("x")
    state = cvmfs.probe(cvmfs_tree.REPO)
    assert state.present
    assert state.mountpoint
    assert (state.revision, state.root_hash) == (cvmfs_tree.REVISION, cvmfs_tree.ROOT_HASH)


def test_doctor_sees_the_repository(odrun, repo: cvmfs_tree.Mounted) -> None:
    result = odrun("doctor", "--cvmfs", cvmfs_tree.REPO, "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["ok"] is True
    check = by_name(doc, cvmfs_tree.REPO)
    assert check["status"] == "ok"
    assert check["required"] is True
    assert f"revision {cvmfs_tree.REVISION}" in check["detail"]
    assert cvmfs_tree.ROOT_HASH in check["detail"]
    # without --cvmfs: the open-data repositories (not mounted: warnings) and what is mounted
    plain = odrun("doctor")
    assert plain.code == 0, plain.err
    assert f"ok   cvmfs    {cvmfs_tree.REPO}: /cvmfs/{cvmfs_tree.REPO} (mount point)" in plain.out


def test_doctor_fails_only_for_required_checks(odrun, tmp_path: Path) -> None:
    missing = odrun("doctor", "--cvmfs", "nothing-here.cern.ch", "--json")
    assert missing.code == 8
    assert "nothing-here.cern.ch: /cvmfs/nothing-here.cern.ch is not mounted" in missing.err
    check = by_name(missing.json(), "nothing-here.cern.ch")
    assert check["status"] == "fail"
    assert "cvmfs_config probe" in check["fix"]
    bad = odrun("doctor", "--cvmfs", "CMS")
    assert bad.code == 2
    assert "not a fully qualified repository name" in bad.err


def test_doctor_cache_not_writable(odrun, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ODRUN_CACHE_DIR", str(blocker / "cache"))
    result = odrun("doctor", "--json")
    assert result.code == 8
    check = by_name(result.json(), "cache")
    assert check["status"] == "fail"
    assert "ODRUN_CACHE_DIR" in check["fix"]


def fake_tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_doctor_runtimes_and_proxies(odrun, tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "podman", "echo 'cannot connect to the engine' >&2; exit 125")
    monkeypatch.setenv("PATH", str(bin_dir))  # no docker, apptainer, snakemake, xrdcp
    monkeypatch.setenv("http_proxy", "squid.example.org:3128")
    monkeypatch.setenv("CVMFS_HTTP_PROXY", "http://127.0.0.1:3128;DIRECT")
    result = odrun("doctor", "--json")
    assert result.code == 0, result.err  # nothing required failed
    doc = result.json()
    podman = by_name(doc, "podman")
    assert podman["status"] == "warn"
    assert "cannot connect to the engine" in podman["detail"]
    assert by_name(doc, "http_proxy")["status"] == "warn"
    assert by_name(doc, "CVMFS_HTTP_PROXY")["detail"].startswith("http://127.0.0.1:3128;DIRECT")
    assert by_name(doc, "snakemake")["status"] == "warn"
    (empty := tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(empty))
    none = odrun("doctor", "--json").json()
    assert by_name(none, "container runtime")["status"] == "warn"


def test_doctor_real_podman(odrun) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman not installed")
    check = by_name(odrun("doctor", "--json").json(), "podman")
    assert check["status"] == "ok", check


def test_revision_from_user_xattrs_under_a_custom_root(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "x.example.org").mkdir()
    try:
        os.setxattr(tmp_path / "x.example.org", "user.revision", b"17")
    except OSError as exc:
        pytest.skip(f"no user xattrs on {tmp_path}: {exc}")
    monkeypatch.setenv("ODRUN_CVMFS_ROOT", str(tmp_path))
    assert cvmfs.pins(["x.example.org", "y.example.org"]) == {
        "x.example.org": {"revision": "17", "root_hash": None},
        "y.example.org": {"revision": None, "root_hash": None},
    }
    state = cvmfs.probe("x.example.org")
    assert state.present
    assert not state.mountpoint


def cvmfs_spec(root: Path, image: str, commands: dict[str, list[str]]) -> Path:
    spec = serial_spec(root, commands)
    text = spec.read_text().replace(
        "workflow:\n  type: serial\n",
        f"workflow:\n  type: serial\n  resources:\n    cvmfs: [{cvmfs_tree.REPO}]\n",
    )
    spec.write_text(text)
    use_image(spec, image)
    return spec


def test_run_binds_the_repository_read_only(
    odrun, repo: cvmfs_tree.Mounted, podman_ready: str, tmp_path: Path
) -> None:
    where = f"/cvmfs/{cvmfs_tree.REPO}"
    cvmfs_spec(tmp_path, podman_ready, {
        "read": [f"mkdir -p out && cat {where}/hello.txt > out/result.txt"],
        "write": [f"(touch {where}/new 2>/dev/null && echo writable || echo read-only)"
                  " >> out/result.txt"],
    })  # fmt: skip
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["runtime"] == "podman"
    out = Path(doc["run_dir"]) / "workspace" / "out" / "result.txt"
    assert out.read_text() == cvmfs_tree.HELLO + "read-only\n"
    assert not (repo.path / "new").exists()
    pinned = {"revision": cvmfs_tree.REVISION, "root_hash": cvmfs_tree.ROOT_HASH}
    lock = json.loads((tmp_path / "odrun.lock").read_text())
    assert lock["cvmfs"] == {cvmfs_tree.REPO: pinned}
    crate = json.loads((Path(doc["run_dir"]) / "ro-crate-metadata.json").read_text())
    graph = {node["@id"]: node for node in crate["@graph"]}
    node = graph[f"#cvmfs-{cvmfs_tree.REPO}"]
    assert (node["version"], node["identifier"]) == (cvmfs_tree.REVISION, cvmfs_tree.ROOT_HASH)
    assert {"@id": node["@id"]} in graph["#run"]["object"]


def test_run_without_the_repository_is_a_clear_error(odrun, tmp_path: Path) -> None:
    spec = cvmfs_spec(tmp_path, "localhost/not-used", {"read": ["true"]})
    spec.write_text(spec.read_text().replace(cvmfs_tree.REPO, "absent-repo.cern.ch"))
    result = odrun("run", str(tmp_path), "--runtime", "host")
    assert result.code == 8
    assert "/cvmfs/absent-repo.cern.ch" in result.err


def test_crate_measures_revisions_only_for_local_runs(
    repo: cvmfs_tree.Mounted, tmp_path: Path
) -> None:
    from odrun.workflow import load_analysis
    from odrun.workflow.provenance import crate
    from odrun.workflow.runner import RunResult

    cvmfs_spec(tmp_path, "localhost/not-used", {"read": ["true"]})
    analysis = load_analysis(tmp_path)
    result = RunResult("cvmfs-test", tmp_path)
    node_id = f"#cvmfs-{cvmfs_tree.REPO}"
    local = {n["@id"]: n for n in crate(result, analysis)["@graph"]}[node_id]
    assert local["version"] == cvmfs_tree.REVISION
    where = {"server": "https://reana.example.org", "workflow_id": "w-1", "name": "cvmfs-test.1"}
    remote = {n["@id"]: n for n in crate(result, analysis, where)["@graph"]}[node_id]
    assert "version" not in remote  # it ran on REANA's CVMFS, not this machine's
    assert "identifier" not in remote


def test_cvmfs_quota_over_the_free_space_warns(tmp_path: Path) -> None:
    cache = tmp_path / "var-lib-cvmfs"
    cache.mkdir()
    (cache / "chunk").write_bytes(b"x" * 2**20)
    config = tmp_path / "default.local"
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    config.write_text(f"CVMFS_QUOTA_LIMIT={free_mb + 10**6}\nCVMFS_CACHE_BASE={cache}\n")
    check = check_cvmfs_quota(config)
    assert check is not None
    assert check.status == "warn"
    assert "can fill the disk" in check.detail
    assert check.fix is not None
    assert "CVMFS_QUOTA_LIMIT" in check.fix
    config.write_text(f"CVMFS_QUOTA_LIMIT=4000\nCVMFS_CACHE_BASE={cache}\n")
    ok = check_cvmfs_quota(config)
    if free_mb >= 4000:
        assert ok is not None
        assert ok.status == "ok"
    config.write_text("CVMFS_REPOSITORIES=cms.cern.ch\n")
    assert check_cvmfs_quota(config) is None  # no quota set: nothing to say
    assert check_cvmfs_quota(tmp_path / "missing.local") is None


def test_an_empty_mount_point_is_not_a_repository(odrun, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the appliance image makes /cvmfs/<repo> folders for the CVMFS client to mount on: with
    # no client (or no network) they stay empty, and must be reported as not mounted
    base = tmp_path / "cvmfs"
    (base / "cms.cern.ch").mkdir(parents=True)
    (base / "sft.cern.ch").mkdir()
    (base / "sft.cern.ch" / "lcg").mkdir()  # a folder with content is still looked at
    monkeypatch.setenv("ODRUN_CVMFS_ROOT", str(base))
    state = cvmfs.probe("cms.cern.ch")
    assert not state.present
    assert cvmfs.probe("sft.cern.ch").present
    required = odrun("doctor", "--cvmfs", "cms.cern.ch", "--json")
    assert required.code == 8
    assert by_name(required.json(), "cms.cern.ch")["status"] == "fail"
    assert f"{base}/cms.cern.ch is not mounted" in required.err
    plain = odrun("doctor", "--json")
    assert plain.code == 0, plain.err
    assert by_name(plain.json(), "cms.cern.ch")["status"] == "warn"
