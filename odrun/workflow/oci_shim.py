"""The ``podman``/``docker`` command cwltool runs, checked by odrun on its way to the runtime.

For ``odrun run --runtime podman|docker`` of a CWL workflow odrun puts a script
named ``podman`` (or ``docker``) first on cwltool's PATH that runs this file. It
passes every command through to the real runtime, except ``run`` (a job), which it
adjusts so that every job is confined as odrun's own container steps are:

- ``--network=none`` unless odrun.yaml says ``network: true``: any ``--net``/``--network``
  cwltool chose (a tool's ``NetworkAccess``) is replaced; with ``network: true`` cwltool's
  choice stands (``--net=none`` for tools without ``NetworkAccess``, as CWL says);
- ``run`` options other than those cwltool writes (``--privileged``, ``--pid=host``,
  ``--cap-add`` ...) are refused;
- commands other than ``run``, ``inspect``, ``images``, ``stats``, ``kill``, ``stop``, ``rm``
  (and the version) are refused: a ``build``, ``load``, ``import`` or ``pull`` would change
  the image store, with the network;
- ``--userns=keep-id`` dropped when podman runs as root (rootful podman refuses it; the
  job still runs as ``--user=<uid>:<gid>`` as cwltool asks);
- ``--security-opt=label=disable`` and the CVMFS repositories bound read-only (``-v``);
- the image appended to RECORD (the images the jobs really ran in, for the lock), and the
  command as run (a JSON list per line) to ``commands.log`` beside it (what ``--network``
  each job really got);
- once the job ends, what it left in its read-write binds is checked before cwltool reads
  it on the host (:mod:`odrun.workflow.job_leftovers`): a link leading out of the folder,
  a device or a FIFO is removed and the job fails.

Standard library only: it runs for every job, so it starts fast.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from types import ModuleType
from typing import NoReturn

#: the commands cwltool may give (no build, load, import, pull: the preflight has the images)
ALLOWED = frozenset({"run", "inspect", "image", "images", "stats", "version", "info", "kill"})
ALLOWED |= {"stop", "rm"}

#: the ``run`` options cwltool writes (cwltool/docker.py); any other is refused
RUN_OPTIONS = frozenset(
    {"-i", "--mount", "--workdir", "--read-only", "--user", "--rm", "--cidfile", "--env"}
    | {"--net", "--network", "--log-driver", "--userns", "--memory", "--cpus", "--gpus"}
    | {"--shm-size"}
)

#: podman/docker run options cwltool gives that decide the network
_NET = ("--net", "--network")


def adjust_run(args: list[str], network: bool, binds: list[str], root: bool) -> list[str]:
    """The options of ``<runtime> run ARGS`` as odrun allows them (see the module)."""
    out: list[str] = ["--security-opt=label=disable"]
    for bind in binds:
        out += ["-v", bind]
    rest = list(args)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        name = option.split("=", 1)[0]
        if name in _NET and not network:
            if "=" not in option and rest:
                rest.pop(0)  # --net VALUE
            continue
        if option == "--userns=keep-id" and root:
            continue
        out.append(option)
    if not network:
        out.append("--network=none")
    return out + rest


def unknown_options(args: list[str]) -> str | None:
    """The first option of ``run ARGS`` (before the image) cwltool never gives, if any."""
    for option in args:
        if not option.startswith("-"):
            return None
        if option.split("=", 1)[0] not in RUN_OPTIONS:
            return option
    return None


def writable_binds(args: list[str]) -> list[str]:
    """The host folders ``run ARGS`` binds read-write (``--mount=type=bind,...``, ``-v``)."""
    leftovers = _leftovers()
    found: list[str] = []
    rest = list(args)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        name, _, value = option.partition("=")
        if name in ("--mount", "-v", "--volume") and not value and rest:
            value = rest.pop(0)
        parse = leftovers.mount_source if name == "--mount" else leftovers.volume_source
        bind = parse(value) if name in ("--mount", "-v", "--volume") else None
        if bind and bind[1]:
            found.append(bind[0])
    return found


def _leftovers() -> ModuleType:
    """:mod:`odrun.workflow.job_leftovers`, loaded by its path (this runs as a script)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "job_leftovers.py")
    spec = importlib.util.spec_from_file_location("odrun_job_leftovers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_checked(runtime: str, args: list[str], writable: list[str], image: str) -> int:
    """``<runtime> run ...`` to its end, then what it left in ``writable`` checked."""
    proc = subprocess.Popen([runtime, *args])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: proc.send_signal(number))
    code = proc.wait()
    leftovers = _leftovers()
    removed = [line for folder in writable for line in leftovers.remove_escapes(folder)]
    if removed:
        print(leftovers.report(f"in {image}", removed), file=sys.stderr)
        return int(leftovers.ESCAPED)
    return code


def image_of(args: list[str]) -> str | None:
    """The image of ``run ARGS`` (cwltool writes every option as ``--name=value``)."""
    return next((a for a in args if not a.startswith("-")), None)


def main(argv: list[str]) -> int:  # noqa: RET503 (ends in _exec, which never returns)
    """``oci_shim.py RUNTIME RECORD NETWORK [BIND ...] -- <runtime arguments>``."""
    if "--" not in argv or argv.index("--") < 3:
        print("usage: oci_shim.py RUNTIME RECORD NETWORK [BIND ...] -- ARGS", file=sys.stderr)
        return 2
    cut = argv.index("--")
    runtime, record, network = argv[0], argv[1], argv[2] == "1"
    binds, args = argv[3:cut], argv[cut + 1 :]
    if args and not args[0].startswith("-") and args[0] not in ALLOWED:
        print(f"odrun: '{os.path.basename(runtime)} {args[0]}' is not allowed for a CWL job "
              "(odrun's preflight has the images)", file=sys.stderr)  # fmt: skip
        return 125
    if args and args[0] == "run":
        unknown = unknown_options(args[1:])
        if unknown:
            print(f"odrun: '{os.path.basename(runtime)} run {unknown}' is not an option cwltool "
                  "gives; the job is refused", file=sys.stderr)  # fmt: skip
            return 125
        root = os.path.basename(runtime) == "podman" and os.geteuid() == 0
        image = image_of(args[1:])
        writable = writable_binds(args[1:])
        options = adjust_run(args[1:], network, binds, root)
        if record and image:
            with open(record, "a", encoding="utf-8") as used:
                used.write(image + "\n")
        args = ["run", *options]
        if record:
            commands = os.path.join(os.path.dirname(record), "commands.log")
            with open(commands, "a", encoding="utf-8") as log:
                log.write(json.dumps([runtime, *args]) + "\n")
        return run_checked(runtime, args, writable, image or "?")
    _exec(runtime, args)


def _exec(runtime: str, args: list[str]) -> NoReturn:
    """The runtime in this process's place (its exit status is cwltool's to see)."""
    os.execv(runtime, [runtime, *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
