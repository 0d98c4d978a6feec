"""Start the real Debian ``xrootd`` daemon on loopback: root:// plus its HTTP port, adler32.

Recipe from the project's infra notes: the daemon refuses to run as root, so it
runs as the ``xrootd`` user (``-R xrootd``) over a tree it owns; it serves
``/data`` from ``<dir>/data``. Stopped by PID.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
all.export /data
oss.localroot {root}
all.adminpath {root}/admin
all.pidpath {root}/run
xrd.port {port}
xrd.network nodnr
xrd.allow host localhost
xrd.allow host 127.0.0.1
xrootd.chksum adler32
xrd.protocol XrdHttp:{http_port} libXrdHttp.so
http.listingdeny no
http.desthttps no
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable_reason() -> str | None:
    """Why the daemon cannot run here, or None."""
    if shutil.which("xrootd") is None:
        return "xrootd-server is not installed (apt-get install xrootd-server xrootd-client)"
    try:
        pwd.getpwnam("xrootd")
    except KeyError:
        return "no 'xrootd' user (the Debian package creates it)"
    if os.geteuid() != 0:
        return "starting xrootd as its own user needs root"
    return None


@dataclass(frozen=True)
class XRootDServer:
    root: Path
    port: int
    http_port: int
    pid: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def root_url(self) -> str:
        return f"root://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def uri(self, name: str) -> str:
        return f"{self.root_url}//data/{name}"

    @property
    def protocol_map(self) -> str:
        return f"{self.root_url}={self.http_url}"

    def add(self, name: str, data: bytes) -> Path:
        path = self.data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        uid = pwd.getpwnam("xrootd").pw_uid
        os.chown(path, uid, -1)
        for parent in path.relative_to(self.data).parents:
            os.chown(self.data / parent, uid, -1)
        return path


@contextmanager
def run_xrootd(workdir: Path) -> Iterator[XRootDServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    for folder in (workdir, *workdir.parents):
        if folder != Path("/"):
            folder.chmod(folder.stat().st_mode | 0o011)  # traversable by the xrootd user
    for sub in ("data", "admin", "run"):
        (workdir / sub).mkdir(exist_ok=True)
    port, http_port = free_port(), free_port()
    cfg = workdir / "xrootd.cfg"
    cfg.write_text(CONFIG.format(root=workdir, port=port, http_port=http_port))
    uid = pwd.getpwnam("xrootd").pw_uid
    for path in (workdir, *workdir.rglob("*")):
        os.chown(path, uid, -1)
    pidfile = workdir / "xrootd.pid"
    subprocess.run(
        [
            "xrootd",
            "-b",
            "-R",
            "xrootd",
            "-c",
            str(cfg),
            "-l",
            str(workdir / "xrootd.log"),
            "-n",
            "odrun-test",
            "-s",
            str(pidfile),
        ],
        check=True,
        timeout=30,
    )
    deadline = time.monotonic() + 20
    pid = 0
    while time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text().strip():
            pid = int(pidfile.read_text().split()[0])
        if pid and _listening(port) and _listening(http_port):
            break
        time.sleep(0.05)  # polling a daemon's start-up, not synchronising tests
    else:
        log = (workdir / "xrootd.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"xrootd did not start on {port}/{http_port}:\n{log}")
    try:
        yield XRootDServer(workdir, port, http_port, pid)
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
