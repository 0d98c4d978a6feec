"""Confinement: every path from a spec, record, archive or server stays in its folder.

odrun._fs.confine is tested once against every attack here; the end-to-end tests show
that staging, record fetching, outputs, expectations, histogram references, code
archives (and their bombs) and the shared cache's hard links all go through it.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from test_run_record import CODE, REANA, tarball

from odrun._fs import confine, place, stage
from odrun.errors import UnsafeMetadataError, UsageError
from odrun.workflow.expect import evaluate

from conftest import api_doc
from test_run import serial_spec, write


# -- the one function ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "rel", ["/etc/passwd", "../x", "a/../../x", "a/b/../../../x", "..", "a\\..\\..\\x", "a\x00b"]
)
def test_confine_refuses_absolute_and_dotdot(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UsageError):
        confine(tmp_path, rel, "thing", error=UsageError)
    with pytest.raises(UnsafeMetadataError):
        confine(tmp_path, rel, "thing")


def test_confine_follows_links_before_deciding(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "out").symlink_to(outside)  # a folder link leading out
    (root / "file").symlink_to(outside / "secret")  # a file link leading out (dangling)
    (root / "in").symlink_to(root / "sub")  # a link that stays inside
    (root / "loop").symlink_to(root / "loop")
    for rel in ("out", "out/new.txt", "out/a/b/c", "file", "loop/x"):
        with pytest.raises(UnsafeMetadataError):  # a link: exit 9, even with error=UsageError
            confine(root, rel, "thing", error=UsageError)
    assert confine(root, "in/x.txt", "thing") == (root / "sub" / "x.txt").resolve()
    assert confine(root, "new/deeper/x", "thing") == root.resolve() / "new" / "deeper" / "x"
    assert confine(root, ".", "thing") == root.resolve()


def test_place_never_writes_through_an_existing_hard_link(tmp_path: Path) -> None:
    shared, other = tmp_path / "cache-entry", tmp_path / "dest"
    shared.write_bytes(b"shared")
    os.link(shared, other)
    new = tmp_path / "new"
    new.write_bytes(b"new bytes")
    assert place(new, other, link=False) == "copy"
    assert other.read_bytes() == b"new bytes"
    assert shared.read_bytes() == b"shared"


def test_stage_copies_links_inside_and_refuses_links_out(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    write(root / "data" / "a.txt", "a")
    write(outside / "secret.txt", "secret")
    (root / "data" / "alias.txt").symlink_to(root / "data" / "a.txt")
    written = stage(root / "data", tmp_path / "ws" / "data", root, "input")
    copy = tmp_path / "ws" / "data" / "alias.txt"
    assert not copy.is_symlink()
    assert copy.read_text() == "a"
    assert len(written) == 2
    (root / "data" / "out").symlink_to(outside)
    with pytest.raises(UnsafeMetadataError, match="leads outside"):
        stage(root / "data", tmp_path / "ws2" / "data", root, "input")
    (root / "data" / "out").unlink()
    (root / "data" / "up").symlink_to(root / "data")
    with pytest.raises(UnsafeMetadataError, match="loop"):
        stage(root / "data", tmp_path / "ws3" / "data", root, "input")


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture
def publish(fresh_portal: Any, faults: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("ODRUN_PORTAL_URL", fresh_portal.url)
    monkeypatch.chdir(tmp_path)

    def put(recid: str, files: dict[str, bytes]) -> str:
        uris = [(faults.add(f"/eos/{recid}/{name}", data), data) for name, data in files.items()]
        fresh_portal.overrides[recid] = api_doc(recid, uris)
        return recid

    return put


def cache_holds(cache: Path, needle: bytes) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file() and needle in p.read_bytes()]


def with_records(folder: Path, recid: str, dest: str | None = None) -> None:
    dest_line = f"\n    dest: {dest}" if dest else ""
    write(folder / "odrun.yaml", f"version: 1\nrecords:\n  - ref: '{recid}'{dest_line}\n")


# -- 4a: an archive member named like a fetched file -------------------------------------
@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_member_cannot_write_through_the_cache(
    odrun: Any, publish: Any, tmp_path: Path, isolated_env: Path, kind: str
) -> None:
    members = {"code." + kind: b"EVIL" * 64, "reana.yaml": REANA, "code.py": CODE}
    rec = publish("911", {"code." + kind: zipped(members) if kind == "zip" else tarball(members)})
    result = odrun("run", rec, "--runtime", "host", "--json")
    assert result.code == 0, result.err
    assert cache_holds(isolated_env, b"EVIL") == []  # the cache entry is untouched
    # the member is a file of its own; the fetched archive is kept apart
    assert (tmp_path / "record-911" / f"code.{kind}").read_bytes() == b"EVIL" * 64
    again = odrun("run", rec, "--runtime", "host", "--json")  # unpacks over the first
    assert again.code == 0, again.err
    assert cache_holds(isolated_env, b"EVIL") == []


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# -- 10: archive bombs --------------------------------------------------------------------
BOMB = 64 << 20  # 64 MiB of zeros: about 64 KiB compressed, a ratio near 1000


def tar_bomb() -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = BOMB
        tf.addfile(info, io.BytesIO(bytes(BOMB)))
        info = tarfile.TarInfo("reana.yaml")
        info.size = len(REANA)
        tf.addfile(info, io.BytesIO(REANA))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archive_bomb_is_refused_with_the_numbers(
    odrun: Any, publish: Any, tmp_path: Path, kind: str
) -> None:
    bomb = zipped({"zeros.bin": bytes(BOMB), "reana.yaml": REANA}) if kind == "zip" else tar_bomb()
    assert len(bomb) < BOMB // 200
    rec = publish("920", {f"bomb.{kind}": bomb})
    result = odrun("run", rec, "--runtime", "host")
    assert result.code == 9, result.err
    assert "200 times its size" in result.err
    assert f"{len(bomb):,} bytes" in result.err
    assert "ODRUN_UNPACK_MAX_RATIO" in result.err
    written = sum(p.stat().st_size for p in (tmp_path / "record-920").rglob("*") if p.is_file())
    assert written < 2 * len(bomb) + (1 << 20)  # nothing unpacked was kept
    assert not (tmp_path / "record-920" / "zeros.bin").exists()


def test_unpack_limits_on_bytes_and_members_are_settings(
    odrun: Any, publish: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    many = {f"f{i}.txt": random.Random(i).randbytes(300) for i in range(10)}
    rec = publish("921", {"code.zip": zipped({**many, "reana.yaml": REANA, "code.py": CODE})})
    monkeypatch.setenv("ODRUN_UNPACK_MAX_MEMBERS", "5")
    result = odrun("run", rec, "--runtime", "host")
    assert result.code == 9, result.err
    assert "more than 5 members" in result.err
    monkeypatch.setenv("ODRUN_UNPACK_MAX_MEMBERS", "100")
    monkeypatch.setenv("ODRUN_UNPACK_MAX_BYTES", "2000")
    result = odrun("run", rec, "--runtime", "host")
    assert result.code == 9, result.err
    assert "more than 2,000 bytes" in result.err
    bad = odrun("run", rec, "--runtime", "host", "--unpack-limit", "max_size=1")
    assert bad.code == 2, bad.err
    assert "expected max_bytes, max_ratio or max_members" in bad.err
    negative = odrun("run", rec, "--runtime", "host", "--unpack-limit", "max_bytes=-1")
    assert negative.code == 8, negative.err
    # raised on the command line (over the environment): it unpacks and runs
    result = odrun("run", rec, "--runtime", "host", "--unpack-limit", "max_bytes=1000000")
    assert result.code == 0, result.err
    assert (tmp_path / "record-921" / "f3.txt").read_bytes() == many["f3.txt"]


# -- 5: a records dest through a link in inputs.directories -------------------------------
def test_records_dest_through_a_link_writes_nothing_outside(
    odrun: Any, publish: Any, tmp_path: Path
) -> None:
    rec = publish("913", {"events.txt": b"record bytes\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    ana = tmp_path / "ana"
    serial_spec(ana, {"s": ["mkdir -p out && cat data/link/events.txt > out/result.txt"]})
    text = (
        (ana / "reana.yaml").read_text().replace("files: [code/hello.txt]", "directories: [data]")
    )
    (ana / "reana.yaml").write_text(text)
    (ana / "data").mkdir()
    (ana / "data" / "link").symlink_to(outside)
    with_records(ana, rec, dest="data/link")
    result = odrun("run", str(ana), "--runtime", "host")
    assert result.code == 9, result.err
    assert "data/link" in result.err
    assert "outside" in result.err
    assert list(outside.iterdir()) == []


def test_records_dest_through_a_link_left_by_an_earlier_run(
    odrun: Any, publish: Any, tmp_path: Path
) -> None:
    """--from reuses a workspace where a step may have left a link: fetching does not follow it."""
    rec = publish("914", {"events.txt": b"record bytes\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    ana = tmp_path / "ana"
    serial_spec(ana, {
        "first": [f"rm -rf data && ln -s {outside} data && mkdir -p out && echo 1 >out/result.txt"],
        "second": ["echo 2 >> out/result.txt"],
    })  # fmt: skip
    with_records(ana, rec, dest="data")
    run = tmp_path / "run"
    assert odrun("run", str(ana), "--runtime", "host", "--workdir", str(run)).code == 0
    again = odrun("run", str(ana), "--runtime", "host", "--workdir", str(run), "--from", "second")
    assert again.code == 9, again.err
    assert list(outside.iterdir()) == []


# -- 6: outputs and expectations never read through a step's link ------------------------
def test_expectation_and_outputs_do_not_read_a_host_file_through_a_link(
    odrun: Any, tmp_path: Path
) -> None:
    secret = write(tmp_path / "host" / "secret.json", json.dumps({"n": 5}))
    ana = tmp_path / "ana"
    serial_spec(ana, {"s": [f"mkdir -p out && ln -s {secret} out/result.txt"]})
    write(ana / "odrun.yaml", "version: 1\nexpect:\n  - file: out/result.txt\n"
          "    values: {n: {value: 5}}\n")  # fmt: skip
    result = odrun("run", str(ana), "--runtime", "host", "--verify", "--json")
    doc = result.json()
    assert doc["outputs"] == [
        {"path": "out/result.txt", "size": None, "checksum": None, "missing": True}
    ]
    assert doc["verified"] is False
    assert result.code != 0
    crate = json.loads((Path(doc["run_dir"]) / "ro-crate-metadata.json").read_text())
    assert "workspace/out/result.txt" not in {n["@id"] for n in crate["@graph"]}


def test_output_folder_link_and_histogram_reference_link_are_not_followed(
    odrun: Any, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    write(host / "secret.txt", "secret")
    write(host / "ref.json", json.dumps({"h": {"edges": [0, 1], "counts": [3]}}))
    ana = tmp_path / "ana"
    serial_spec(ana, {"s": [
        f"mkdir -p out && echo ok > out/result.txt && ln -s {host} out/more"
        " && echo '{\"h\": {\"edges\": [0, 1], \"counts\": [3]}}' > out/h.json",
    ]}, extra="  directories: [out]\n")  # fmt: skip
    (ana / "refs").mkdir()
    (ana / "refs" / "ref.json").symlink_to(host / "ref.json")
    write(ana / "odrun.yaml", "version: 1\nexpect:\n  - file: out/h.json\n"
          "    histograms: {h: {reference: 'refs/ref.json'}}\n")  # fmt: skip
    refused = odrun("run", str(ana), "--runtime", "host", "--verify")
    assert refused.code == 9, refused.err  # the reference link is refused before any step
    assert "refs/ref.json leads outside the analysis folder" in refused.err
    assert not (ana / ".odrun").exists()
    (ana / "refs" / "ref.json").unlink()
    write(ana / "refs" / "ref.json", json.dumps({"h": {"edges": [0, 1], "counts": [3]}}))
    result = odrun("run", str(ana), "--runtime", "host", "--verify", "--json")
    doc = result.json()
    paths = {o["path"]: o.get("missing", False) for o in doc["outputs"]}
    assert paths["out/result.txt"] is False
    assert not any("secret" in p for p in paths)  # not even its name is listed
    (check,) = doc["checks"]
    assert check["ok"] is True
    # a reference link made after the run: verify RUN still never reads through it
    (ana / "refs" / "ref.json").unlink()
    (ana / "refs" / "ref.json").symlink_to(host / "ref.json")
    checks = evaluate(Path(doc["run_dir"]) / "workspace", [
        {"file": "out/h.json", "histograms": {"h": {"reference": "refs/ref.json"}}}
    ], ana)  # fmt: skip
    assert checks[0].ok is False
    assert "leads outside" in checks[0].detail


# -- 4b: steps cannot write through the hard links into the shared cache -----------------
def test_podman_step_cannot_change_a_record_file(
    odrun: Any, podman_ready: str, publish: Any, tmp_path: Path, isolated_env: Path
) -> None:
    from test_run_podman import use_image

    rec = publish("915", {"events.txt": b"original\n"})
    ana = tmp_path / "ana"
    attack = (
        "mkdir -p out && (echo E"
        "VIL > data/915/events.txt || echo refused >> out/result.txt)"
        " && (chmod 666 data/915/events.txt; echo E"
        "VIL >> data/915/events.txt"
        " || echo refused >> out/result.txt)"
        " && (truncate -s 0 data/915/events.txt || echo refused >> out/result.txt)"
        " && cat data/915/events.txt >> out/result.txt"
    )
    use_image(serial_spec(ana, {"attack": [attack]}), podman_ready)
    with_records(ana, rec)
    result = odrun("run", str(ana), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    out = Path(result.json()["run_dir"]) / "workspace" / "out" / "result.txt"
    assert out.read_text() == "refused\nrefused\nrefused\noriginal\n"
    assert cache_holds(isolated_env, b"EVIL") == []
    assert len(cache_holds(isolated_env, b"original\n")) == 1


def test_podman_step_cannot_move_a_record_file_out_from_under_its_read_only_bind(
    odrun: Any, podman_ready: str, publish: Any, tmp_path: Path, isolated_env: Path
) -> None:
    """Failed before: step 1 renamed the folder holding the bound record file (the hard
    link moved with it, out of reach of the next step's binds, which named the old path),
    and step 2 wrote through it into the shared cache (the cache held EVIL)."""
    from test_run_podman import use_image

    rec = publish("916", {"events.txt": b"original\n"})
    ana = tmp_path / "ana"
    steps = {
        "hide": ["mv data/916 data/moved && mkdir -p out"],
        "write": ["(echo EVIL > data/moved/events.txt || echo refused > out/result.txt)"],
    }
    use_image(serial_spec(ana, steps), podman_ready)
    with_records(ana, rec)
    odrun("run", str(ana), "--runtime", "podman", "--json")
    assert cache_holds(isolated_env, b"EVIL") == []
    assert len(cache_holds(isolated_env, b"original\n")) == 1


SMK_HIDE = """\
rule all:
    input: "out/result.txt"

rule hide:
    output: "hidden.done"
    container: "docker://IMAGE"
    shell: "mv data/918 data/m && mkdir data/918 && echo x > data/918/events.txt && touch {output}"

rule write:
    input: "hidden.done"
    output: "out/result.txt"
    container: "docker://IMAGE"
    shell: "(echo EVIL > data/m/events.txt && echo wrote || echo refused) > {output}"
"""


def test_a_snakemake_job_cannot_move_a_record_file_out_from_under_the_next_jobs_binds(
    odrun: Any, podman_ready: str, publish: Any, tmp_path: Path, isolated_env: Path
) -> None:
    """Failed before: Snakemake's read-only binds were fixed when it started (one list for
    every job); job 1 renamed the folder holding a record file and left a decoy at its
    path, so job 2 got the decoy bound read-only and wrote through the moved hard link into
    the shared cache. Now every job binds each link to a fetched record inode wherever it
    is when the job starts."""
    rec = publish("918", {"events.txt": b"original\n"})
    ana = tmp_path / "ana"
    write(ana / "Snakefile", SMK_HIDE.replace("IMAGE", podman_ready))
    write(ana / "reana.yaml", "workflow:\n  type: snakemake\n  file: Snakefile\n"
          "inputs:\n  files: [Snakefile]\noutputs:\n  files: [out/result.txt]\n")  # fmt: skip
    with_records(ana, rec)
    result = odrun("run", str(ana), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    out = Path(result.json()["run_dir"]) / "workspace" / "out" / "result.txt"
    assert out.read_text() == "refused\n"
    assert cache_holds(isolated_env, b"EVIL") == []
    assert len(cache_holds(isolated_env, b"original\n")) == 1


def test_podman_step_cannot_get_a_host_file_bound_in_place_of_a_record_file(
    odrun: Any, podman_ready: str, publish: Any, tmp_path: Path, isolated_env: Path
) -> None:
    """Failed before: step 1 moved the record's folder away and left a link to a host file
    at the record file's path; odrun bound the link's target read-only into step 2, which
    read the host file."""
    from test_run_podman import use_image

    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret\n")
    rec = publish("917", {"events.txt": b"original\n"})
    ana = tmp_path / "ana"
    steps = {
        "plant": [
            f"mv data/917 data/moved && mkdir data/917 && ln -s {secret} data/917/events.txt"
        ],
        "read": ["mkdir -p out && (cat data/917/events.txt || echo unreadable) > out/leak.txt"],
    }
    use_image(serial_spec(ana, steps), podman_ready)
    with_records(ana, rec)
    result = odrun("run", str(ana), "--runtime", "podman", "--json")
    leak = Path(result.json()["run_dir"]) / "workspace" / "out" / "leak.txt"
    assert "host secret" not in leak.read_text()
    assert cache_holds(isolated_env, b"original\n")


def test_untrusted_analysis_on_the_host_gets_copies_of_record_files(
    odrun: Any, publish: Any, tmp_path: Path, isolated_env: Path
) -> None:
    data = publish("916", {"events.txt": b"original\n"})
    spec = REANA.replace(
        b'"mkdir -p out', b'"echo E\x27\x27VIL > data/916/events.txt && mkdir -p out'
    )
    manifest = f"version: 1\nrecords:\n  - ref: '{data}'\n".encode()
    rec = publish("917", {"reana.yaml": spec, "code.py": CODE, "odrun.yaml": manifest})
    result = odrun("run", rec, "--runtime", "host", "--json")
    assert result.code == 0, result.err
    ws = Path(result.json()["run_dir"]) / "workspace"
    assert (ws / "data" / "916" / "events.txt").read_bytes() == b"EVIL\n"  # its own copy
    assert cache_holds(isolated_env, b"EVIL") == []
    # the record's own files (its analysis folder) are private copies too
    assert (tmp_path / "record-917" / "reana.yaml").stat().st_nlink == 1


# -- REANA: uploads and downloads ---------------------------------------------------------
@pytest.fixture
def reana_srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import reana_server

    with reana_server.serve(tmp_path / "reana-srv") as server:
        monkeypatch.setenv("REANA_SERVER_URL", server.url)
        monkeypatch.setenv("REANA_ACCESS_TOKEN", server.token)
        yield server


def test_reana_upload_does_not_send_a_host_file_through_a_link(tmp_path: Path) -> None:
    from odrun.reana.spec import workspace_files
    from odrun.workflow import load_analysis

    secret = write(tmp_path / "host" / "secret.txt", "secret")
    ana = tmp_path / "ana"
    serial_spec(ana, {"s": ["true"]})
    (ana / "code" / "secret.txt").symlink_to(secret)
    spec = ana / "reana.yaml"
    spec.write_text(spec.read_text().replace("files: [code/hello.txt]", "directories: [code]"))
    with pytest.raises(UnsafeMetadataError, match="leads outside"):
        workspace_files(load_analysis(ana))


def test_reana_download_does_not_write_through_a_link_in_the_output_dir(
    odrun: Any, reana_srv: Any, demo: Path, tmp_path: Path
) -> None:
    res = odrun("submit", str(demo), "--follow", "--poll-interval", "0.05", "--json")
    assert res.code == 0, res.err
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "results").symlink_to(outside)
    got = odrun("download", res.json()["run_dir"], "--output-dir", str(target))
    assert got.code == 9, got.err
    assert "leads outside" in got.err
    assert "Traceback" not in got.err
    assert list(outside.iterdir()) == []


def test_container_commands_bind_record_files_read_only(tmp_path: Path) -> None:
    from odrun.workflow.runtime import make_runtime
    from odrun.workflow.snakemake import _container_args

    ws = tmp_path / "ws"
    files = [ws / "data" / "1" / "a.root", ws / "data" / "1" / "b.root"]
    for runtime in ("podman", "apptainer"):
        argv = make_runtime(runtime).argv("img", ws, "true", readonly=files)
        joined = " ".join(argv)
        for f in files:
            assert f"{f}:{f}:ro" in joined
        assert joined.index(f"{ws}") < joined.index(f"{files[0]}:")  # on top of the workspace
    args = _container_args(make_runtime("podman"), tmp_path, tmp_path / "used", {}, False, files)
    assert any(f"--bind {files[0]}:{files[0]}:ro" in a for a in args)


def test_zip_link_member_is_refused(odrun: Any, publish: Any, tmp_path: Path) -> None:
    import stat

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("reana.yaml", REANA)
        link = zipfile.ZipInfo("code.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    rec = publish("922", {"code.zip": buf.getvalue()})
    result = odrun("run", rec, "--runtime", "host")
    assert result.code == 9, result.err
    assert "code.py is a link" in result.err
    assert not (tmp_path / "record-922" / "code.py").exists()


def test_fetch_does_not_count_a_host_file_behind_a_link_as_present(
    odrun: Any, publish: Any, tmp_path: Path
) -> None:
    rec = publish("930", {"events.txt": b"record bytes\n"})
    host = write(tmp_path / "host" / "events.txt", "record bytes\n")  # same bytes, outside
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "events.txt").symlink_to(host)
    result = odrun("fetch", rec, "--dest", str(dest))
    assert result.code == 9, result.err
    assert "leads outside" in result.err
    assert (dest / "events.txt").is_symlink()  # left alone, and not reported as fetched


def _tar_with(info: Any, data: bytes = b"x") -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info.size = len(data) if info.isfile() else 0
        tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def _tar_member(name: str, kind: bytes = b"0", link: str = "") -> bytes:
    import tarfile

    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return _tar_with(info)


@pytest.mark.parametrize(
    ("suffix", "make"),
    [
        ("tar.gz", lambda out: _tar_member("../escaped.txt")),
        ("tar.gz", lambda out: _tar_member(f"{out}/escaped.txt")),
        ("tar.gz", lambda out: _tar_member("a/../../escaped.txt")),
        ("tar.gz", lambda out: _tar_member("link", b"2", str(out))),
        ("tar.gz", lambda out: _tar_member("hard", b"1", f"{out}/escaped.txt")),
        ("tar.gz", lambda out: _tar_member("dev", b"3")),
        ("tar.gz", lambda out: _tar_member(".odrun/planted.txt")),
        ("zip", lambda out: zipped({"../escaped.txt": b"x"})),
        ("zip", lambda out: zipped({f"{out}/escaped.txt": b"x"})),
    ],
)
def test_unpack_refuses_every_escape(tmp_path: Path, suffix: str, make: Any) -> None:
    from odrun.errors import MetadataError
    from odrun.workflow.fromrecord import unpack_archive

    out = tmp_path / "out"
    out.mkdir()
    archive = tmp_path / f"evil.{suffix}"
    archive.write_bytes(make(out))
    dest = tmp_path / "a" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(MetadataError):
        unpack_archive(archive, dest)
    assert list(out.iterdir()) == []
    assert not (tmp_path / "a" / "escaped.txt").exists()
    assert list(dest.iterdir()) == []  # nothing kept
