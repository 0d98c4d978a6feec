"""The ``podman``/``docker`` command cwltool runs, checked by odrun on its way to the runtime.

For ``odrun run --runtime podman|docker`` of a CWL workflow odrun puts a script
named ``podman`` (or ``docker``) first on cwltool's PATH that runs this file. It
passes every command through to the real runtime, except ``run`` (a job), which it
adjusts so that every job is confined as odrun's own container steps are:

- ``--network=none`` unless odrun.yaml says ``network: true``: any ``--net``/``--network``
  cwltool chose (a tool's ``NetworkAccess``) is replaced; with ``network: true`` cwltool's
  choice stands (``--net=none`` for tools without ``NetworkAccess``, as CWL says);
- ``--userns=keep-id`` dropped when podman runs as root (rootful podman refuses it; the
  job still runs as ``--user=<uid>:<gid>`` as cwltool asks);
- ``--security-opt=label=disable`` and the CVMFS repositories bound read-only (``-v``);
- the image appended to RECORD (the images the jobs really ran in, for the lock), and the
  command as run (a JSON list per line) to ``commands.log`` beside it (what ``--network``
  each job really got).

Standard library only: it runs for every job, so it starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

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
    if args and args[0] == "run":
        root = os.path.basename(runtime) == "podman" and os.geteuid() == 0
        image = image_of(args[1:])
        options = adjust_run(args[1:], network, binds, root)
        if record and image:
            with open(record, "a", encoding="utf-8") as used:
                used.write(image + "\n")
        args = ["run", *options]
        if record:
            commands = os.path.join(os.path.dirname(record), "commands.log")
            with open(commands, "a", encoding="utf-8") as log:
                log.write(json.dumps([runtime, *args]) + "\n")
    _exec(runtime, args)


def _exec(runtime: str, args: list[str]) -> NoReturn:
    """The runtime in this process's place (its exit status is cwltool's to see)."""
    os.execv(runtime, [runtime, *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
