"""reana.yaml with workflow.type snakemake, run on the host (parameters file -> config)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_run import write

pytestmark = pytest.mark.skipif(
    shutil.which("snakemake") is None,
    reason="snakemake not installed (pip install 'odrun[snakemake]')",
)

SNAKEFILE = """\
rule all:
    input: "results/out.txt"

rule make:
    input: "data/in.txt"
    output: "results/out.txt"
    params: greeting=config["greeting"]
    shell: "cat {input} > {output} && echo {params.greeting} >> {output} && {config[extra]}"
"""


def analysis(root: Path, extra: str) -> Path:
    write(root / "workflow" / "Snakefile", SNAKEFILE)
    write(root / "data" / "in.txt", "events\n")
    write(root / "inputs.yaml", f"greeting: hello-from-config\nextra: {extra!r}\n")
    return write(
        root / "reana.yaml",
        "inputs:\n  files: [data/in.txt]\n  parameters:\n    input: inputs.yaml\n"
        "workflow:\n  type: snakemake\n  file: workflow/Snakefile\n"
        "outputs:\n  files: [results/out.txt]\n",
    )


def test_snakemake_runs_with_parameters_as_config(odrun, tmp_path: Path) -> None:
    analysis(tmp_path, "true")
    result = odrun("run", str(tmp_path), "--runtime", "host", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    out = Path(doc["run_dir"]) / "workspace" / "results" / "out.txt"
    assert out.read_text() == "events\nhello-from-config\n"
    assert doc["outputs"][0]["path"] == "results/out.txt"
    assert doc["steps"][0]["name"] == "snakemake"


def test_snakemake_failure(odrun, tmp_path: Path) -> None:
    analysis(tmp_path, "exit 5")
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    assert "snakemake failed" in result.err
    assert (tmp_path / "r" / "logs" / "01-snakemake.log").read_text()


IMAGE = "localhost/odrun-test/debian-python:bookworm"

CONTAINER_SNAKEFILE = """\
rule all:
    input: "results/inside.txt", "results/host.txt"

rule inside:
    output: "results/inside.txt"
    container: "docker://IMAGE"
    shell:
        "(test -e /run/.containerenv && echo in-container || echo on-host) > {output} && "
        "ls /sys/class/net >> {output} && python3 -c 'print(6 * 7)' >> {output}"

rule on_host:
    output: "results/host.txt"
    shell: "if test -e /run/.containerenv; then echo container; else echo host; fi > {output}"
