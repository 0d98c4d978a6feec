"""A local container image for the tests, built without any registry (none is reachable).

``debootstrap`` makes a minimal Debian bookworm root file system with bash and
python3 from Debian's package mirror; ``podman import`` turns it into
``localhost/odrun-test/debian-python:bookworm``. Built once per machine (the
image stays in podman's store), about a minute.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

IMAGE = "localhost/odrun-test/debian-python:bookworm"
#: the same with this machine's node (a CWL expression engine, as docker.io/library/node is)
NODE_IMAGE = "localhost/odrun-test/debian-node:bookworm"
MIRROR = "http://deb.debian.org/debian"


def unavailable_reason() -> str | None:
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tests/run installs podman and debootstrap)"
    return None


def _run(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def ensure_image() -> str | None:
    """Build the image if needed; return None when ready, else why it cannot be."""
    reason = unavailable_reason()
    if reason:
        return reason
    if _run("podman", "image", "exists", IMAGE).returncode != 0:
        with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
            rootfs = Path(tmp) / "rootfs"
            boot = _run(
                "debootstrap", "--variant=minbase", "--include=python3", "bookworm",
                str(rootfs), MIRROR, timeout=900,
            )  # fmt: skip
            if boot.returncode != 0:
                return f"debootstrap failed: {(boot.stderr or boot.stdout).strip()[-300:]}"
            with subprocess.Popen(
                ["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
            ) as tar:
                imported = subprocess.run(
                    ["podman", "import", "-", IMAGE], stdin=tar.stdout, capture_output=True,
                    text=True, timeout=600, check=False,
                )  # fmt: skip
            if imported.returncode != 0:
                return f"podman import failed: {imported.stderr.strip()[-300:]}"
    probe = _run("podman", "run", "--rm", "--network=none", IMAGE, "python3", "-c", "print(42)")
    if probe.returncode != 0 or probe.stdout.strip() != "42":
        return f"podman cannot run containers here: {probe.stderr.strip()[-300:]}"
    return None


def ensure_node_image() -> str | None:
    """:data:`NODE_IMAGE` (:data:`IMAGE` with the host's ``node`` copied in, no registry);
    None when ready, else why it cannot be."""
    reason = ensure_image()
    if reason:
        return reason
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        return "node is not installed (tests/run installs nodejs)"
    if _run("podman", "image", "exists", NODE_IMAGE).returncode != 0:
        made = _run("podman", "create", "--network=none", IMAGE, "true")
        if made.returncode != 0:
            return f"podman create failed: {made.stderr.strip()[-300:]}"
        box = made.stdout.strip()
        try:
            for argv in (
                ("podman", "cp", str(Path(node).resolve()), f"{box}:/usr/local/bin/node"),
                ("podman", "commit", "-q", box, NODE_IMAGE),
            ):
                step = _run(*argv)
                if step.returncode != 0:
                    return f"{' '.join(argv[:2])} failed: {step.stderr.strip()[-300:]}"
        finally:
            _run("podman", "rm", "-f", box)
    probe = _run("podman", "run", "--rm", "--network=none", NODE_IMAGE, "node", "-e", "1")
    if probe.returncode != 0:
        return f"node does not run in {NODE_IMAGE}: {probe.stderr.strip()[-300:]}"
    return None
