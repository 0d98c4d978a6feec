"""Benchmark: start-up time of whole ``odrun`` processes (issue 14).

Targets: ``odrun --version`` <= 80 ms, ``odrun --help`` <= 150 ms, and ``odrun
info`` of a record with 5,178 files (read from a file:// mirror, as from the
metadata cache) as fast as cernopendata-client's ``get-file-locations`` (0.18-0.25 s
measured in the issue).

Every command runs as a new process, round-robin with the others (so each run is
"cold": the one before it was another Python process), ``--repeat`` times; the
median is reported next to the floor, a bare ``python -c pass``. ``--compare
DIR`` runs the same commands with another checkout first on PYTHONPATH (e.g. the
main branch) for a before/after on the same, possibly loaded, machine.

Run: python benchmarks/startup.py [--repeat 7] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metadata_scale import RECID, write_record

REPO = Path(__file__).resolve().parent.parent


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds of one process; ``cwd`` too, as ``python -m`` puts it first on sys.path."""
    start = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--files", type=int, default=5178)
    parser.add_argument("--compare", type=Path, help="another checkout to measure too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        mirror.mkdir()
        write_record(mirror, args.files)
        py = sys.executable
        odrun = [py, "-m", "odrun"]
        cases = {
            "python -c pass (floor)": [py, "-c", "pass"],
            "odrun --version": [*odrun, "--version"],
            "odrun --help": [*odrun, "--help"],
            f"odrun info ({args.files} files)": [
                *odrun, "--portal", f"file://{mirror}", "info", RECID
            ],
        }  # fmt: skip
        trees = {"this checkout": REPO}
        if args.compare:
            trees[f"{args.compare}"] = args.compare.resolve()
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for tree_name, tree in trees.items():
                env = dict(os.environ, PYTHONPATH=str(tree), ODRUN_CACHE_DIR=f"{tmp}/cache")
                for label, cmd in cases.items():
                    times.setdefault((tree_name, label), []).append(run_once(cmd, env, tree))
    for tree_name in trees:
        print(f"{tree_name}: median of {args.repeat} cold runs")
        for label in cases:
            t = times[(tree_name, label)]
            print(
                f"  {label:<28} {statistics.median(t) * 1000:7.0f} ms"
                f"  (min {min(t) * 1000:.0f}, max {max(t) * 1000:.0f})"
            )


if __name__ == "__main__":
    main()
