"""Build the odrun appliance image and boot it under QEMU, contextualised by odrun's user-data.

``build_image`` runs ``appliance/build-image.sh`` (cached under
``/var/tmp/odrun-appliance-<inputs hash>``). ``boot_selftest`` boots that image with no
network (``-nic none``), a NoCloud seed made with ``cloud-localds`` from the given
user-data, and a results disk (serial ``odrun-results``): the image's self-test unit
waits for cloud-init, runs ``odrun doctor --json`` and the demo with ``--verify``,
writes everything to that disk as a tar stream and powers off. Every wait is bounded;
QEMU is killed by its PID when the deadline passes. ``compare_outputs`` checks that
the guest's demo outputs have the same bytes as a run on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odrun.errors import ConfigError, WorkflowError
from odrun.settings import environment_value

Say = Callable[[str], None]
#: the demo's declared outputs, compared byte for byte between the guest and the host
DEMO_OUTPUTS = ("results/fit.json", "results/mass_hist.csv", "results/mass.png")
RESULTS_SERIAL = "odrun-results"
RESULTS_SIZE = 64 * 1024 * 1024


def _quiet(_: str) -> None:
    pass


def checkout_root() -> Path:
    """The odrun checkout whose ``appliance/build-image.sh`` builds the image."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "appliance" / "build-image.sh").is_file() or not (root / "workflows").is_dir():
        raise ConfigError(
            "building the appliance image needs an odrun checkout (appliance/build-image.sh "
            "and workflows/): run it from a git clone, not an installed wheel"
        )
    return root


def need_tools(*tools: str) -> None:
    """Raise ConfigError naming the missing tools and the Debian packages that have them."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not found",
            hint="apt-get install --no-install-recommends qemu-system-x86 qemu-utils "
            "mmdebstrap cloud-image-utils e2fsprogs",
        )


def build_image(*, force: bool = False, timeout: float = 2400, say: Say = _quiet) -> Path:
    """Build (or reuse) the appliance image; its folder (disk.qcow2, vmlinuz, initrd.img)."""
    script = checkout_root() / "appliance" / "build-image.sh"
    need_tools("mmdebstrap", "mkfs.ext4", "qemu-img")
    argv = ["bash", str(script), *(["--force"] if force else [])]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{script} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise ConfigError(f"{script} failed (exit {done.returncode}): {tail}")
    for line in done.stderr.splitlines():
        if line.startswith("build-image: "):
            say(line)
    return Path(done.stdout.strip().splitlines()[-1])


def manifest(image: Path) -> dict[str, Any]:
    """The image's manifest.json (package versions, checksums, boot arguments)."""
    data: dict[str, Any] = json.loads((image / "manifest.json").read_text(encoding="utf-8"))
    return data


@dataclass
class BootResult:
    """What a self-test boot left: the results folder, the console log, the timings."""

    results: Path
    console: Path
    seconds: float
    complete: bool
    uptimes: dict[str, float] = field(default_factory=dict)

    def read(self, name: str) -> str:
        path = self.results / name
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def json(self, name: str) -> Any:
        text = self.read(name)
        return json.loads(text) if text.strip() else None

    def rc(self, name: str) -> int | None:
        text = self.read(f"{name}.rc").strip()
        return int(text) if text.lstrip("-").isdigit() else None


def kvm_usable() -> bool:
    """Whether ``-accel kvm`` should be tried: only when ODRUN_QEMU_ACCEL=kvm asks for it.

    /dev/kvm exists on some machines where guests hang or abort, so KVM is never assumed.
    """
    accel = environment_value("ODRUN_QEMU_ACCEL") or "tcg"
    return accel == "kvm" and os.access("/dev/kvm", os.W_OK)


def qemu_argv(image: Path, seed: Path, results: Path, console: Path, memory_mb: int) -> list[str]:
    """The QEMU command line: no network, kernel and initrd given directly, three disks."""
    boot = manifest(image).get("boot", {})
    append = str(boot.get("append", "root=LABEL=odrun-root rw console=ttyS0"))
    accel = "kvm" if kvm_usable() else "tcg"
    return [
        "qemu-system-x86_64",
        "-accel",
        accel,
        "-m",
        str(memory_mb),
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-monitor",
        "none",
        "-serial",
        f"file:{console}",
        "-kernel",
        str(image / "vmlinuz"),
        "-initrd",
        str(image / "initrd.img"),
        "-append",
        f"{append} panic=-1",
        # the image stays as built: the guest's writes go to a temporary overlay
        "-drive",
        f"file={image / 'disk.qcow2'},if=none,id=root,format=qcow2,snapshot=on",
        "-device",
        "virtio-blk-pci,drive=root,serial=odrun-root",
        "-drive",
        f"file={seed},if=none,id=seed,format=raw,readonly=on",
        "-device",
        "virtio-blk-pci,drive=seed,serial=cidata",
        "-drive",
        f"file={results},if=none,id=results,format=raw",
        "-device",
        f"virtio-blk-pci,drive=results,serial={RESULTS_SERIAL}",
    ]


