"""CLI commands that run analyses: run, rerun, validate, verify. Parse, call, render."""

from __future__ import annotations

import json
from pathlib import Path

import click

from odrun import render
from odrun._fs import atomic_write
from odrun.api import report_hook
from odrun.cli._common import global_options, json_option, pick_target, settings_of
from odrun.errors import UsageError, VerificationError
from odrun.records import parse_reference
from odrun.workflow import load_analysis, run_analysis, validate
from odrun.workflow.expect import Check, junit_xml
from odrun.workflow.fromrecord import fetch_analysis
from odrun.workflow.model import RunOptions, RunResult
from odrun.workflow.record import RunRecord
from odrun.workflow.spec import worst_error
from odrun.workflow.verify import verify_run


def _say(message: str) -> None:
    render.echo(f"odrun: {message}", err=True)


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
        render.echo(f"run {result.status}: {result.run_dir}")
        render.output_lines(result.outputs)
        render.check_lines(result.checks)
    failed = [c for c in result.checks if not c.ok]
    if failed:
        raise VerificationError(
            f"{len(failed)} of {len(result.checks)} expectations do not hold; first: "
            f"{failed[0].name}: {failed[0].detail}"
        )


@click.command()
@global_options
@click.argument("path", metavar="PATH|TARGET", required=False, type=click.Path(path_type=Path))
@click.option("--recid", metavar="N", help="Run the analysis of the record with this id.")
@click.option("--doi", metavar="DOI", help="Run the analysis of the record with this DOI.")
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
@click.option(
    "--unpack-limit",
    "unpack_limits",
    metavar="KEY=VALUE",
    multiple=True,
    help="Raise a limit for unpacking a record's code archive: max_bytes (10 GiB), max_ratio "
    "(200) or max_members (100000) [ODRUN_UNPACK_MAX_BYTES etc.].",
)
@json_option
@click.pass_context
def run(
    ctx: click.Context,
    path: Path | None,
    recid: str | None,
    doi: str | None,
    runtime: str,
    executor: str,
    executor_options: tuple[str, ...],
    workdir: Path | None,
    locked: bool,
    do_verify: bool,
    from_step: str | None,
    target_step: str | None,
    junit: Path | None,
    unpack_limits: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run a declared analysis: reana.yaml (serial, snakemake, cwl, yadage) and/or odrun.yaml.

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
    limits = _key_values(unpack_limits, "--unpack-limit")
    unknown = sorted(set(limits) - {"max_bytes", "max_ratio", "max_members"})
    if unknown:
        raise UsageError(
            f"--unpack-limit {unknown[0]}: expected max_bytes, max_ratio or max_members"
        )
    overrides = ctx.find_root().ensure_object(dict)
    overrides.update({f"unpack_{key}": value for key, value in limits.items()})
    settings = settings_of(ctx)
    if recid is not None or doi is not None or path is None:
        reference = pick_target(None if path is None else str(path), recid, doi)
        path = Path(reference)
        from_record = True
    else:
        from_record = not path.exists() and _is_reference(str(path))
    if from_record:
        path = fetch_analysis(str(path), settings, Path.cwd(), _say)
    analysis = load_analysis(path)
    options = RunOptions(
        workdir=workdir,
        runtime=runtime,
        locked=locked,
        from_step=from_step,
        target_step=target_step,
        verify=do_verify,
        untrusted=from_record,
        executor=executor,
        executor_options=_key_values(executor_options, "--executor-option"),
    )
    result = run_analysis(analysis, settings, options, say=_say, on_record=report_hook(_say))
    _finish(result, as_json, junit)


def _key_values(items: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE, e.g. mem_mb=2000")
        pairs[key.strip()] = value
    return pairs


@click.command()
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
    record = RunRecord.load(run_dir)
    analysis = load_analysis(Path(str(record.data["analysis_path"])))
    result = run_analysis(
        analysis,
        settings_of(ctx),
        RunOptions.rerun_of(record),
        say=_say,
        on_record=report_hook(_say),
    )
    _finish(result, as_json, None)


def _is_reference(text: str) -> bool:
    try:
        parse_reference(text)
    except UsageError:
        return False
    return True


@click.command("validate")
@global_options
@click.argument("path", type=click.Path(path_type=Path))
@json_option
def validate_cmd(path: Path, as_json: bool) -> None:
    """Check an analysis without running it: schemas, parameters, inputs, image pins.

    odrun.yaml is checked against odrun's schema, reana.yaml against REANA's published
    schema (0.9). Strict: an unknown key is an error naming the closest valid key, and
    every check `odrun run` makes before it starts is made here, by the same code
    (inputs inside the folder, symbolic links followed; references; record selections).
    Errors exit with code 2; warnings (e.g. unpinned images) do not.

    \b
    Examples:
      odrun validate workflows/dimuon-demo
    """
    findings = validate(load_analysis(path))
    if as_json:
        render.print_json([f.__dict__ for f in findings])
    else:
        for finding in findings:
            render.echo(str(finding))
        errors = sum(1 for f in findings if f.level == "error")
        render.echo(f"{errors} errors, {len(findings) - errors} warnings", err=True)
    errors_found = [f for f in findings if f.level == "error"]
    if errors_found:
        # a path leading out through a link is unsafe (exit 9), anything else a spec error (2)
        raise worst_error(errors_found)(
            f"{len(errors_found)} errors in {path}; first: {errors_found[0]}"
        )


@click.command("verify")
@global_options
@click.argument("target", metavar="RUN|PATH", type=click.Path(exists=True, path_type=Path))
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML report.")
@json_option
@click.pass_context
def verify_cmd(ctx: click.Context, target: Path, junit: Path | None, as_json: bool) -> None:
    """Check a run's outputs against odrun.yaml's expectations (exit 10 if any fails).

    RUN is a run folder, checked against the expectations it ran with; PATH an analysis,
    whose latest finished run is checked against the analysis's current odrun.yaml (so
    tolerances and references can be revised without running again). The spec is
    validated first, as by `odrun validate` (exit 2). A failed or partial run is never
    judged: when RUN, or PATH's latest run, failed, verify says so and exits 7.

    \b
    Examples:
      odrun verify workflows/dimuon-demo --junit verify.xml
      odrun verify workflows/dimuon-demo/.odrun/runs/20261125T201500Z --json
    """
    verdict = verify_run(target, _say, settings_of(ctx))
    if junit is not None:
        _write_junit(junit, verdict.name, verdict.checks, verdict.seconds)
    if as_json:
        render.print_json(verdict.to_dict())
    else:
        render.echo(f"verifying {verdict.run.describe()}: {verdict.run.run_dir}")
        render.check_lines(verdict.checks)
    error = verdict.error()
    if error is not None:
        raise error
