"""Where a step's command runs: the host, or a container (podman, docker, apptainer).

Containers get ``--network=none`` (``--network=host`` for a step odrun.yaml's
``network`` names), the workspace bind-mounted at the same
absolute path (so ``cd <workspace>`` means the same inside and out, as on
REANA), and ``/cvmfs/<repo>`` read-only for each repository the spec lists in
``workflow.resources.cvmfs`` (from ``$ODRUN_CVMFS_ROOT/<repo>`` when that is set).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from odrun import cvmfs as cvmfs_repos
from odrun.errors import ConfigError, UsageError, WorkflowError

CONTAINER_RUNTIMES = ("podman", "docker", "apptainer")
CVMFS_ROOT = Path("/cvmfs")


class Runtime(Protocol):
    name: str

    def prepare(self, image: str | None) -> None:
        """Make sure ``image`` can run; raise ConfigError saying how to get it if not."""
        ...

    def argv(
        self,
        image: str | None,
        workspace: Path,
        command: str,
        network: bool = False,
        readonly: Sequence[Path] = (),
    ) -> list[str]:
        """The process to start for one step command; ``network``: the step may use it;
        ``readonly``: files in the workspace the step may read but never change (a
        container binds each one read-only on top of the workspace)."""
        ...


@dataclass(frozen=True)
class Fallback:
    """``--runtime auto`` ran on the host instead of ``from_`` (a container runtime, or
    ``auto`` when none is installed), and why: recorded in run.json, the lock, the crate."""

    from_: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"from": self.from_, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: object) -> Fallback | None:
        if not isinstance(data, dict):
            return None
        return cls(str(data.get("from")), str(data.get("reason")))


def describe(name: str, fallback: Fallback | None) -> str:
    """``podman``, or ``host (fallback from podman: image X is not available ...)``."""
    return f"{name} (fallback from {fallback.from_}: {fallback.reason})" if fallback else name


def cvmfs_binds(repos: tuple[str, ...]) -> list[str]:
    """``SOURCE:/cvmfs/<repo>:ro`` for each repository (the source under $ODRUN_CVMFS_ROOT)."""
    return [f"{cvmfs_repos.root() / r}:{CVMFS_ROOT / r}:ro" for r in repos]


def readonly_bind(path: Path) -> str:
    """``PATH:PATH:ro``: a record file a step sees but cannot change (nor, through its
    hard link, the shared cache), even as root in the container."""
    text = str(path)
    if ":" in text or "," in text:
        raise UsageError(f"input file path {text} must not contain ':' or ','")
    return f"{text}:{text}:ro"


def _bash(workspace: Path, command: str) -> list[str]:
    import shlex  # noqa: PLC0415

    return ["bash", "-c", f"cd {shlex.quote(str(workspace))} && {command}"]


class HostRuntime:
    name = "host"

    def prepare(self, image: str | None) -> None:
        pass

    def argv(
        self,
        image: str | None,
        workspace: Path,
        command: str,
        network: bool = False,
        readonly: Sequence[Path] = (),
    ) -> list[str]:
        return _bash(workspace, command)


@dataclass
class OciRuntime:
    """podman or docker: the same command line."""

    name: str
    cvmfs: tuple[str, ...] = ()
    #: pull missing images (not with --offline, nor for --runtime auto)
    pull: bool = True

    @property
    def binary(self) -> str:
        exe = shutil.which(self.name)
        if exe is None:
            raise ConfigError(f"{self.name} is not installed", hint="use --runtime host or auto")
        return exe

    def prepare(self, image: str | None) -> None:
        if image is None:
            raise UsageError(
                f"a step has no 'environment' image to run in with {self.name}",
                hint="add one, or use --runtime host",
            )
        exists = subprocess.run(
            [self.binary, "image", "inspect", image],
            capture_output=True,
            text=True,
            check=False,
        )
        if exists.returncode == 0:
            return
        if self.name == "docker" and "daemon running" in exists.stderr:
            raise ConfigError(
                f"the docker daemon is not answering: {exists.stderr.strip().splitlines()[-1]}",
                hint="start it (systemctl start docker) or point DOCKER_HOST at one; "
                "check with `docker info`",
            )
        if not self.pull:
            raise ConfigError(
                f"image {image} is not available to {self.name} (not in its local store; "
                "--offline and --runtime auto never pull)",
                hint=f"{self.name} pull {image}, build or load it, or run with --runtime "
                f"{self.name} (which pulls it)",
            )
        pulled = subprocess.run(
            [self.binary, "pull", "-q", image], capture_output=True, text=True, check=False
        )
        if pulled.returncode != 0:
            last = (pulled.stderr.strip().splitlines() or ["pull failed"])[-1]
            raise ConfigError(
                f"image {image} is not available to {self.name} and cannot be pulled: {last}",
                hint=f"build or load it ({self.name} load -i FILE), or run with --runtime host",
            )

    def digest(self, image: str) -> str | None:
        """The image's content digest (``sha256:...``), for the lock file: podman's manifest
        digest; docker has none for a loaded or built image, so its image ID (the digest of
        the image's configuration, which names every layer's digest)."""
        field = "{{.Digest}}" if self.name == "podman" else "{{.Id}}"
        out = subprocess.run(
            [self.binary, "image", "inspect", "--format", field, image],
            capture_output=True,
            text=True,
            check=False,
        )
        value = out.stdout.strip()
        return value if out.returncode == 0 and value.startswith("sha256:") else None

    def argv(
        self,
        image: str | None,
        workspace: Path,
        command: str,
        network: bool = False,
        readonly: Sequence[Path] = (),
    ) -> list[str]:
        if ":" in str(workspace) or "," in str(workspace):
            raise UsageError(f"workspace path {workspace} must not contain ':' or ','")
        net = "--network=host" if network else "--network=none"
        argv = [self.binary, "run", "--rm", net, "--security-opt", "label=disable"]
        argv += ["-v", f"{workspace}:{workspace}"]
        argv += [arg for path in readonly for arg in ("-v", readonly_bind(path))]
        for bind in cvmfs_binds(self.cvmfs):
            argv += ["-v", bind]
        return [*argv, "-w", str(workspace), str(image), *_bash(workspace, command)]


@dataclass
class ApptainerRuntime:
    cvmfs: tuple[str, ...] = ()
    name: str = "apptainer"

    def prepare(self, image: str | None) -> None:
        if executable("apptainer") is None:
            raise ConfigError("apptainer is not installed", hint="use --runtime host or auto")
        if image is None:
            raise UsageError("a step has no 'environment' image", hint="use --runtime host")

    def argv(
        self,
        image: str | None,
        workspace: Path,
        command: str,
        network: bool = False,
        readonly: Sequence[Path] = (),
    ) -> list[str]:
        exe = executable("apptainer") or "apptainer"
        ro = [readonly_bind(path) for path in readonly]
        binds = ",".join([str(workspace), *ro, *cvmfs_binds(self.cvmfs)])
        isolate = [] if network else ["--net", "--network", "none"]
        options = ["--containall", *isolate, "--bind", binds]
        bash = _bash(workspace, command)
        return [exe, "exec", *options, "--pwd", str(workspace), f"docker://{image}", *bash]


def check_cvmfs(repos: list[str]) -> tuple[str, ...]:
    """The repositories to bind, each verified to be mounted here."""
    for repo in repos:
        cvmfs_repos.check_repo_name(repo)
    missing = [r for r in repos if not cvmfs_repos.probe(r).present]
    if missing:
        raise ConfigError(
            f"the analysis needs CVMFS repositories not mounted here: "
            f"{', '.join(str(cvmfs_repos.root() / r) for r in missing)}",
            hint="mount them (cvmfs_config probe), use the odrun appliance, or submit to REANA",
        )
    return tuple(repos)


def executable(name: str) -> str | None:
    """Where container runtime ``name`` is installed (apptainer may be called singularity)."""
    return shutil.which(name) or (shutil.which("singularity") if name == "apptainer" else None)


def installed_container_runtimes() -> list[str]:
    """The container runtimes installed here, in the order ``--runtime auto`` tries them."""
    return [name for name in CONTAINER_RUNTIMES if executable(name)]


def installed_container_runtime() -> str | None:
    return next(iter(installed_container_runtimes()), None)


def now() -> str:
    """The time now, UTC, to the second (ISO 8601): when a step started or ended."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Finished:
    """How an engine's process ended (:func:`run_logged`)."""

    code: int
    started: str
    ended: str


