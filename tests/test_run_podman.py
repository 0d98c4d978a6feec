"""odrun run with --runtime podman: real containers from an image built here (no registry)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_run import REPO, serial_spec

IMAGE = "localhost/odrun-test/debian-python:bookworm"


def use_image(spec: Path, image: str) -> None:
    text = spec.read_text()
    for old in ("docker.io/library/busybox:1.36", "docker.io/library/python:3.11-slim"):
        text = text.replace(old, image)
    spec.write_text(text)


def test_steps_run_inside_the_container(odrun, podman_ready: str, tmp_path: Path, portal) -> None:
    port = portal.url.rsplit(":", 1)[1]
    probe = (
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', " + port + '), 2)"'
        " && echo reached >> out/result.txt || echo no-network >> out/result.txt"
    )
    spec = serial_spec(tmp_path, {
        "where": ["mkdir -p out && (test -f /run/.containerenv && echo in-container"
                  " || echo on-host) > out/result.txt"],
        "net": [probe],
        "online": [probe],
    })  # fmt: skip
    use_image(spec, podman_ready)
    # only the step odrun.yaml names gets the (host's) network
    (tmp_path / "odrun.yaml").write_text("version: 1\nnetwork: [online]\n")
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["runtime"] == "podman"
    out = Path(doc["run_dir"]) / "workspace" / "out" / "result.txt"
    # --network=none: not even loopback; the declared step reaches the portal on 127.0.0.1
    assert out.read_text() == "in-container\nno-network\nreached\n"


def test_failure_in_container(odrun, podman_ready: str, tmp_path: Path) -> None:
    spec = serial_spec(tmp_path, {"boom": ["echo from the container; exit 4"]})
    use_image(spec, podman_ready)
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    assert "exit code 4" in result.err
    assert "from the container" in (tmp_path / "r" / "logs" / "01-boom.log").read_text()
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "failed"


def test_demo_in_podman(odrun, podman_ready: str, tmp_path: Path) -> None:
    shutil.copytree(REPO / "workflows" / "dimuon-demo", tmp_path / "dimuon-demo",
                    ignore=shutil.ignore_patterns(".odrun"))  # fmt: skip
    shutil.copytree(REPO / "workflows" / "mirror", tmp_path / "mirror")
    use_image(tmp_path / "dimuon-demo" / "reana.yaml", podman_ready)
    result = odrun(
        "run", str(tmp_path / "dimuon-demo"), "--runtime", "podman", "--verify", "--json"
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["runtime"] == "podman"
    assert doc["verified"] is True
    assert doc["ignored_images"] == []
    lock = json.loads((tmp_path / "dimuon-demo" / "odrun.lock").read_text())
    (image,) = lock["images"]
    assert image["name"] == podman_ready
    assert image["digest"].startswith("sha256:")  # resolved by podman


def test_missing_image(odrun, podman_ready: str, tmp_path: Path) -> None:
    spec = serial_spec(tmp_path, {"a": ["true"]})
    use_image(spec, "localhost/odrun-test/does-not-exist:1")
    strict = odrun("--offline", "run", str(tmp_path), "--runtime", "podman")
    assert strict.code == 8
    assert "localhost/odrun-test/does-not-exist:1 is not available to podman" in strict.err
    fallback = odrun("--offline", "run", str(tmp_path), "--runtime", "auto", "--json")
    assert fallback.code == 0, fallback.err
    assert fallback.json()["runtime"] == "host"
    assert (
        "--runtime auto: image localhost/odrun-test/does-not-exist:1 is not available"
        in fallback.err
    )
    assert "running on the host" in fallback.err


def test_cvmfs_required_but_missing(odrun, tmp_path: Path) -> None:
    spec = serial_spec(tmp_path, {"a": ["ls /cvmfs/cms-opendata-conddb.cern.ch"]})
    resources = "  resources:\n    cvmfs: [odrun-test-missing.cern.ch]\n"
    text = spec.read_text().replace("  type: serial\n", "  type: serial\n" + resources)
    spec.write_text(text)
    result = odrun("run", str(tmp_path), "--runtime", "host")
    assert result.code == 8
    assert "/cvmfs/odrun-test-missing.cern.ch" in result.err
