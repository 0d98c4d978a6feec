"""The ``apptainer`` command line Snakemake speaks, carried out by podman or docker.

Snakemake 9 runs rule ``container:`` images only through apptainer
(``--sdm apptainer``). For ``odrun run --runtime podman|docker`` odrun puts a
script named ``apptainer`` first on Snakemake's PATH that runs this file, which
understands the three commands Snakemake uses:

- ``--version``: answers ``apptainer version 1.0.0+odrun.<runtime>``, so the
  run log shows who really ran the containers;
- ``pull --name FILE docker://IMAGE``: checks the image is in the runtime's
  store (pulls it unless offline) and writes FILE as a marker naming IMAGE;
- ``exec [options] FILE SHELL -c CMD``: ``<runtime> run --rm --network=none``
  (``--network=host`` when odrun.yaml says ``network: true``)
  with the working directory bind-mounted at the same path (apptainer's
  ``--home``), every ``--bind``, ``--pwd``, ``--env K=V``, and the
  ``APPTAINERENV_*`` / ``SINGULARITYENV_*`` variables, then the command;
  every record file (``record-files.json`` beside RECORD: paths and inodes as fetched) is
  bound read-only **wherever it is when this job starts** (:func:`record_binds`): an
  earlier job may have renamed the folder holding one (its hard link to the shared cache
  moves along), and Snakemake's own bind list was fixed when it started.

Anything else (other subcommands, non-``docker://`` images such as ``.sif``
files or ``oras://``) fails with a message saying to use real apptainer.
Standard library only: it runs once per job, so it starts fast.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field

MARKER = "odrun-oci-image"
VERSION = "apptainer version 1.0.0+odrun.{runtime}"
#: apptainer exec options taking a value, and those that are flags
VALUE_OPTIONS = {"--home", "--bind", "-B", "--pwd", "--network", "--env", "--mount"}
FLAG_OPTIONS = {"--containall", "--contain", "--cleanenv", "--net", "--no-home", "-C", "-c", "-e"}
GLOBAL_FLAGS = {"--quiet", "--silent", "-q", "-s", "--debug", "-d", "--verbose", "-v"}


#: beside RECORD: the record files every job binds read-only (written by odrun.workflow.snakemake)
RECORD_FILES = "record-files.json"


class ShimError(Exception):
    """A request this shim cannot carry out; printed as one line, exit 255."""


@dataclass
class Shim:
    runtime: str  # path of podman or docker
    record: str = ""  # file to append each image run to (for the lock)
    offline: bool = False
    network: bool = False
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def runtime_name(self) -> str:
        return os.path.basename(self.runtime)

    def main(self, args: list[str]) -> int:
        while args and args[0] in GLOBAL_FLAGS:
            args = args[1:]
        if not args or args[0] in ("--version", "version"):
            print(VERSION.format(runtime=self.runtime_name))
            return 0
        command, rest = args[0], args[1:]
        if command == "pull":
            return self.pull(rest)
        if command == "exec":
            return self.exec(rest)
        raise ShimError(
            f"'apptainer {command}' is not supported by odrun's {self.runtime_name} shim"
        )

    def pull(self, args: list[str]) -> int:
        name, url = None, None
        while args:
            if args[0] == "--name" and len(args) > 1:
                name, args = args[1], args[2:]
            elif args[0].startswith("-"):
                args = args[1:]
            else:
                url, args = args[0], args[1:]
        if not name or not url:
            raise ShimError("apptainer pull needs --name FILE and an image")
        image = oci_image(url)
        if not self._has(image):
            if self.offline:
                raise ShimError(f"image {image} is not in {self.runtime_name}'s store (offline)")
            pulled = subprocess.run([self.runtime, "pull", "-q", image], check=False)
            if pulled.returncode != 0:
                raise ShimError(f"{self.runtime_name} cannot pull {image}")
        tmp = f"{name}.part"
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(f"{MARKER}\n{image}\n")
        os.replace(tmp, name)
        return 0

    def _has(self, image: str) -> bool:
        probe = [self.runtime, "image", "inspect", image]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0

    def exec(self, args: list[str]) -> int:
        home = os.getcwd()
        pwd = None
        binds: list[str] = []
        envs: list[str] = []  # --env K=V[,K=V]
        while args and args[0].startswith("-"):
            option = args[0]
            if option in VALUE_OPTIONS and len(args) > 1:
                value, args = args[1], args[2:]
                if option == "--home":
                    home = value.split(":", 1)[0]
                elif option in ("--bind", "-B"):
                    binds += [b for b in value.split(",") if b]
                elif option == "--pwd":
                    pwd = value
                elif option == "--env":
                    envs += [e for e in value.split(",") if "=" in e]
                elif option != "--network" or value != "none":
                    raise ShimError(f"apptainer exec {option} {value}: not supported by the shim")
            elif option in FLAG_OPTIONS:
                args = args[1:]
            else:
                raise ShimError(f"apptainer exec option {option} is not supported by the shim")
        if len(args) < 2:
            raise ShimError("apptainer exec needs an image and a command")
        image = read_marker(args[0])
        if self.record:
            with open(self.record, "a", encoding="utf-8") as log:
                log.write(image + "\n")
        net = "--network=host" if self.network else "--network=none"
        argv = [self.runtime, "run", "--rm", net, "--security-opt", "label=disable"]
        argv += ["-v", f"{home}:{home}", "-e", f"HOME={home}"]
        if self.record:
            binds += record_binds(os.path.join(os.path.dirname(self.record), RECORD_FILES))
        for bind in binds:
            argv += ["-v", volume(bind)]
        for key, value in sorted(self.env.items()):
            for prefix in ("APPTAINERENV_", "SINGULARITYENV_"):
                if key.startswith(prefix) and len(key) > len(prefix):
                    argv += ["-e", f"{key[len(prefix) :]}={value}"]
        for pair in envs:
            argv += ["-e", pair]
        argv += ["-w", pwd or os.getcwd(), image, *args[1:]]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode


def _inode(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a regular file that is not a link, else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def record_binds(listing: str) -> list[str]:
    """``PATH:PATH:ro`` for every record file of ``listing`` (JSON: ``workspace``, ``paths``,
    ``inodes`` as fetched) wherever it is now: at its path when that is still the fetched
    inode and no link leads there, else found again in the workspace (never into a linked
    folder). None when there is no listing (a run without record files)."""
    try:
        with open(listing, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ShimError(f"cannot read the record files to bind ({listing}): {exc}") from None
    wanted = {(int(d), int(i)) for d, i in doc.get("inodes", [])}
    found = [
        p for p in doc.get("paths", [])
        if _inode(p) in wanted and os.path.realpath(p) == os.path.abspath(p)
    ]  # fmt: skip
    if {_inode(p) for p in found} < wanted:
        for here, _dirs, files in os.walk(doc["workspace"]):  # never into a linked folder
            for name in files:
                path = os.path.join(here, name)
                if _inode(path) in wanted and path not in found:
                    found.append(path)
    for path in found:
        if ":" in path or "," in path:
            raise ShimError(f"record file {path} cannot be bound read-only (':' or ',' in it)")
    return [f"{p}:{p}:ro" for p in found]


def oci_image(url: str) -> str:
    """``docker://IMAGE`` -> ``IMAGE``; other image sources need real apptainer."""
    if url.startswith("docker://"):
        return url[len("docker://") :]
    raise ShimError(
        f"container image {url}: podman and docker run only docker:// images; "
        "use --runtime apptainer for this one"
    )


def read_marker(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as marker:
            lines = marker.read(4096).splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    if len(lines) < 2 or lines[0] != MARKER:
        raise ShimError(f"{path} is not an image odrun pulled (local .sif images need apptainer)")
    return lines[1]


def volume(bind: str) -> str:
    """An apptainer bind ``SRC[:DST[:ro|rw]]`` as a ``-v`` value."""
    parts = bind.split(":")
    src = parts[0]
    dst = parts[1] if len(parts) > 1 and parts[1] else src
    mode = f":{parts[2]}" if len(parts) > 2 and parts[2] in ("ro", "rw") else ""
    return f"{src}:{dst}{mode}"


def main(argv: list[str]) -> int:
    """``apptainer_shim.py RUNTIME RECORD OFFLINE NETWORK -- <apptainer arguments>``."""
    if len(argv) < 5 or argv[4] != "--":
        print("usage: apptainer_shim.py RUNTIME RECORD OFFLINE NETWORK -- ARGS", file=sys.stderr)
        return 2
    shim = Shim(argv[0], argv[1], offline=argv[2] == "1", network=argv[3] == "1")
    try:
        return shim.main(argv[5:])
    except ShimError as exc:
        print(f"odrun apptainer shim: {exc}", file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
