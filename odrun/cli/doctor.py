"""CLI command that checks the machine odrun runs on: doctor. Parse, call, render."""

from __future__ import annotations

import click

from odrun import render
from odrun.cli._common import global_options, json_option, repo_names, settings_of
from odrun.doctor import diagnose
from odrun.errors import ConfigError


@click.command()
@global_options
@click.option(
    "--cvmfs",
    "repos",
    multiple=True,
    metavar="REPO",
    help="Require this CVMFS repository (repeatable; comma-separated too).",
)
@json_option
@click.pass_context
def doctor(ctx: click.Context, repos: tuple[str, ...], as_json: bool) -> None:
    """Check this machine for odrun, and say what to fix.

    Container runtimes (podman, docker, apptainer: installed and answering),
    CVMFS repositories (mounted, revision and root hash), the XRootD client,
    proxy settings, free space in the cache folder, Snakemake. Each check is
    ok, warn or fail; the exit code is 8 only when a required check fails:
    the cache folder is not writable, or a repository named with --cvmfs is
    not mounted. Without --cvmfs the open-data repositories are looked at
    (warnings only). The CVMFS root is $ODRUN_CVMFS_ROOT or /cvmfs.

    \b
    Examples:
      odrun doctor
      odrun doctor --cvmfs cms.cern.ch --cvmfs cms-opendata-conddb.cern.ch
      odrun doctor --json | jq '.checks[] | select(.status != "ok")'
    """
    names = repo_names(repos)
    report = diagnose(settings_of(ctx), list(names) if names else None)
    if as_json:
        render.print_json(report.to_dict())
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for check in report.checks:
            render.echo(f"{marks[check.status]} {check.area:8} {check.name}: {check.detail}")
            if check.fix and check.status != "ok":
                render.echo(f"     {'':8} fix: {check.fix}")
    if not report.ok:
        failed = [c for c in report.checks if c.status == "fail"]
        raise ConfigError(
            f"{len(failed)} required check(s) failed: "
            + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        )
