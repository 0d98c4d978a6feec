"""odrun run with --runtime docker: a real dockerd (tests/docker_daemon.py), the podman
tests' local image loaded into it, serial steps and Snakemake container rules."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_run import REPO, serial_spec, write
from test_run_podman import use_image

#: a file only the host sees (a container sees the workspace alone; /.dockerenv cannot
#: tell: this machine may itself be a docker container); MARKER is replaced per test
IN_CONTAINER = "test -e MARKER && echo on-host || echo in-container"

SNAKEFILE = f"""\
rule all:
    input: "results/inside.txt", "results/host.txt"

rule inside:
    output: "results/inside.txt"
    container: "docker://IMAGE"
    shell:
        "({IN_CONTAINER}) > {{output}} && "
        "ls /sys/class/net >> {{output}} && python3 -c 'print(6 * 7)' >> {{output}}"

rule on_host:
    output: "results/host.txt"
    shell: "({IN_CONTAINER}) > {{output}}"
"""


def in_container(tmp_path: Path) -> str:
    """A shell test printing in-container or on-host (``tmp_path/host-only`` is not mounted)."""
    (tmp_path / "host-only").touch()
    return IN_CONTAINER.replace("MARKER", str(tmp_path / "host-only"))


def test_steps_run_inside_docker(odrun, docker_ready: str, tmp_path: Path, portal) -> None:
    port = portal.url.rsplit(":", 1)[1]
    probe = (
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', " + port + '), 2)"'
        " && echo reached >> out/result.txt || echo no-network >> out/result.txt"
    )
    spec = serial_spec(tmp_path, {
        "where": [f"mkdir -p out && ({in_container(tmp_path)}) > out/result.txt",
                  "ls /sys/class/net >> out/result.txt"],
        "net": [probe],
        "online": [probe],
    })  # fmt: skip
    use_image(spec, docker_ready)
    (tmp_path / "odrun.yaml").write_text("version: 1\nnetwork: [online]\n")
    result = odrun("run", str(tmp_path), "--runtime", "docker", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert (doc["runtime"], doc["runtime_fallback"]) == ("docker", None)
    out = Path(doc["run_dir"]) / "workspace" / "out" / "result.txt"
    # --network=none: only loopback, and no route to the portal; the named step has the host's
    assert out.read_text().split() == ["in-container", "lo", "no-network", "reached"]
    lock = json.loads((tmp_path / "odrun.lock").read_text())
    assert lock["runtime"] == "docker"
    (image,) = lock["images"]
    assert image["name"] == docker_ready
    assert image["digest"].startswith("sha256:")  # docker's image ID
    assert "docker" in lock["tools"]
    again = odrun("run", str(tmp_path), "--runtime", "docker", "--locked")
    assert again.code == 0, again.err


def test_failure_in_docker(odrun, docker_ready: str, tmp_path: Path) -> None:
    spec = serial_spec(tmp_path, {"boom": ["echo from the container; exit 4"]})
    use_image(spec, docker_ready)
    result = odrun("run", str(tmp_path), "--runtime", "docker", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    assert "exit code 4" in result.err
    assert "from the container" in (tmp_path / "r" / "logs" / "01-boom.log").read_text()


def test_missing_image_in_docker(odrun, docker_ready: str, tmp_path: Path) -> None:
    spec = serial_spec(tmp_path, {"a": ["true"]})
    use_image(spec, "localhost/odrun-test/does-not-exist:1")
    result = odrun("--offline", "run", str(tmp_path), "--runtime", "docker")
    assert result.code == 8, result.err
    assert "localhost/odrun-test/does-not-exist:1 is not available to docker" in result.err


def test_demo_in_docker(odrun, docker_ready: str, tmp_path: Path) -> None:
    shutil.copytree(REPO / "workflows" / "dimuon-demo", tmp_path / "dimuon-demo",
                    ignore=shutil.ignore_patterns(".odrun"))  # fmt: skip
    shutil.copytree(REPO / "workflows" / "mirror", tmp_path / "mirror")
    use_image(tmp_path / "dimuon-demo" / "reana.yaml", docker_ready)
    result = odrun(
        "run", str(tmp_path / "dimuon-demo"), "--runtime", "docker", "--verify", "--json"
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["runtime"] == "docker"
    assert doc["verified"] is True
    assert doc["ignored_images"] == []
    lock = json.loads((tmp_path / "dimuon-demo" / "odrun.lock").read_text())
    assert [i["name"] for i in lock["images"]] == [docker_ready]
    assert lock["images"][0]["digest"].startswith("sha256:")


def test_snakemake_container_rule_in_docker(odrun, docker_ready: str, tmp_path: Path) -> None:
    snakefile = SNAKEFILE.replace("IMAGE", docker_ready)
    write(tmp_path / "Snakefile", snakefile.replace(IN_CONTAINER, in_container(tmp_path)))
    write(
        tmp_path / "reana.yaml",
        "workflow:\n  type: snakemake\n  file: Snakefile\n"
        "outputs:\n  files: [results/inside.txt, results/host.txt]\n",
    )
    result = odrun("run", str(tmp_path), "--runtime", "docker", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    ws = Path(doc["run_dir"]) / "workspace"
    assert (ws / "results" / "inside.txt").read_text().split() == ["in-container", "lo", "42"]
    assert (ws / "results" / "host.txt").read_text() == "on-host\n"  # no container: directive
    assert doc["runtime"] == "docker"
    assert "--sdm apptainer" in doc["steps"][0]["command"]
    lock = json.loads((tmp_path / "odrun.lock").read_text())
    assert lock["runtime"] == "docker"
    assert lock["images"][0]["name"] == docker_ready
    assert lock["images"][0]["digest"].startswith("sha256:")
    used = (Path(doc["run_dir"]) / "containers" / "used.txt").read_text().split()
    assert used == [docker_ready]
