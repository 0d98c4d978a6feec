"""CLI commands for the machine odrun runs on: appliance user-data, doctor. Parse, call, render."""

from __future__ import annotations

import json
from pathlib import Path

import click

from odrun import render
from odrun._fs import atomic_write
from odrun.appliance import (
    CLOUD_LIMITS,
    LAUNCH,
    ApplianceSettings,
    pins_from_lock,
    user_data,
)
from odrun.cli import cli, global_options, json_option, settings_of
from odrun.cvmfs import OPEN_DATA_REPOS
from odrun.doctor import diagnose
from odrun.errors import ConfigError, UsageError


def _repos(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated and/or comma-separated repository names, in order, once each."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return tuple(dict.fromkeys(names))


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp + rename); the folder must exist."""
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: the folder {path.parent} does not exist (create it first)")
    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"-o {path}: cannot write ({exc.strerror or exc})") from None


@cli.group()
def appliance() -> None:
    """The odrun appliance: a VM with CVMFS, podman and odrun (Vagrantfile, cloud-init).

    \b
    Examples:
      odrun appliance user-data --pip-spec URL --cloud ec2 -o user-data.yaml
      odrun appliance user-data --pip-spec URL --cernvm --proxy 'http://squid:3128;DIRECT' \\
          -o context.txt
    """


@appliance.command("user-data")
@click.option(
    "--cloud",
    type=click.Choice(sorted(CLOUD_LIMITS)),
    default="openstack",
    show_default=True,
    help="Where it boots (sets the size limit checked and the launch hint).",
)
@click.option(
    "--cvmfs-repos",
    "repos",
    multiple=True,
    metavar="REPO[,REPO...]",
    help=f"CVMFS repositories to mount and probe [default: {','.join(OPEN_DATA_REPOS)}].",
)
@click.option(
    "--proxy",
    default="",
    metavar="PROXIES",
    help="CVMFS_HTTP_PROXY, e.g. 'http://squid:3128;DIRECT' [default: profile single].",
)
@click.option(
    "--quota-mb",
    type=int,
    default=4000,
    show_default=True,
    help="CVMFS cache size (MB); keep it well under the machine's free disk.",
)
@click.option(
    "--pin-from",
    "lock",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="An odrun.lock: mount the CVMFS snapshots (root hashes) it recorded.",
)
@click.option(
    "--pip-spec",
    metavar="REQ",
    help="What pip installs as odrun on the machine (required: odrun is not on PyPI yet), "
    "e.g. git+https://github.com/ORG/odrun@TAG or a wheel URL.",
)
@click.option(
    "--cernvm",
    is_flag=True,
    help="For CernVM images: MIME multipart with µCernVM and amiconfig contexts too.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE (default: standard output).",
)
def user_data_command(
    cloud: str,
    repos: tuple[str, ...],
    proxy: str,
    quota_mb: int,
    lock: Path | None,
    pip_spec: str | None,
    cernvm: bool,
    output: Path | None,
) -> None:
    """Render the appliance's user-data: cloud-init for OpenStack, EC2 and GCE.

    A #cloud-config that writes the settings and appliance/provision.sh (the
    script `vagrant up` runs) and runs it: CVMFS (client profile single, the
    proxy and cache quota given), podman, odrun, then `odrun doctor`. With
    --cernvm, a MIME multipart that CernVM's µCernVM bootloader and amiconfig
    read too.

    --pip-spec is required until odrun is published on PyPI: a wheel URL or
    a git URL pip can install (git+https://github.com/ORG/odrun@TAG).

    \b
    Examples:
      S=git+https://github.com/ORG/odrun@v0.1.0
      odrun appliance user-data --pip-spec $S -o user-data.yaml
      openstack server create --image debian-12 --flavor m1.large \\
          --user-data user-data.yaml odrun-vm
      odrun appliance user-data --pip-spec $S --cloud ec2 --cvmfs-repos cms.cern.ch -o ud.yaml
      aws ec2 run-instances --image-id ami-... --user-data file://ud.yaml
      odrun appliance user-data --pip-spec $S --cloud gce --quota-mb 8000 -o ud.yaml
      gcloud compute instances create vm --metadata-from-file user-data=ud.yaml
      odrun appliance user-data --pip-spec $S --cernvm --pin-from odrun.lock -o context.txt
    """
    if not pip_spec:
        raise UsageError(
            "--pip-spec is required (odrun is not on PyPI yet): what the machine installs, e.g. "
            "--pip-spec git+https://github.com/<org>/odrun@<tag>, or a wheel URL"
        )
    pins: dict[str, str] = {}
    if lock is not None:
        try:
            pins = pins_from_lock(json.loads(lock.read_text(encoding="utf-8")))
        except (ValueError, AttributeError) as exc:
            raise UsageError(f"--pin-from {lock}: not an odrun.lock ({exc})") from None
    names = _repos(repos) or OPEN_DATA_REPOS
    names = tuple(dict.fromkeys([*names, *pins]))
    settings = ApplianceSettings(names, proxy, quota_mb, pins, pip_spec, cloud)
    text = user_data(settings, cernvm=cernvm)
    if output is None:
        render.echo(text, nl=False, lines=True)
        return
    write_output(output, text)
    launch = LAUNCH[cloud].replace("FILE", str(output))
    render.echo(
        f"wrote {output} ({len(text.encode())} bytes); launch with:\n  {launch}",
        err=True,
        lines=True,
    )


@cli.command()
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
    names = _repos(repos)
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