def run_logged(
    argv: Sequence[str],
    log: Path,
    cwd: Path,
    env: Mapping[str, str],
    *,
    what: str,
    program: str | None = None,
    stdin: bytes | None = None,
    stdout: Path | None = None,
    timeout: float | None = None,
) -> Finished:
    """Run an engine's process (a step's command, Snakemake, cwltool, yadage) to its end in
    ``cwd`` with ``env``: its output goes to ``log`` (stdout and stderr, or stderr only when
    ``stdout`` names a file of its own), its stdin is ``stdin`` or nothing. WorkflowError
    ``<what>: cannot start <program>: ...`` when it cannot start (``program``: ``argv[0]``
    unless given), ``<what>: still running after N s`` (killed) past ``timeout``."""
    started = now()
    try:
        with contextlib.ExitStack() as files:
            err = files.enter_context(log.open("wb"))
            out = files.enter_context(stdout.open("wb")) if stdout is not None else err
            proc = subprocess.run(
                list(argv),
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
                stdout=out,
                stderr=err if stdout is not None else subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                timeout=timeout,
                check=False,
            )
    except OSError as exc:
        raise WorkflowError(f"{what}: cannot start {program or argv[0]}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise WorkflowError(
            f"{what}: still running after {timeout:g} s; stopped", hint=f"log: {log}"
        ) from None
    return Finished(proc.returncode, started, now())


def make_runtime(name: str, cvmfs: tuple[str, ...] = (), pull: bool = True) -> Runtime:
    if name == "host":
        return HostRuntime()
    if name in ("podman", "docker"):
        return OciRuntime(name, cvmfs, pull)
    if name == "apptainer":
        return ApptainerRuntime(cvmfs)
    raise UsageError(f"--runtime {name!r}: expected auto, podman, docker, apptainer or host")
