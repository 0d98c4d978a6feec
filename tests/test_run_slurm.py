"""odrun run --executor slurm: a Snakemake workflow run by a real single-node Slurm cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import slurm_cluster
from test_run import write

pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install 'odrun[slurm]'")

SNAKEFILE = """\
rule all:
    input: "results/summary.txt"

rule count:
    input: "data/events.txt"
    output: "results/count.txt"
    shell: "wc -l < {input} > {output} && echo job=$SLURM_JOB_ID >> {output}"

rule summary:
    input: "results/count.txt"
    output: "results/summary.txt"
    shell: "(echo {config[label]}; cat {input}; echo job=$SLURM_JOB_ID) > {output}"
"""

#: short status-check waits: the plugin waits 40 s before its first check by default
FAST = [
    "init_seconds_before_status_checks=1",
    "seconds-between-status-checks=1",
]


@pytest.fixture(scope="session")
def slurm() -> Iterator[slurm_cluster.SlurmCluster]:
    reason = slurm_cluster.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with slurm_cluster.cluster() as cluster:
        yield cluster


def analysis(root: Path) -> Path:
    write(root / "Snakefile", SNAKEFILE)
    write(root / "data" / "events.txt", "e1\ne2\ne3\n")
    write(
        root / "odrun.yaml",
        "version: 1\nname: slurm-demo\n"
        "executors:\n  slurm:\n    slurm_partition: debug\n    slurm_account: root\n"
        "    mem_mb: 100\n    runtime: 5\n    jobs: 2\n",
    )
    return write(
        root / "reana.yaml",
        "inputs:\n  files: [Snakefile, data/events.txt]\n  parameters: {label: from-slurm}\n"
        "workflow:\n  type: snakemake\n  file: Snakefile\n"
        "outputs:\n  files: [results/summary.txt]\n",
    )


def test_snakemake_jobs_run_through_slurm(
    odrun, tmp_path: Path, slurm: slurm_cluster.SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    analysis(tmp_path)
    options = [arg for opt in FAST for arg in ("--executor-option", opt)]
    result = odrun(
        "run", str(tmp_path), "--runtime", "host", "--executor", "slurm", *options, "--json"
    )
    assert result.code == 0, result.err
    doc = result.json()
    run_dir = Path(doc["run_dir"])
    assert doc["executor"] == "slurm"
    assert doc["executor_options"]["init_seconds_before_status_checks"] == "1"
    command = doc["steps"][0]["command"]
    assert "--executor slurm" in command
    assert "--slurm-init-seconds-before-status-checks 1" in command
    assert "slurm_partition=" in command
    # each rule ran as a Slurm job: its output names the job, and accounting lists both
    summary = (run_dir / "workspace" / "results" / "summary.txt").read_text().split()
    assert summary[:2] == ["from-slurm", "3"]
    jobs = {line.split("=")[1] for line in summary if line.startswith("job=")}
    assert len(jobs) == 2
    assert all(j.isdigit() for j in jobs)
    acct = slurm.run("sacct", "-X", "-n", "-P", "-j", ",".join(jobs), "-o", "JobID,State,Comment")
    rows = sorted(line.split("|") for line in acct.stdout.split())
    assert [(r[1], r[2]) for r in rows] == [
        ("COMPLETED", "rule_count"),
        ("COMPLETED", "rule_summary"),
    ]
    # same staging, lock and provenance as a local run
    assert doc["outputs"][0]["path"] == "results/summary.txt"
    assert doc["outputs"][0]["checksum"].startswith("adler32:")
    assert json.loads((run_dir / "odrun.lock").read_text())["analysis"] == "slurm-demo"
    assert (tmp_path / "odrun.lock").is_file()
    crate = json.loads((run_dir / "ro-crate-metadata.json").read_text())
    assert any("results/summary.txt" in str(e.get("@id")) for e in crate["@graph"])


def test_serial_analysis_with_an_executor_is_refused(odrun, tmp_path: Path) -> None:
    write(tmp_path / "reana.yaml", "workflow:\n  type: serial\n  specification:\n    steps: []\n")
    result = odrun("run", str(tmp_path), "--executor", "slurm")
    assert result.code == 2
    assert "--executor slurm runs Snakemake workflows" in result.err


def test_missing_executor_plugin_says_how_to_install(odrun, tmp_path: Path) -> None:
    analysis(tmp_path)
    result = odrun("run", str(tmp_path), "--runtime", "host", "--executor", "htcondor")
    assert result.code == 8
    assert "pip install 'odrun[htcondor]'" in result.err


def test_bad_executor_option(odrun, tmp_path: Path) -> None:
    analysis(tmp_path)
    result = odrun("run", str(tmp_path), "--executor", "slurm", "--executor-option", "nokey")
    assert result.code == 2
    assert "expected KEY=VALUE" in result.err


CONTAINER_SNAKEFILE = """\
rule all:
    input: "results/where.txt"

rule where:
    output: "results/where.txt"
    container: "docker://IMAGE"
    shell:
        "(test -e /run/.containerenv && echo in-container || echo on-host) > {output} && "
        "ls /sys/class/net >> {output}"
"""


def test_rule_containers_run_in_podman_on_the_slurm_node(
    odrun, tmp_path: Path, slurm: slurm_cluster.SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import podman_image

    reason = podman_image.ensure_image()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    write(tmp_path / "Snakefile", CONTAINER_SNAKEFILE.replace("IMAGE", podman_image.IMAGE))
    write(
        tmp_path / "reana.yaml",
        "workflow:\n  type: snakemake\n  file: Snakefile\noutputs:\n  files: [results/where.txt]\n",
    )
    options = [arg for opt in [*FAST, "slurm_partition=debug", "slurm_account=root"]
               for arg in ("--executor-option", opt)]  # fmt: skip
    result = odrun(
        "run", str(tmp_path), "--runtime", "podman", "--executor", "slurm", *options, "--json"
    )
    assert result.code == 0, result.err
    run_dir = Path(result.json()["run_dir"])
    assert (run_dir / "workspace" / "results" / "where.txt").read_text().split() == [
        "in-container",
        "lo",
    ]
    assert (run_dir / "containers" / "used.txt").read_text().split() == [podman_image.IMAGE]
