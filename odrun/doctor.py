"""``odrun doctor``: check what this machine offers odrun, and say what to fix.

Each check is ok, warn or fail. Only *required* checks can fail, and only
they make ``odrun doctor`` exit non-zero: a writable cache folder (odrun cannot
fetch without one) and the CVMFS repositories asked for with ``--cvmfs``.
Everything else (container runtimes, CVMFS repositories not asked for, the
XRootD client, proxies, free space, Snakemake, yadage) has a fallback or matters only
to some analyses, so it warns.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from odrun import cvmfs
from odrun.records.cache import ensure_writable
from odrun.settings import Settings, environment_value
from odrun.workflow import runtime

Status = Literal["ok", "warn", "fail"]
#: the CVMFS client's local settings, and where its cache lives unless they say otherwise
CVMFS_LOCAL = Path("/etc/cvmfs/default.local")
CVMFS_CACHE_BASE = Path("/var/lib/cvmfs")
#: below this much free space in the cache folder: a warning
LOW_SPACE = 5 * 1024**3
_TIMEOUT = 20
_RUNTIME_FIX = {
    "podman": 'run `podman info` to see why (on hybrid cgroups set runtime = "runc" in '
    "/etc/containers/containers.conf)",
    "docker": "start the daemon (systemctl start docker) or point DOCKER_HOST at one; "
    "check with `docker info`",
    "apptainer": "reinstall apptainer; check with `apptainer --version`",
}


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, its state, what was seen, and how to fix it."""

    area: str
    name: str
    status: Status
    detail: str
    fix: str | None = None
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """False only when a required check failed."""
        return not any(c.status == "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "cvmfs_root": str(cvmfs.root()),
            "checks": [c.to_dict() for c in self.checks],
        }


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, f"{type(exc).__name__}: {exc}"
    out = (proc.stdout + proc.stderr).strip()
    return proc.returncode, out


def _last_line(text: str) -> str:
    return (text.splitlines() or ["no output"])[-1][:200]


def check_runtimes() -> list[Check]:
    """podman, docker, apptainer: installed, and their engine answering."""
    checks = []
    probes = {
        "podman": ["info", "--format", "{{.Host.OCIRuntime.Name}}"],
        "docker": ["info", "--format", "{{.ServerVersion}}"],
        "apptainer": ["--version"],
    }
    for name, args in probes.items():
        exe = runtime.executable(name)
        if exe is None:
            continue
        code, out = _run([exe, *args])
        if code == 0:
            checks.append(Check("runtime", name, "ok", f"{exe}: {_last_line(out)}"))
        else:
            checks.append(
                Check(
                    "runtime",
                    name,
                    "warn",
                    f"{exe} is installed but does not work: {_last_line(out)}",
                    _RUNTIME_FIX[name],
                )
            )
    if not checks:
        checks.append(
            Check(
                "runtime",
                "container runtime",
                "warn",
                "no podman, docker or apptainer: steps run on the host, ignoring their images",
                "install podman (apt-get install podman / dnf install podman), or use the "
                "odrun appliance (vagrant up)",
            )
        )
    return checks


def check_cvmfs(repos: list[str], required: bool) -> list[Check]:
    """Each repository: present under the CVMFS root, and its revision where it says."""
    checks = []
    base = cvmfs.root()
    for name in repos:
        state = cvmfs.probe(name, base)
        if not state.present:
            checks.append(
                Check(
                    "cvmfs",
                    name,
                    "fail" if required else "warn",
                    f"{state.path} is not mounted",
                    "install the CVMFS client with CVMFS_REPOSITORIES including it and run "
                    "`cvmfs_config probe`, or use the odrun appliance (vagrant up)",
                    required,
                )
            )
            continue
        revision = state.revision or "unknown"
        root_hash = state.root_hash or "unknown"
        kind = "mount point" if state.mountpoint else "folder, not a mount point"
        checks.append(
            Check(
                "cvmfs",
                name,
                "ok",
                f"{state.path} ({kind}): revision {revision}, root hash {root_hash}",
                None,
                required,
            )
        )
    return checks


def check_xrootd() -> Check:
    bindings = importlib.util.find_spec("XRootD") is not None
    xrdcp = shutil.which("xrdcp")
    if bindings or xrdcp:
        have = ", ".join(x for x in ("python bindings" if bindings else "", xrdcp or "") if x)
        return Check("xrootd", "XRootD client", "ok", f"root:// through {have}")
    return Check(
        "xrootd",
        "XRootD client",
        "warn",
        "no XRootD python bindings and no xrdcp: root:// files are fetched over HTTPS",
        "pip install 'odrun[xrootd]' (or apt-get install xrootd-client)",
    )


