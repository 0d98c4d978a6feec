"""A private Docker daemon for the tests (Debian's docker.io), on a unix socket of its own.

``dockerd`` runs with its data-root, exec-root, pidfile and socket under a short
temporary folder (a unix socket path must stay under 108 bytes), no iptables and
no default bridge: containers get ``--network=none`` (or host) only. It starts
its own containerd. Readiness is polled with ``docker -H unix://... info`` up to
a deadline; the daemon is stopped by its PID (SIGTERM, then SIGKILL after a
bounded wait). The test image is the one the podman tests build
(tests/podman_image.py), copied with ``podman save | docker load``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_DEADLINE = 60.0
STOP_DEADLINE = 30.0


@dataclass(frozen=True)
class DockerDaemon:
    base: Path
    pid: int

    @property
    def host(self) -> str:
        """The value for DOCKER_HOST (and ``docker -H``)."""
        return f"unix://{self.base / 'docker.sock'}"

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.host, *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip


def unavailable_reason() -> str | None:
    for tool in ("dockerd", "docker", "containerd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tests/run installs docker.io)"
    if os.geteuid() != 0:
        return "dockerd needs root here (no rootless setup)"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def run_dockerd() -> Iterator[DockerDaemon]:
    """Start dockerd, wait until it answers, yield it; stop it (by PID) and clean up."""
    base = Path(tempfile.mkdtemp(prefix="odrun-dockerd-", dir="/tmp"))
    log = (base / "dockerd.log").open("wb")
    argv = [
        "dockerd", "--data-root", str(base / "root"), "--exec-root", str(base / "exec"),
        "-H", f"unix://{base / 'docker.sock'}", "--pidfile", str(base / "docker.pid"),
        "--iptables=false", "--ip6tables=false", "--bridge=none",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    daemon = DockerDaemon(base, proc.pid)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {proc.returncode}: {_tail(base)}")
            if daemon.docker("info", "--format", "{{.ID}}", timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd not ready after {START_DEADLINE:.0f}s: {_tail(base)}")
            time.sleep(0.2)  # polling a real condition (the daemon answers), bounded above
        yield daemon
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_DEADLINE)
        log.close()
        _unmount_under(base)
        _remove_later(base)


def _remove_later(base: Path) -> None:
    """Delete the daemon's folder without waiting: unlinking the ~8000 files of the image
    layers takes up to half a minute on a busy disk, and nothing reads them any more."""
    trash = base.with_name(base.name + "-removed")
    try:
        base.rename(trash)  # a crashed removal leaves a name no new daemon uses
    except OSError:
        trash = base
    # sh starts rm in the background and returns at once; rm outlives it (no Popen to reap)
    script = 'rm -rf --one-file-system "$1" </dev/null >/dev/null 2>&1 &'
    subprocess.run(["sh", "-c", script, "sh", str(trash)], check=False, timeout=30)


def _tail(base: Path) -> str:
    try:
        return " | ".join((base / "dockerd.log").read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return "(no log)"


def _unmount_under(base: Path) -> None:
    """Mounts a killed daemon may have left (overlay layers, the exec-root's netns)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(str(base))), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def load_image(daemon: DockerDaemon, image: str) -> str | None:
    """Copy ``image`` from podman's store into the daemon; None when done, else why not."""
    if daemon.docker("image", "inspect", image).returncode == 0:
        return None
    with subprocess.Popen(
        ["podman", "save", "--format", "docker-archive", image],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    ) as save:  # fmt: skip
        loaded = subprocess.run(
            ["docker", "-H", daemon.host, "load"], stdin=save.stdout,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    if save.returncode != 0 or loaded.returncode != 0:
        return f"podman save | docker load failed: {loaded.stderr.strip()[-300:]}"
    probe = daemon.docker("run", "--rm", "--network=none", image, "python3", "-c", "print(42)")
    if probe.returncode != 0 or probe.stdout.strip() != "42":
        return f"docker cannot run containers here: {probe.stderr.strip()[-300:]}"
    return None
