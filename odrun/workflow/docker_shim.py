"""The ``docker`` command line packtivity speaks, carried out by podman, docker or the host.

yadage runs each job of a ``docker-encapsulated`` environment through packtivity,
which shells out to ``docker``. For ``workflow.type: yadage`` odrun puts a script
named ``docker`` first on yadage's PATH that runs this file, which understands the
two commands packtivity uses:

- ``pull IMAGE``: checks the image is in the runtime's store (odrun's preflight has
  pulled it already; the host needs no image);
- ``run --rm [-i] [-t] [--cidfile F] [-w DIR] [-e K=V] [-v SRC:DST[:MODE]]... IMAGE
  ARGV...``: with podman or docker, ``<runtime> run --rm --network=none`` (``host``
  when odrun.yaml says ``network: true``), every ``-v`` (packtivity binds each job's
  folders at the same path), the analysis's record files read-only on top, then
  the image and command; with the host runtime, the command itself in the job's
  folder (every bind must then be at its own path).

In a container, what the job left in its read-write binds is checked before yadage reads
it on the host (publishers) or binds it into the next job
(:mod:`odrun.workflow.job_leftovers`): a link leading out of the folder, a device or a
FIFO is removed and the job fails (exit 125).

Each job's output goes to packtivity (its log) and to ``LOGDIR/<job>.log``; one JSON
line per job (name, image, command, exit code, times, log) is appended to RECORD,
so odrun can name the failing job, its command and its error. Anything else fails
with a one-line message. Standard library only: it runs once per job, so it starts fast.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import BinaryIO

#: docker run options packtivity passes that take a value, and those that are flags
VALUE_OPTIONS = {"--cidfile", "-w", "--workdir", "-e", "--env", "-v", "--volume"}
FLAG_OPTIONS = {"--rm", "-i", "--interactive", "-t", "--tty"}
HOST = "host"
CVMFS = "/cvmfs"


class ShimError(Exception):
    """A request this shim cannot carry out; printed as one line, exit 125 (docker's)."""


@dataclass
class Job:
    image: str
    argv: list[str]
    cidfile: str = ""
    workdir: str = ""
    env: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    stdin: bool = False

    @property
    def name(self) -> str:
        base = os.path.basename(self.cidfile)
        return base[: -len(".cid")] if base.endswith(".cid") else base or "job"


def parse_run(args: list[str]) -> Job:
    values: dict[str, list[str]] = {}
    flags: set[str] = set()
    while args and args[0].startswith("-"):
        option, _, inline = args[0].partition("=")
        if option in VALUE_OPTIONS:
            if inline:
                value, args = inline, args[1:]
            elif len(args) > 1:
                value, args = args[1], args[2:]
            else:
                raise ShimError(f"docker run {option} needs a value")
            values.setdefault(option, []).append(value)
        elif option in FLAG_OPTIONS and not inline:
            flags.add(option)
            args = args[1:]
        else:
            raise ShimError(f"docker run option {args[0]} is not supported by odrun's shim")
    if not args:
        raise ShimError("docker run needs an image")
    return Job(
        image=args[0],
        argv=args[1:],
        cidfile=(values.get("--cidfile") or [""])[-1],
        workdir=(values.get("-w") or values.get("--workdir") or [""])[-1],
        env=values.get("-e", []) + values.get("--env", []),
        volumes=values.get("-v", []) + values.get("--volume", []),
        stdin=bool(flags & {"-i", "--interactive"}),
    )


@dataclass
class Shim:
    runtime: str  # path of podman or docker, or "host"
    record: str  # JSON lines, one per job
    logdir: str
    readonly: list[str] = field(default_factory=list)  # files bound read-only on top
    network: bool = False
    #: the folders a job may be given (the workspace); CVMFS too, read-only
    roots: list[str] = field(default_factory=list)

    def main(self, args: list[str]) -> int:
        if not args or args[0] in ("--version", "version"):
            print(f"Docker version 0.0.0+odrun.{os.path.basename(self.runtime)}")
            return 0
        if args[0] == "pull" and len(args) == 2:
            return self.pull(args[1])
        if args[0] == "run":
            return self.run(parse_run(args[1:]))
        raise ShimError(f"'docker {' '.join(args[:2])}' is not supported by odrun's shim")

    def pull(self, image: str) -> int:
        if self.runtime == HOST:
            return 0
        probe = [self.runtime, "image", "inspect", image]
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            raise ShimError(f"image {image} is not in {os.path.basename(self.runtime)}'s store")
        return 0

    def check_binds(self, job: Job) -> None:
        """ShimError unless every ``-v`` binds a host folder inside a root (after links),
        or under /cvmfs read-only: packtivity writes a workflow's ``workdir`` and
        ``par_mounts`` paths unquoted into its command line, so a space in one adds a
        ``-v`` of the workflow's choosing (``-w /x -v /:/host``)."""
        roots = [os.path.realpath(r) for r in self.roots]
        for volume in job.volumes:
            src, _, rest = volume.partition(":")
            mode = rest.partition(":")[2].split(",")
            real = os.path.realpath(src) if os.path.isabs(src) else None
            ok = real is not None and any(_inside(real, r) for r in roots)
            if real is not None and _inside(real, CVMFS) and "ro" in mode:
                ok = True
            if not ok:
                raise ShimError(
                    f"job {job.name} binds {volume}: {src} is outside the workspace "
                    "(a job gets only its workspace folders, and CVMFS read-only)"
                )

    def argv(self, job: Job) -> tuple[list[str], str | None]:
        """The process to start, and the folder to start it in (host)."""
        self.check_binds(job)
        if self.runtime == HOST:
            for volume in job.volumes:
                src, _, rest = volume.partition(":")
                if rest.partition(":")[0] not in ("", src):
                    raise ShimError(
                        f"job {job.name} binds {volume}: on the host every folder stays at "
                        "its own path; run it in a container (--runtime podman or docker)"
                    )
            where = job.workdir or (job.volumes[0].split(":")[0] if job.volumes else None)
            return ["env", *job.env, *job.argv], where
        net = "--network=host" if self.network else "--network=none"
        argv = [self.runtime, "run", "--rm", net, "--security-opt", "label=disable"]
        argv += ["-i"] if job.stdin else []
        argv += ["--cidfile", job.cidfile] if job.cidfile else []
        argv += ["-w", job.workdir] if job.workdir else []
        for pair in job.env:
            argv += ["-e", pair]
        for volume in job.volumes:
            argv += ["-v", volume]
        for path in self.readonly:
            argv += ["-v", f"{path}:{path}:ro"]
        return [*argv, job.image, *job.argv], None

    def run(self, job: Job) -> int:
        script = sys.stdin.buffer.read() if job.stdin else b""
        started = now()
        log_path = os.path.join(self.logdir, f"{job.name}.log")
        with open(log_path, "ab") as log:
            try:
                code = self._start(job, script, log)
                if self.runtime != HOST:
                    code = self._leftovers(job, log) or code
            except ShimError as exc:  # recorded as the job's failure, then reported
                log.write(f"odrun docker shim: {exc}\n".encode())
                code = 125
        command = script.decode(errors="replace").strip() or " ".join(job.argv)
        entry = {
            "name": job.name,
            "image": job.image,
            "command": command,
            "exit_code": code,
            "started": started,
            "ended": now(),
            "log": log_path,
        }
        with open(self.record, "a", encoding="utf-8") as record:
            record.write(json.dumps(entry, sort_keys=True) + "\n")
        return code

    def _leftovers(self, job: Job, log: BinaryIO) -> int:
        """0, or the exit code of a job that left a link out of its read-write binds, a
        device or a FIFO there (removed; said in its log and on stdout)."""
        checks = _job_leftovers()
        binds = [checks.volume_source(v) for v in job.volumes]
        writable = [b[0] for b in binds if b and b[1]]
        removed = [line for folder in writable for line in checks.remove_escapes(folder)]
        if not removed:
            return 0
        line = checks.report(job.name, removed) + "\n"
        log.write(line.encode())
        sys.stdout.write(line)
        sys.stdout.flush()
        return int(checks.ESCAPED)

    def _start(self, job: Job, script: bytes, log: BinaryIO) -> int:
        argv, cwd = self.argv(job)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.PIPE if job.stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise ShimError(f"job {job.name}: cannot start {argv[0]}: {exc}") from None
        if proc.stdin is not None:
            proc.stdin.write(script)
            proc.stdin.close()
        assert proc.stdout is not None
        with proc.stdout:
            for line in iter(proc.stdout.readline, b""):
                log.write(line)
                sys.stdout.buffer.write(line)
        sys.stdout.flush()
        return proc.wait()


def _job_leftovers() -> ModuleType:
    """:mod:`odrun.workflow.job_leftovers`, loaded by its path (this runs with ``-I``)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "job_leftovers.py")
    spec = importlib.util.spec_from_file_location("odrun_job_leftovers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def main(argv: list[str]) -> int:
    """``docker_shim.py RUNTIME RECORD LOGDIR READONLY NETWORK ROOT -- <docker arguments>``
    (READONLY: a file listing the paths to bind read-only, one a line; may be empty; ROOT:
    the workspace, the only folder whose subfolders a job may be given)."""
    if len(argv) < 7 or argv[6] != "--":
        print(
            "usage: docker_shim.py RUNTIME RECORD LOGDIR READONLY NETWORK ROOT -- ARGS",
            file=sys.stderr,
        )
        return 2
    readonly: list[str] = []
    if argv[3]:
        with open(argv[3], encoding="utf-8") as listed:
            readonly = [line for line in listed.read().splitlines() if line]
    shim = Shim(argv[0], argv[1], argv[2], readonly, network=argv[4] == "1", roots=[argv[5]])
    try:
        return shim.main(argv[7:])
    except ShimError as exc:
        print(f"odrun docker shim: {exc}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
