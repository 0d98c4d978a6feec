"""Run a Snakemake workflow for an analysis: its config, its working directory, its log."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import yaml

from odrun.errors import WorkflowError
from odrun.workflow.runner import RunResult, Say, StepRun, _safe_rel, now
from odrun.workflow.spec import Analysis, SpecError


def run_snakemake(analysis: Analysis, result: RunResult, say: Say) -> None:
    exe = shutil.which("snakemake")
    if exe is None:
        raise WorkflowError(
            "workflow.type snakemake needs Snakemake", hint="pip install 'odrun[snakemake]'"
        )
    snakefile = (analysis.reana or {}).get("workflow", {}).get("file") or "Snakefile"
    config = result.run_dir / "config.yaml"
    config.write_text(yaml.safe_dump(snakemake_config(analysis)), encoding="utf-8")
    log = result.run_dir / "logs" / "01-snakemake.log"
    cmd = [
        exe,
        "--snakefile",
        str(result.workspace / snakefile),
        "--configfile",
        str(config),
        "--directory",
        str(result.workspace),
        "--cores",
        str(os.cpu_count() or 1),
    ]
    say(f"[snakemake] {' '.join(cmd[1:])}")
    started = now()
    with log.open("wb") as out:
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        )
    result.steps.append(
        StepRun("snakemake", " ".join(cmd), proc.returncode, started, now(), str(log))
    )
    if proc.returncode != 0:
        raise WorkflowError(
            f"snakemake failed with exit code {proc.returncode}", hint=f"log: {log}"
        )


def snakemake_config(analysis: Analysis) -> dict[str, Any]:
    """Snakemake's config, as REANA builds it: the YAML file named by ``inputs.parameters.input``
    (reana-client loads it), else the parameters themselves."""
    params = analysis.parameters
    name = params.get("input")
    if isinstance(name, str) and name.endswith((".yaml", ".yml")):
        path = analysis.root / _safe_rel(name, "inputs.parameters.input")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"snakemake parameters file {name}: {exc}".splitlines()[0]) from None
        if not isinstance(loaded, dict):
            raise SpecError(f"snakemake parameters file {name} must hold a mapping")
        return loaded
    return params
