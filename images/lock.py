#!/usr/bin/env python3
"""Write images/catalog.lock.json from images/catalog.yaml: each image's base pinned by digest.

python3 images/lock.py                  # rewrite the lock; keep digests of unchanged bases
python3 images/lock.py --resolve        # ask the registries (skopeo, else podman pull)
python3 images/lock.py --resolve --only cvmfs   # only the bases of these images
python3 images/lock.py --pin BASE=sha256:...   # record a digest obtained elsewhere
python3 images/lock.py --check          # exit 1 if the lock does not match the catalog
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from odrun.environments import lock_document, read_catalog_document  # noqa: E402

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def resolve(base: str) -> tuple[str, str] | None:
    """The base's current digest from its registry, and how it was obtained."""
    today = datetime.date.today().isoformat()
    if shutil.which("skopeo"):
        out = subprocess.run(
            ["skopeo", "inspect", "--format", "{{.Digest}}", f"docker://{base}"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if out.returncode == 0 and DIGEST.match(out.stdout.strip()):
            return out.stdout.strip(), f"skopeo inspect docker://{base} on {today}"
        print(f"lock.py: skopeo cannot resolve {base}: {out.stderr.strip()}", file=sys.stderr)
    runtime = os.environ.get("CONTAINER_RUNTIME", "podman")
    if shutil.which(runtime):
        pull = subprocess.run(
            [runtime, "pull", "--quiet", base],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if pull.returncode == 0:
            out = subprocess.run(
                [runtime, "image", "inspect", "--format", "{{.Digest}}", base],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if DIGEST.match(out.stdout.strip()):
                return out.stdout.strip(), f"{runtime} pull {base} on {today}"
        print(f"lock.py: {runtime} cannot pull {base}: {pull.stderr.strip()}", file=sys.stderr)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolve", action="store_true", help="ask the registries")
    parser.add_argument("--pin", action="append", default=[], metavar="BASE=DIGEST")
    parser.add_argument("--check", action="store_true", help="only check the lock")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="resolve only these images"
    )
    args = parser.parse_args()
    catalog_path, lock_path = HERE / "catalog.yaml", HERE / "catalog.lock.json"
    catalog = read_catalog_document(catalog_path)
    previous = json.loads(lock_path.read_text()) if lock_path.exists() else None
    pins: dict[str, tuple[str, str]] = {}
    for pin in args.pin:
        base, _, digest = pin.partition("=")
        if not DIGEST.match(digest):
            parser.error(f"--pin {pin}: expected BASE=sha256:<64 hex>")
        pins[base] = (digest, f"pinned by hand with --pin on {datetime.date.today()}")

    unknown = sorted(set(args.only) - {e["name"] for e in catalog["images"]})
    if unknown:
        parser.error(f"--only: no image {', '.join(unknown)} in {catalog_path}")
    wanted = {e["base"] for e in catalog["images"] if not args.only or e["name"] in args.only}

    def lookup(base: str) -> tuple[str, str] | None:
        if base in pins:
            return pins[base]
        return resolve(base) if args.resolve and base in wanted else None

    lock = lock_document(catalog, previous, lookup)
    text = json.dumps(lock, indent=2, sort_keys=True) + "\n"
    if args.check:
        if previous is None or json.dumps(previous, indent=2, sort_keys=True) + "\n" != text:
            print(
                f"lock.py: {lock_path} does not match {catalog_path}: run python3 images/lock.py",
                file=sys.stderr,
            )
            return 1
        return 0
    with tempfile.NamedTemporaryFile("w", dir=HERE, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    Path(tmp.name).replace(lock_path)
    unresolved = [n for n, e in lock["images"].items() if not e["base_digest"]]
    if unresolved:
        print(f"lock.py: not yet pinned: {', '.join(unresolved)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
