"""CLI commands for the odrun appliance: user-data, test. Parse, call, render."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from odrun import appliance_vm, render
from odrun._fs import atomic_write
from odrun._version import __version__
from odrun.appliance import (
    CLOUD_LIMITS,
    IMAGE_WHEELS,
    LAUNCH,
    ApplianceSettings,
    pins_from_lock,
    user_data,
)
from odrun.cli._common import json_option, repo_names
from odrun.cvmfs import OPEN_DATA_REPOS
from odrun.errors import ConfigError, UsageError, VerificationError


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp + rename); the folder must exist."""
    if not path.parent.is_dir():
        raise UsageError(f"-o {path}: the folder {path.parent} does not exist (create it first)")
    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"-o {path}: cannot write ({exc.strerror or exc})") from None


@click.group()
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
    "--image",
    is_flag=True,
    help="For the odrun appliance image (appliance/build-image.sh): no packages, only the "
    f"offline provisioning; --pip-spec defaults to odrun=={__version__} from its wheels.",
)
@click.option("--user", default="", metavar="NAME", help="Create this login user (sudo).")
@click.option(
    "--ssh-key",
    "ssh_keys",
    multiple=True,
    metavar="KEY",
    help="A public key line the --user logs in with (repeatable).",
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
    image: bool,
    user: str,
    ssh_keys: tuple[str, ...],
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
    a git URL pip can install (git+https://github.com/ORG/odrun@TAG). With
    --image (the prebuilt appliance image, which may boot with no network)
    it defaults to this odrun's version, installed from the image's wheels.

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
      odrun appliance user-data --image --user me --ssh-key "$(cat ~/.ssh/id_ed25519.pub)" \\
          -o user-data && cloud-localds seed.img user-data
    """
    if image and not pip_spec:
        pip_spec = f"odrun=={__version__}"
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
    names = repo_names(repos) or OPEN_DATA_REPOS
    names = tuple(dict.fromkeys([*names, *pins]))
    settings = ApplianceSettings(
        names,
        proxy,
        quota_mb,
        pins,
        pip_spec,
        cloud,
        find_links=IMAGE_WHEELS if image else "",
        image=image,
        user=user,
        ssh_keys=ssh_keys,
    )
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


@appliance.command("test")
@click.option("--rebuild", is_flag=True, help="Build the image again even if it is cached.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the VM's files here (user-data, seed, console.log, results/) [default: a temp dir].",
)
@click.option(
    "--timeout", type=float, default=900, show_default=True, help="Seconds the boot may take."
)
@click.option(
    "--memory-mb", type=int, default=1536, show_default=True, help="The VM's RAM (2048 at most)."
)
@json_option
def test_command(
    rebuild: bool, workdir: Path | None, timeout: float, memory_mb: int, as_json: bool
) -> None:
    """Build (or reuse) the appliance image, boot it under QEMU and check it.

    Builds the image with appliance/build-image.sh (cached by the hash of its
    inputs under /var/tmp), renders `odrun appliance user-data --image --user
    odrun`, boots it with no network (QEMU, software emulation unless
    ODRUN_QEMU_ACCEL=kvm) from a NoCloud seed, and checks from the results
    disk the VM writes: cloud-init done without errors, the user, the CVMFS
    configuration and the odrun version requested applied, `odrun doctor --json`,
    and the demo run with --verify, whose outputs must be byte-identical to the
    same run on this machine. Exit 10 if a check fails.

    \b
    Examples:
      odrun appliance test
      odrun appliance test --workdir /tmp/vm --json
    """

    def say(text: str) -> None:
        render.echo(text, err=True)

    started = time.monotonic()
    image = appliance_vm.build_image(force=rebuild, say=say)
    built = time.monotonic() - started
    settings = ApplianceSettings(
        pip_spec=f"odrun=={__version__}", find_links=IMAGE_WHEELS, image=True, user="odrun"
    )
    folder = workdir or Path(tempfile.mkdtemp(prefix="odrun-appliance-test-"))
    result = appliance_vm.boot_selftest(
        image, user_data(settings), folder / "vm", timeout=timeout, memory_mb=memory_mb, say=say
    )
    # the same analysis on this machine, from a copy (a run writes next to its odrun.yaml)
    root = appliance_vm.checkout_root()
    host = folder / "host"
    shutil.rmtree(host, ignore_errors=True)
    for name in ("dimuon-demo", "mirror"):
        shutil.copytree(root / "workflows" / name, host / "workflows" / name, ignore=_skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "odrun",
            "run",
            str(host / "workflows" / "dimuon-demo"),
            "--verify",
            "--runtime",
            "host",
            "--workdir",
            str(host / "run"),
        ],
        capture_output=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    findings = appliance_vm.assess(
        result,
        user=settings.user,
        quota_mb=settings.quota_mb,
        repos=settings.repos,
        version=__version__,
        host_outputs=host / "run" / "workspace",
    )
    report = {
        "image": str(image),
        "image_sha256": appliance_vm.manifest(image)["files"]["disk.qcow2"]["sha256"],
        "workdir": str(folder),
        "seconds": {
            "build_or_reuse": round(built, 1),
            "vm": round(result.seconds, 1),
            **{f"guest_{k}": round(v, 1) for k, v in result.uptimes.items()},
        },
        "checks": [{"name": f.name, "ok": f.ok, "detail": f.detail} for f in findings],
        "ok": all(f.ok for f in findings),
    }
    if as_json:
        render.print_json(report)
    else:
        for f in findings:
            render.echo(f"{'ok  ' if f.ok else 'FAIL'} {f.name:14} {f.detail}")
        render.echo(f"times (s): {report['seconds']}; files in {folder}")
    if not report["ok"]:
        failed = [f.name for f in findings if not f.ok]
        raise VerificationError(
            f"appliance test: {', '.join(failed)} failed (console: {result.console})"
        )


def _skip(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in {".odrun", "__pycache__"}}