"""


def container_analysis(root: Path, image: str = IMAGE) -> Path:
    write(root / "Snakefile", CONTAINER_SNAKEFILE.replace("IMAGE", image))
    return write(
        root / "reana.yaml",
        "workflow:\n  type: snakemake\n  file: Snakefile\n"
        "outputs:\n  files: [results/inside.txt, results/host.txt]\n",
    )


def test_rule_container_runs_in_podman(odrun, tmp_path: Path, podman_ready: str) -> None:
    container_analysis(tmp_path, podman_ready)
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    ws = Path(doc["run_dir"]) / "workspace"
    # inside the image (podman's marker file), with no network but loopback
    assert (ws / "results" / "inside.txt").read_text().split() == ["in-container", "lo", "42"]
    # a rule without container: runs on the host, as in Snakemake
    assert (ws / "results" / "host.txt").read_text() == "host\n"
    assert doc["runtime"] == "podman"
    assert "--sdm apptainer" in doc["steps"][0]["command"]
    lock = json.loads((Path(doc["run_dir"]) / "odrun.lock").read_text())
    assert lock["images"][0]["name"] == podman_ready
    assert lock["images"][0]["digest"].startswith("sha256:")
    assert {"snakemake", "podman", "bash"} <= set(lock["tools"])
    used = (Path(doc["run_dir"]) / "containers" / "used.txt").read_text().split()
    assert used == [podman_ready]


def test_rule_container_ignored_on_host_with_a_warning(odrun, tmp_path: Path) -> None:
    container_analysis(tmp_path)
    result = odrun("run", str(tmp_path), "--runtime", "host", "--json")
    assert result.code == 0, result.err
    assert f"runtime host ignores the step images: {IMAGE}" in result.err
    doc = result.json()
    assert doc["ignored_images"] == [IMAGE]
    inside = Path(doc["run_dir"]) / "workspace" / "results" / "inside.txt"
    assert inside.read_text().splitlines()[0] == "on-host"


def test_runtime_podman_needs_a_container_directive(odrun, tmp_path: Path) -> None:
    analysis(tmp_path, "true")
    result = odrun("run", str(tmp_path), "--runtime", "podman")
    assert result.code == 2
    assert "declares no container: image" in result.err


def test_non_docker_image_is_refused_by_podman(odrun, tmp_path: Path, podman_ready: str) -> None:
    write(tmp_path / "Snakefile", CONTAINER_SNAKEFILE.replace("docker://IMAGE", "/opt/x.sif"))
    write(tmp_path / "reana.yaml", "workflow:\n  type: snakemake\n  file: Snakefile\n")
    result = odrun("run", str(tmp_path), "--runtime", "podman")
    assert result.code == 8
    assert "/opt/x.sif" in result.err


def test_network_true_gives_rule_containers_the_host_network(
    odrun, tmp_path: Path, podman_ready: str
) -> None:
    container_analysis(tmp_path, podman_ready)
    write(tmp_path / "odrun.yaml", "version: 1\nname: net\nnetwork: true\n")
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--json")
    assert result.code == 0, result.err
    inside = Path(result.json()["run_dir"]) / "workspace" / "results" / "inside.txt"
    lines = inside.read_text().split()
    assert lines[0] == "in-container"
    assert set(lines[1:-1]) - {"lo"}  # the host's interfaces, not only loopback


def test_executor_options_map_to_snakemake_arguments() -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from odrun.workflow.snakemake import executor_args

    args = executor_args(
        "slurm",
        {
            "jobs": "7",
            "init-seconds-before-status-checks": "2",
            "requeue": "true",
            "no_account": "false",
            "latency_wait": "30",
            "slurm_partition": "short",
            "mem_mb": "2000",
        },
    )
    assert args == [
        "--executor", "slurm",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-requeue",
        "--latency-wait", "30",
        "--jobs", "7",
        "--default-resources", "slurm_partition='short'", "mem_mb=2000",
    ]  # fmt: skip


def test_bad_executor_options_are_usage_errors() -> None:
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from odrun.errors import UsageError
    from odrun.workflow.snakemake import executor_args

    with pytest.raises(UsageError, match="jobs=0"):
        executor_args("slurm", {"jobs": "0"})
    with pytest.raises(UsageError, match="not a valid name"):
        executor_args("slurm", {"mem mb": "1"})


def test_apptainer_shim_refuses_what_it_cannot_do(tmp_path: Path, capsys) -> None:
    from odrun.workflow import apptainer_shim

    assert apptainer_shim.volume("/a") == "/a:/a"
    assert apptainer_shim.volume("/a:/b:ro") == "/a:/b:ro"
    args = ["/usr/bin/podman", str(tmp_path / "used.txt"), "1", "0", "--"]
    assert apptainer_shim.main([*args, "--version"]) == 0
    assert capsys.readouterr().out.strip() == "apptainer version 1.0.0+odrun.podman"
    assert apptainer_shim.main([*args, "build", "x.sif", "def"]) == 255
    assert "not supported" in capsys.readouterr().err
    sif = tmp_path / "img.sif"
    sif.write_bytes(b"\x7fELF")
    assert apptainer_shim.main([*args, "exec", str(sif), "sh", "-c", "true"]) == 255
    assert "not an image odrun pulled" in capsys.readouterr().err


def test_apptainer_shim_passes_env_to_the_runtime(tmp_path: Path) -> None:
    from odrun.workflow.apptainer_shim import MARKER, Shim

    runtime = tmp_path / "podman"  # a stand-in runtime that records its arguments
    runtime.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "argv"}\n')
    runtime.chmod(0o755)
    image = tmp_path / "img"
    image.write_text(f"{MARKER}\ndocker.io/library/bash:5.2\n")
    shim = Shim(str(runtime), env={})
    args = ["exec", "--env", "A=1,B=x y", str(image), "sh", "-c", "true"]
    assert shim.main(args) == 0
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[argv.index("A=1") - 1] == "-e"
    assert argv[argv.index("B=x y") - 1] == "-e"


def test_images_are_found_through_includes(tmp_path: Path) -> None:
    from odrun.workflow.snakemake import declared_images

    write(tmp_path / "wf" / "Snakefile", 'container: "docker://a:1"\ninclude: "rules/x.smk"\n')
    write(tmp_path / "wf" / "rules" / "x.smk", 'rule x:\n    container:\n        "docker://b:2"\n')
    write(tmp_path / "wf" / "unused.smk", 'rule y:\n    container: "docker://c:3"\n')
    assert declared_images(tmp_path, "wf/Snakefile") == ["docker://a:1", "docker://b:2"]


def test_failing_container_rule_fails_the_run(odrun, tmp_path: Path, podman_ready: str) -> None:
    write(
        tmp_path / "Snakefile",
        f'rule bad:\n    output: "x.txt"\n    container: "docker://{podman_ready}"\n'
        '    shell: "echo inside-before-failing; exit 3"\n',
    )
    write(tmp_path / "reana.yaml", "workflow:\n  type: snakemake\n  file: Snakefile\n")
    run_dir = tmp_path / "r"
    result = odrun("run", str(tmp_path), "--runtime", "podman", "--workdir", str(run_dir))
    assert result.code == 7
    assert "snakemake failed" in result.err
    assert "inside-before-failing" in (run_dir / "logs" / "01-snakemake.log").read_text()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("runtime", ["podman", "apptainer"])
def test_container_rules_bind_cvmfs_from_the_configured_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    """Container rules see /cvmfs/<repo> from $ODRUN_CVMFS_ROOT, as serial steps do."""
    from odrun.workflow.runtime import make_runtime
    from odrun.workflow.snakemake import _container_args

    monkeypatch.setenv("ODRUN_CVMFS_ROOT", str(tmp_path / "cvmfs"))
    env: dict[str, str] = {"PATH": "/usr/bin"}
    rt = make_runtime(runtime, ("odrun-test.cern.ch",))
    args = _container_args(rt, tmp_path, tmp_path / "used.txt", env, network=False)
    bind = f"--bind {tmp_path}/cvmfs/odrun-test.cern.ch:/cvmfs/odrun-test.cern.ch:ro"
    assert any(a.startswith("--apptainer-args=") and bind in a for a in args), args


def failing_snakefile(root: Path, rules: str) -> None:
    write(root / "Snakefile", 'rule all:\n    input: "out.txt"\n\n' + rules)
    write(root / "reana.yaml", "workflow:\n  type: snakemake\n  file: Snakefile\n")


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("odrun: workflow failed: ")]
    assert len(lines) == 1, err
    assert err.splitlines()[-1] == lines[0], err  # nothing after it: the message is one line
    return lines[0]


def test_a_failing_rule_names_itself_and_its_cause(odrun, tmp_path: Path) -> None:
    """Not Snakemake's 'Exiting because a job execution failed': the rule and its stderr."""
    # PATH cleared for the one command: papermill is missing even where it is installed
    failing_snakefile(
        tmp_path,
        'rule notebook:\n    output: "out.txt"\n'
        '    shell: "PATH=/nonexistent papermill analysis.ipynb out.ipynb && touch {output}"\n',
    )
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    line = error_line(result.err)
    assert "snakemake failed" in line
    assert "rule notebook" in line
    assert "papermill: command not found" in line
    assert "Exiting because" not in line
    assert "01-snakemake.log" in line  # where the rest is


