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
