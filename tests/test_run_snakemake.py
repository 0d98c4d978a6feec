"""reana.yaml with workflow.type snakemake, run on the host (parameters file -> config)."""

from __future__ import annotations

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
