"""The RO-Crate community validator (``roc-validator``), in a venv of its own, working offline.

The validator needs the RO-Crate 1.1 JSON-LD context, which it fetches from w3id.org
(unreachable here). The genuine context ships inside the ``rocrate`` 0.9.0 wheel
(``rocrate/data/ro-crate.jsonld``); it is stored in the validator's HTTP cache under its
URL, and the validator runs with ``--offline`` against that cache. Built once per
machine under /var/tmp (about a minute), reused afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

VENV = Path("/var/tmp/odrun-rocrate-validator")
VALIDATOR = "roc-validator==0.13.0"
CONTEXT_WHEEL = "rocrate==0.9.0"  # its data/ro-crate.jsonld is the RO-Crate 1.1 context
CONTEXT_URL = "https://w3id.org/ro/crate/1.1/context"
CACHE = VENV / "http-cache"
READY = VENV / ".odrun-ready"

SEED = """
import io, sys, requests, urllib3
from requests_cache import CachedSession
cache, url, path = sys.argv[1:4]
body = open(path, "rb").read()
session = CachedSession(cache_name=cache, backend="sqlite", allowable_methods=("GET",),
                        expire_after=-1)
headers = {"Content-Type": "application/ld+json"}
resp = requests.Response()
resp.status_code, resp._content, resp.url, resp.encoding = 200, body, url, "utf-8"
resp.headers.update(headers)
resp.raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=200,
                                preload_content=False, request_url=url)
resp.request = requests.Request("GET", url).prepare()
session.cache.save_response(resp)
"""


def _run(*argv: str | Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def ensure() -> str | None:
    """Create the validator venv if needed; None when ready, else why it cannot be."""
    if READY.is_file():
        return None
    python = VENV / "bin" / "python"
    steps: list[tuple[str | Path, ...]] = [
        (sys.executable, "-m", "venv", VENV),
        (python, "-m", "pip", "install", "-q", "--disable-pip-version-check", VALIDATOR),
        (python, "-m", "pip", "download", "-q", "--no-deps", "-d", VENV / "wheels",
         CONTEXT_WHEEL),
    ]  # fmt: skip
    for argv in steps:
        done = _run(*argv)
        if done.returncode != 0:
            return f"{' '.join(map(str, argv[:4]))} failed: {done.stderr.strip()[-300:]}"
    wheel = next((VENV / "wheels").glob("rocrate-0.9.0-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        (VENV / "ro-crate-1.1.jsonld").write_bytes(zf.read("rocrate/data/ro-crate.jsonld"))
    seeded = _run(python, "-c", SEED, CACHE, CONTEXT_URL, VENV / "ro-crate-1.1.jsonld")
    if seeded.returncode != 0:
        return f"seeding the validator's cache failed: {seeded.stderr.strip()[-300:]}"
    READY.write_text("ok\n")
    return None


def validate(crate_dir: Path, profile: str, severity: str = "required") -> dict[str, Any]:
    """The validator's JSON report for ``crate_dir`` against ``profile``."""
    done = _run(
        VENV / "bin" / "rocrate-validator", "-y", "--disable-color", "validate", "--offline",
        "--cache-path", CACHE, "-p", profile, "-l", severity, "-f", "json", "--no-paging",
        crate_dir, timeout=300,
    )  # fmt: skip
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"rocrate-validator gave no JSON: {done.stderr[-500:]}") from None
    return report