def boot_selftest(
    image: Path,
    user_data: str,
    workdir: Path,
    *,
    timeout: float = 900,
    memory_mb: int = 1536,
    instance_id: str = "odrun-selftest",
    say: Say = _quiet,
) -> BootResult:
    """Boot ``image`` with ``user_data`` (NoCloud) and collect the self-test's results.

    Raises WorkflowError when the VM does not power off within ``timeout`` seconds
    (QEMU is killed) or leaves no results.
    """
    need_tools("qemu-system-x86_64", "cloud-localds")
    if memory_mb > 2048:
        raise ConfigError(
            f"memory {memory_mb} MB: the appliance test keeps the VM at 2048 MB or less"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "user-data").write_text(user_data, encoding="utf-8")
    (workdir / "meta-data").write_text(
        f"instance-id: {instance_id}\nlocal-hostname: odrun-appliance\n", encoding="utf-8"
    )
    seed = workdir / "seed.img"
    made = subprocess.run(
        ["cloud-localds", str(seed), str(workdir / "user-data"), str(workdir / "meta-data")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if made.returncode != 0:
        raise ConfigError(f"cloud-localds could not make {seed}: {made.stderr.strip()[:300]}")
    disk = workdir / "results.img"
    with disk.open("wb") as handle:
        handle.truncate(RESULTS_SIZE)
    console = workdir / "console.log"
    argv = qemu_argv(image, seed, disk, console, memory_mb)
    say(f"booting {image.name} under QEMU ({argv[2]}, {memory_mb} MB, no network)")
    start = time.monotonic()
    with (workdir / "qemu.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WorkflowError(
                f"the appliance VM did not power off within {timeout:.0f} s (console: {console})"
            ) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    seconds = time.monotonic() - start
    if rc != 0:
        raise WorkflowError(f"qemu exited with {rc} (log: {workdir / 'qemu.log'})")
    results = workdir / "results"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir()
    try:
        with tarfile.open(disk, "r:") as tar:
            extract_results(tar, results)
    except tarfile.TarError as exc:
        raise WorkflowError(
            f"the appliance VM left no results on its results disk ({exc}; console: {console})"
        ) from None
    result = BootResult(results, console, seconds, (results / "COMPLETE").exists())
    for name in ("cloud-init-done", "end"):
        text = result.read(f"{name}.uptime").strip()
        if text:
            result.uptimes[name] = float(text)
    run = result.read("run.uptime").split()
    if len(run) == 2:
        result.uptimes["demo"] = float(run[1]) - float(run[0])
    return result


def extract_results(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract the guest's tar: regular files and folders only, never outside ``dest``."""
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if not target.is_relative_to(dest.resolve()) or not (member.isfile() or member.isdir()):
            continue
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is not None:
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out)


def sha256s(folder: Path, names: tuple[str, ...] = DEMO_OUTPUTS) -> dict[str, str | None]:
    """``{name: sha256}`` of the named files under ``folder`` (None where missing)."""
    sums: dict[str, str | None] = {}
    for name in names:
        path = folder / name
        sums[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return sums


def compare_outputs(guest: Path, host: Path, names: tuple[str, ...] = DEMO_OUTPUTS) -> list[str]:
    """The outputs whose bytes differ between the guest run and the host run (empty: same)."""
    ours, theirs = sha256s(guest, names), sha256s(host, names)
    return [
        f"{name}: guest {ours[name] or 'missing'} != host {theirs[name] or 'missing'}"
        for name in names
        if ours[name] is None or ours[name] != theirs[name]
    ]


@dataclass(frozen=True)
class Finding:
    """One thing the appliance test checked: ``ok`` or not, and what it saw."""

    name: str
    ok: bool
    detail: str


def assess(
    result: BootResult,
    *,
    user: str,
    quota_mb: int,
    repos: tuple[str, ...],
    version: str,
    host_outputs: Path | None,
) -> list[Finding]:
    """Judge a self-test boot: cloud-init, the user-data applied, doctor, the demo, the outputs."""
    found: list[Finding] = []
    status = result.json("cloud-init-status.json") or {}
    state = status.get("status", "missing") if isinstance(status, dict) else "unreadable"
    errors = status.get("errors", []) if isinstance(status, dict) else ["unreadable status"]
    found.append(
        Finding(
            "cloud-init",
            state == "done" and not errors,
            f"status {state}"
            + (f", errors: {'; '.join(map(str, errors))[:300]}" if errors else ""),
        )
    )
    users = {line.split(":", 1)[0] for line in result.read("passwd").splitlines()}
    found.append(
        Finding("user", user in users, f"{user} {'exists' if user in users else 'missing'}")
    )
    local = result.read("etc/cvmfs/default.local")
    want = [f"CVMFS_QUOTA_LIMIT={quota_mb}", f"CVMFS_REPOSITORIES={','.join(repos)}"]
    lacking = [line for line in want if line not in local.splitlines()]
    found.append(
        Finding(
            "cvmfs-config",
            not lacking,
            "default.local has " + ", ".join(want) if not lacking else f"missing {lacking}",
        )
    )
    got = result.read("odrun-version").strip()
    found.append(Finding("odrun-version", got.endswith(f" {version}"), got or "no odrun --version"))
    doctor = result.json("doctor.json")
    checks = doctor.get("checks", []) if isinstance(doctor, dict) else []
    cvmfs = [c for c in checks if isinstance(c, dict) and c.get("area") == "cvmfs"]
    found.append(
        Finding(
            "doctor",
            result.rc("doctor") == 0 and bool(checks),
            f"exit {result.rc('doctor')}, {len(checks)} checks; cvmfs: "
            + ", ".join(f"{c.get('name')} {c.get('status')}" for c in cvmfs),
        )
    )
    found.append(
        Finding("demo-run", result.rc("run") == 0, f"odrun run --verify exit {result.rc('run')}")
    )
    if host_outputs is not None:
        diff = compare_outputs(result.results / "outputs", host_outputs)
        found.append(
            Finding(
                "same-answer",
                not diff,
                "; ".join(diff)
                if diff
                else f"{len(DEMO_OUTPUTS)} outputs byte-identical to the host run",
            )
        )
    return found
