"""A real single-node Slurm cluster on loopback for the tests (Debian slurm-wlm 22.05).

Everything lives under one folder of its own: munged (its own socket),
MariaDB (its own data folder, 127.0.0.1 and a free port) for slurmdbd, the
accounting daemon (``sacct`` is how Snakemake's Slurm plugin learns job
states), slurmctld and slurmd, each started in the foreground as a child
process and stopped by its PID. Commands find the cluster through the
``SLURM_CONF`` environment variable. Needs root (slurmd runs jobs as their
user) and the packages tests/run installs; about 10 s to start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xrootd_server import free_port

BINARIES = ("munged", "munge", "unmunge", "mariadbd", "mariadb-install-db", "mariadb",
            "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sinfo", "sacct", "srun")  # fmt: skip
CLUSTER = "odrun"
PARTITION = "debug"
DB_PASSWORD = "odrun-test"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
#: where srun inside a job looks: the Slurm plugin's job step drops SLURM_CONF from
#: the environment of its nested srun, so the test cluster's config is linked here
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "a Slurm cluster needs root (slurmd runs jobs as their user)"
    for exe in BINARIES:
        if shutil.which(exe) is None and not Path("/usr/sbin", exe).exists():
            return (
                f"{exe} is not installed (tests/run installs slurm-wlm, slurmdbd, munge, mariadb)"
            )
    if DEFAULT_CONF.exists() and not _ours(DEFAULT_CONF):
        return f"{DEFAULT_CONF} belongs to a real cluster: not starting a test one beside it"
    if not Path("/etc/munge/munge.key").is_file():
        return "/etc/munge/munge.key is missing (the munge package creates it)"
    return None


def _ours(path: Path) -> bool:
    """A link a test cluster left (maybe dangling after a crash)."""
    return path.is_symlink() and os.readlink(path).startswith("/var/tmp/odrun-slurm-")


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class SlurmCluster:
    root: Path
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_exe(argv[0]), *argv[1:]], capture_output=True, text=True, env=self.env,
            timeout=timeout, check=False,
        )  # fmt: skip

    def _start(self, name: str, argv: list[str], user: str | None = None) -> None:
        log = (self.root / "log" / f"{name}.out").open("wb")
        if user:  # setpriv execs (no fork): the PID is the daemon's
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv]
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
        )
        log.close()

    def _wait(self, what: str, check: object, timeout: float = 60) -> None:
        """Poll ``check()`` until true; fail naming ``what`` and the logs on the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}): {self.log_tail(name)}")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}")

    def log_tail(self, name: str) -> str:
        text = ""
        for path in (self.root / "log").glob(f"{name}*"):
            text += path.read_text(errors="replace")[-800:]
        return text

    def start(self) -> None:
        for sub in ("etc", "log", "state", "spool"):
            (self.root / sub).mkdir(parents=True)
        self.root.chmod(0o755)
        self._start_munge()
        db_port = self._start_mariadb()
        ctld, slurmd, dbd = free_port(), free_port(), free_port()
        self._write_configs(ctld, slurmd, dbd, db_port)
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        if _ours(DEFAULT_CONF):
            DEFAULT_CONF.unlink()
        DEFAULT_CONF.symlink_to(self.conf)
        self._start("slurmdbd", [_exe("slurmdbd"), "-D"])
        self._wait(
            "slurmdbd", lambda: self.run("sacctmgr", "-n", "list", "cluster").returncode == 0
        )
        added = self.run("sacctmgr", "-i", "add", "cluster", CLUSTER)
        if added.returncode != 0 and "already exists" not in added.stdout + added.stderr:
            raise RuntimeError(f"sacctmgr add cluster: {added.stderr or added.stdout}")
        self._start("slurmctld", [_exe("slurmctld"), "-D", "-f", str(self.conf)])
        self._start("slurmd", [_exe("slurmd"), "-D", "-f", str(self.conf)])
        self._wait("the node to be idle", self._node_idle, timeout=90)

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t").stdout.split()
        return out[:2] == [self.node, "idle"]

    def _start_munge(self) -> None:
        """munged on its default socket (Slurm's clients ignore AuthInfo's socket), unless
        one already answers there."""
        if self._munge_works():
            return
        folder = self.root / "munge"
        folder.mkdir(mode=0o755)
        shutil.chown(folder, "munge", "munge")
        MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
        self._start("munged", [
            _exe("munged"), "-F", "--force", "--socket", str(MUNGE_SOCKET),
            "--pid-file", str(folder / "munged.pid"), "--log-file", str(folder / "munged.log"),
            "--seed-file", str(folder / "munged.seed"),
        ], user="munge")  # fmt: skip
        self._wait("munged", self._munge_works)

    def _munge_works(self) -> bool:
        try:
            cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=False)
            back = subprocess.run(
                ["unmunge"], input=cred.stdout, capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return cred.returncode == 0 and back.returncode == 0

    def _start_mariadb(self) -> int:
        data = self.root / "mysql"
        data.mkdir()
        shutil.chown(data, "mysql", "mysql")
        init = subprocess.run(
            [_exe("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=mysql",
             "--skip-test-db"], capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"mariadb-install-db: {init.stderr[-500:]}")
        port = free_port()
        self.db_socket = data / "mysqld.sock"
        self._start("mariadbd", [
            _exe("mariadbd"), "--no-defaults", f"--datadir={data}", "--user=mysql",
            f"--port={port}", "--bind-address=127.0.0.1", f"--socket={self.db_socket}",
            f"--pid-file={data / 'mysqld.pid'}", "--skip-name-resolve",
        ])  # fmt: skip
        self._wait("mariadbd", self.db_socket.exists)
        sql = (
            f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';"
            "CREATE DATABASE slurm_acct_db;"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )
        made = subprocess.run(
            [_exe("mariadb"), "--no-defaults", f"--socket={self.db_socket}", "-u", "root", "-e",
             sql], capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if made.returncode != 0:
            raise RuntimeError(f"mariadb: {made.stderr[-500:]}")
        return port

    def _write_configs(self, ctld: int, slurmd: int, dbd: int, db_port: int) -> None:
        r = self.root
        auth = "AuthType=auth/munge\n"
        self.conf.write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmUser=root\nSlurmdUser=root\nSlurmctldPort={ctld}\nSlurmdPort={slurmd}\n"
            f"{auth}StateSaveLocation={r}/state\nSlurmdSpoolDir={r}/spool\n"
            f"SlurmctldPidFile={r}/state/slurmctld.pid\nSlurmdPidFile={r}/spool/slurmd.pid\n"
            f"SlurmctldLogFile={r}/log/slurmctld.log\nSlurmdLogFile={r}/log/slurmd.log\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
            "JobAcctGatherType=jobacct_gather/linux\nJobAcctGatherFrequency=5\n"
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={dbd}\n"
            "JobCompType=jobcomp/none\nMpiDefault=none\nReturnToService=2\n"
            "AccountingStoreFlags=job_comment\n"
            "SchedulerParameters=sched_interval=1\nMessageTimeout=10\n"
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} "
            "RealMemory=1000 State=UNKNOWN\n"
            f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        )
        dbd_conf = self.conf.with_name("slurmdbd.conf")
        dbd_conf.write_text(
            f"{auth}DbdAddr=127.0.0.1\nDbdHost=localhost\nDbdPort={dbd}\nSlurmUser=root\n"
            f"PidFile={r}/state/slurmdbd.pid\nLogFile={r}/log/slurmdbd.log\n"
            "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            f"StoragePort={db_port}\nStorageUser=slurm\nStoragePass={DB_PASSWORD}\n"
            "StorageLoc=slurm_acct_db\n"
        )
        dbd_conf.chmod(0o600)

    def stop(self) -> None:
        """Stop every daemon by its PID, the last started first; remove the config link."""
        if _ours(DEFAULT_CONF) and os.readlink(DEFAULT_CONF) == str(self.conf):
            DEFAULT_CONF.unlink()
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@contextlib.contextmanager
def cluster() -> Iterator[SlurmCluster]:
    root = Path(tempfile.mkdtemp(prefix="odrun-slurm-", dir="/var/tmp"))
    slurm = SlurmCluster(root)
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()
        shutil.rmtree(root, ignore_errors=True)