def test_a_rule_that_logs_to_its_log_file_shows_that_file(odrun, tmp_path: Path) -> None:
    failing_snakefile(
        tmp_path,
        'rule fit:\n    output: "out.txt"\n    log: "logs/fit.log"\n'
        "    shell: \"(echo fitting; echo 'RuntimeError: fit did not converge' >&2; exit 3) "
        '> {log} 2>&1"\n',
    )
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    line = error_line(result.err)
    assert "rule fit" in line
    assert "RuntimeError: fit did not converge" in line


def test_a_failing_python_rule_shows_the_exception(odrun, tmp_path: Path) -> None:
    failing_snakefile(tmp_path, 'rule ratio:\n    output: "out.txt"\n    run:\n        x = 1 / 0\n')
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    line = error_line(result.err)
    assert "rule ratio" in line
    assert "ZeroDivisionError" in line
    assert "division by zero" in line


def test_a_snakefile_error_outside_any_rule_still_says_why(odrun, tmp_path: Path) -> None:
    failing_snakefile(
        tmp_path,
        'rule make:\n    input: "no-such-input.txt"\n    output: "out.txt"\n'
        '    shell: "cp {input} {output}"\n',
    )
    result = odrun("run", str(tmp_path), "--runtime", "host", "--workdir", str(tmp_path / "r"))
    assert result.code == 7
    line = error_line(result.err)
    assert "no-such-input.txt" in line


def test_the_demos_snakemake_twin_gives_the_serial_outputs(odrun, demo: Path) -> None:
    """workflows/dimuon-demo/reana-snakemake.yaml is reana.yaml's steps as a Snakefile: the
    same outputs, byte for byte, and the same expectations hold."""
    serial = odrun("run", str(demo), "--runtime", "host", "--json")
    assert serial.code == 0, serial.err
    twin = odrun(
        "run", str(demo / "reana-snakemake.yaml"), "--runtime", "host", "--verify", "--json"
    )
    assert twin.code == 0, twin.err
    assert [s["name"] for s in twin.json()["steps"]] == ["snakemake"]

    def sums(doc: dict) -> dict[str, str]:
        return {o["path"]: o["checksum"] for o in doc["outputs"]}

    assert sums(twin.json()) == sums(serial.json())
    assert len(sums(serial.json())) == 3
