"""CLI commands that run analyses: run, rerun, validate, verify. Parse, call, render."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from odrun import render, untrusted
from odrun.cli import cli, global_options, json_option, settings_of
from odrun.errors import UsageError, VerificationError
from odrun.records import parse_reference
from odrun.records.cache import atomic_write
from odrun.workflow import load_analysis, run_analysis, validate
from odrun.workflow.expect import Check, evaluate, junit_xml
from odrun.workflow.fromrecord import fetch_analysis
from odrun.workflow.runner import RunResult
from odrun.workflow.spec import SpecError


def _say(message: str) -> None:
    click.echo(f"odrun: {message}", err=True)


def _write_junit(path: Path, suite: str, checks: list[Check], seconds: float = 0.0) -> None:
    try:
        atomic_write(path, junit_xml(suite, checks, seconds))
    except OSError as exc:
        raise UsageError(
            f"--junit {path}: cannot write the report: {exc.strerror or exc}",
            hint="give a file path you can write to",
        ) from None


def _finish(result: RunResult, as_json: bool, junit: Path | None) -> None:
    if junit is not None:
        _write_junit(junit, result.analysis, result.checks)
    if as_json:
        render.print_json(json.loads((result.run_dir / "run.json").read_text()))
    else:
        click.echo(f"run {result.status}: {result.run_dir}")
        render.output_lines(result.outputs)
        render.check_lines(result.checks)
    failed = [c for c in result.checks if not c.ok]
    if failed:
        raise VerificationError(
            f"{len(failed)} of {len(result.checks)} expectations do not hold; first: "
            f"{failed[0].name}: {failed[0].detail}"
        )


@cli.command()
@global_options
@click.argument("path", metavar="PATH|TARGET", type=click.Path(path_type=Path))
@click.option(
    "--runtime",
    type=click.Choice(["auto", "podman", "docker", "apptainer", "host"]),
    default="auto",
    show_default=True,
    help="Where steps run; auto: a container runtime when installed and its images are "
    "available, else the host.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "slurm", "htcondor", "kubernetes"]),
    default="local",
    show_default=True,
    help="Snakemake workflows: the Snakemake executor plugin that runs the jobs on a batch "
    "cluster (pip install 'odrun[slurm]' etc.).",
)
@click.option(
    "--executor-option",
    "executor_options",
    metavar="KEY=VALUE",
    multiple=True,
    help="An executor option (repeatable): jobs, a plugin setting, or a default resource "
    "(slurm_partition, mem_mb, runtime); overrides odrun.yaml's executors.<name>.",
)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Run folder.")
@click.option("--locked", is_flag=True, help="Refuse to run if inputs drifted from odrun.lock.")
@click.option("--verify", "do_verify", is_flag=True, help="Check the expectations after the run.")
@click.option("--from", "from_step", metavar="STEP", help="Serial: start at this step.")
@click.option("--target", "target_step", metavar="STEP", help="Serial: stop after this step.")
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML of the checks."
)
@json_option
@click.pass_context
def run(
    ctx: click.Context,
    path: Path,
    runtime: str,
    executor: str,
    executor_options: tuple[str, ...],
    workdir: Path | None,
    locked: bool,
    do_verify: bool,
    from_step: str | None,
    target_step: str | None,
    junit: Path | None,
    as_json: bool,
) -> None:
    """Run a declared analysis: reana.yaml (serial, snakemake) and/or odrun.yaml.

    PATH is a folder holding them, or a spec file; TARGET a record reference
    (DOI, recid, URL) whose record ships an analysis (its spec files, or a code
    archive), which is fetched into ./record-<recid>/ first.

    Inputs are staged into a fresh workspace, the records odrun.yaml names are
    fetched and verified through the cache, the steps run, and the run folder
    gets run.json, odrun.lock and ro-crate-metadata.json. Exit code 0 only if
    every step succeeded (and, with --verify, every expectation holds).

    \b
    Examples:
      odrun run workflows/dimuon-demo --verify
      odrun run my-analysis/reana.yaml --from fit --workdir /tmp/run1
      odrun run . --locked --verify --junit results.xml
      odrun run 10.7483/OPENDATA.CMS.XXXX.YYYY --verify
      odrun run . --executor slurm --executor-option slurm_partition=debug
    """
    settings = settings_of(ctx)
    from_record = not path.exists() and _is_reference(str(path))
    if from_record:
        path = fetch_analysis(str(path), settings, Path.cwd(), _say)
    analysis = load_analysis(path)
    result = run_analysis(
        analysis,
        settings,
        workdir=workdir,
        runtime=runtime,
        locked=locked,
        from_step=from_step,
        target_step=target_step,
        verify=do_verify,
        untrusted=from_record,
        executor=executor,
        executor_options=_key_values(executor_options, "--executor-option"),
        say=_say,
    )
    _finish(result, as_json, junit)


def _key_values(items: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE, e.g. mem_mb=2000")
        pairs[key.strip()] = value
    return pairs


@cli.command()
@global_options
@click.argument(
    "run_dir", metavar="RUN", type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@json_option
@click.pass_context
def rerun(ctx: click.Context, run_dir: Path, as_json: bool) -> None:
    """Run again the analysis a recorded run (its run.json) ran, in a new run folder.

    \b
    Examples:
      odrun rerun workflows/dimuon-demo/.odrun/runs/20261125T201500Z
    """
    record = _run_record(run_dir)
    analysis = load_analysis(Path(str(record["analysis_path"])))
    runtime = str(record.get("runtime") or "auto")  # where the recorded run ran
    executor = str(record.get("executor") or "local")
    options = record.get("executor_options")
    result = run_analysis(
        analysis,
        settings_of(ctx),
        runtime=runtime,
        executor=executor,
        executor_options={str(k): str(v) for k, v in options.items()}
        if isinstance(options, dict)
        else None,
        verify=True,
        say=_say,
    )
    _finish(result, as_json, None)


def _is_reference(text: str) -> bool:
    try:
        parse_reference(text)
    except UsageError:
        return False
    return True


def _run_record(run_dir: Path) -> dict[str, object]:
    try:
        data: Any = untrusted.load_json((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise UsageError(f"{run_dir} is not an odrun run folder (no readable run.json)")
    return data


@cli.command("validate")
@global_options
@click.argument("path", type=click.Path(path_type=Path))
@json_option
def validate_cmd(path: Path, as_json: bool) -> None:
    """Check an analysis without running it: schemas, parameters, inputs, image pins.

    reana.yaml is checked against REANA's published schema (0.9); as in REANA,
    unknown keys are warnings and every other problem an error (exit code 2).

    \b
    Examples:
      odrun validate workflows/dimuon-demo
    """
    findings = validate(load_analysis(path))
    if as_json:
        render.print_json([f.__dict__ for f in findings])
    else:
        for finding in findings:
            click.echo(str(finding))
        errors = sum(1 for f in findings if f.level == "error")
        click.echo(f"{errors} errors, {len(findings) - errors} warnings", err=True)
    errors_found = [f for f in findings if f.level == "error"]
    if errors_found:
        raise SpecError(f"{len(errors_found)} errors in {path}; first: {errors_found[0]}")


@cli.command("verify")
@global_options
@click.argument("target", metavar="RUN|PATH", type=click.Path(exists=True, path_type=Path))
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML report.")
@json_option
def verify_cmd(target: Path, junit: Path | None, as_json: bool) -> None:
    """Check a run's outputs against odrun.yaml's expectations (exit 10 if any fails).

    RUN is a run folder, checked against the expectations it ran with; PATH an analysis,
    whose latest run is checked against the analysis's current odrun.yaml (so tolerances
    and references can be revised without running again).

    \b
    Examples:
      odrun verify workflows/dimuon-demo --junit verify.xml
      odrun verify workflows/dimuon-demo/.odrun/runs/20261125T201500Z --json
    """
    run_dir = _latest_run(target)
    manifest = target / "odrun.yaml" if run_dir != target else run_dir / "odrun.yaml"
    spec = load_analysis(manifest) if manifest.is_file() else None
    expectations = spec.manifest.get("expect") if spec else None
    if not expectations:
        raise UsageError(f"{run_dir} has no expectations to verify (odrun.yaml 'expect')")
    started = time.monotonic()
    base = target if run_dir != target else _analysis_root(run_dir)
    checks = evaluate(run_dir / "workspace", expectations, base)
    if junit is not None:
        _write_junit(junit, spec.name if spec else "odrun", checks, time.monotonic() - started)
    if as_json:
        render.print_json({"run": str(run_dir), "checks": [c.to_dict() for c in checks]})
    else:
        click.echo(f"verify {run_dir}")
        render.check_lines(checks)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerificationError(f"{len(failed)} of {len(checks)} expectations do not hold")


def _analysis_root(run_dir: Path) -> Path:
    """The folder of the analysis a run ran (histogram references live there)."""
    try:
        recorded = Path(str(_run_record(run_dir)["analysis_path"]))
    except (UsageError, KeyError):
        return run_dir / "workspace"
    return recorded if recorded.is_dir() else recorded.parent


def _latest_run(target: Path) -> Path:
    if (target / "run.json").is_file():
        return target
    runs = sorted((target / ".odrun" / "runs").glob("*/run.json"))
    if not runs:
        raise UsageError(f"{target} is neither a run folder nor an analysis that has run")
    return runs[-1].parent