def _cvmfs_local(name: str, path: Path = CVMFS_LOCAL) -> str | None:
    """The value of ``name`` in the CVMFS client's local settings, None if unset/unreadable."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip().strip("\"'")
    return None


def _cvmfs_local_proxy() -> str | None:
    return _cvmfs_local("CVMFS_HTTP_PROXY")


def check_cvmfs_quota(config: Path = CVMFS_LOCAL) -> Check | None:
    """CVMFS_QUOTA_LIMIT against the free space of the cache partition (None: no quota set)."""
    quota = _cvmfs_local("CVMFS_QUOTA_LIMIT", config)
    if quota is None or not quota.isdigit():
        return None
    base = Path(_cvmfs_local("CVMFS_CACHE_BASE", config) or CVMFS_CACHE_BASE)
    probe = base
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return None
    detail = f"CVMFS_QUOTA_LIMIT={quota} MB, {usage.free // 2**20} MB free on {probe}"
    # what the cache holds already counts as room (summed only when it matters)
    if int(quota) > usage.free // 2**20 and int(quota) > (usage.free + _tree_size(base)) // 2**20:
        return Check(
            "cvmfs",
            "cache quota",
            "warn",
            detail + ": the CVMFS cache can fill the disk",
            f"lower CVMFS_QUOTA_LIMIT in {config} (then cvmfs_config reload) or grow the disk",
        )
    return Check("cvmfs", "cache quota", "ok", detail)


def _tree_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def check_proxies() -> list[Check]:
    """The HTTP proxies odrun (http_proxy, https_proxy) and CVMFS (CVMFS_HTTP_PROXY) use."""
    checks = []
    for var in ("https_proxy", "http_proxy"):
        value = environment_value(var, var.upper())
        if not value:
            checks.append(Check("proxy", var, "ok", "not set: direct connections"))
        elif "://" not in value:
            checks.append(
                Check(
                    "proxy",
                    var,
                    "warn",
                    f"{var}={value!r} has no scheme",
                    f"write it as http://host:port ({var}=http://{value})",
                )
            )
        else:
            checks.append(Check("proxy", var, "ok", value))
    value = environment_value("CVMFS_HTTP_PROXY")
    source = "environment"
    if value is None:
        value, source = _cvmfs_local_proxy(), "/etc/cvmfs/default.local"
    if value is None:
        checks.append(
            Check("proxy", "CVMFS_HTTP_PROXY", "ok", "not set (CVMFS client profile decides)")
        )
    else:
        checks.append(Check("proxy", "CVMFS_HTTP_PROXY", "ok", f"{value or 'empty'} ({source})"))
    return checks


def check_cache(settings: Settings) -> Check:
    """The cache folder: writable (required), with free space (a warning when low)."""
    folder = Path(settings.cache_dir)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        ensure_writable(folder)
    except OSError as exc:
        return Check(
            "disk",
            "cache",
            "fail",
            f"cannot write to the cache folder {folder}: {exc.strerror or exc}",
            "set ODRUN_CACHE_DIR (or cache_dir in the config file) to a writable folder",
            True,
        )
    free = shutil.disk_usage(folder).free
    detail = f"{folder}: {free / 1024**3:.1f} GiB free"
    if free < LOW_SPACE:
        return Check(
            "disk",
            "cache",
            "warn",
            detail,
            "free space (odrun cache gc --max-size SIZE) or move ODRUN_CACHE_DIR to a larger disk",
            True,
        )
    return Check("disk", "cache", "ok", detail, None, True)


def check_snakemake() -> Check:
    exe = shutil.which("snakemake")
    if exe is None:
        return Check(
            "workflow",
            "snakemake",
            "warn",
            "not installed: workflow.type snakemake cannot run",
            "pip install 'odrun[snakemake]'",
        )
    code, out = _run([exe, "--version"])
    if code != 0:
        return Check(
            "workflow",
            "snakemake",
            "warn",
            f"{exe} does not run: {_last_line(out)}",
            "reinstall it: pip install --force-reinstall 'odrun[snakemake]'",
        )
    return Check("workflow", "snakemake", "ok", f"{exe} {_last_line(out)}")


def check_yadage(settings: Settings) -> Check:
    """yadage's own Python (setting yadage_python) and its yadage and packtivity."""
    from odrun.errors import ConfigError  # noqa: PLC0415
    from odrun.workflow.yadage import yadage_python  # noqa: PLC0415

    try:
        python = yadage_python(settings)
    except ConfigError as exc:
        return Check("workflow", "yadage", "warn", exc.message, exc.hint)
    probe = "from importlib.metadata import version as v; print(v('yadage'), v('packtivity'))"
    code, out = _run([python, "-I", "-c", probe])
    if code != 0:
        return Check(
            "workflow",
            "yadage",
            "warn",
            f"{python} cannot load yadage: {_last_line(out)}",
            "reinstall yadage and packtivity into it (docs/running.md, yadage workflows)",
        )
    yadage, _, packtivity = _last_line(out).partition(" ")
    return Check("workflow", "yadage", "ok", f"{python}: yadage {yadage}, packtivity {packtivity}")


def mounted_repos() -> list[str]:
    """The repositories mounted under the CVMFS root now (autofs lists only mounted ones)."""
    try:
        entries = sorted(os.scandir(cvmfs.root()), key=lambda e: e.name)
    except OSError:
        return []
    return [e.name for e in entries if "." in e.name and e.is_dir()]


def diagnose(settings: Settings, cvmfs_repos: list[str] | None = None) -> Report:
    """Run every check. ``cvmfs_repos`` given: those repositories are required."""
    required = cvmfs_repos is not None
    repos = [cvmfs.check_repo_name(r) for r in cvmfs_repos or []]
    if not required:
        repos = list(cvmfs.OPEN_DATA_REPOS)
    repos += [r for r in mounted_repos() if r not in repos]
    checks: list[Check] = [
        *check_runtimes(),
        *check_cvmfs(repos, required),
        *filter(None, [check_cvmfs_quota()]),
        check_xrootd(),
        *check_proxies(),
        check_cache(settings),
        check_snakemake(),
        check_yadage(settings),
    ]
    return Report(tuple(checks))
