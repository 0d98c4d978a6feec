"""Benchmark: metadata at scale (issue 14): ``odrun info`` of a record with a huge file index.

Writes a generated record with N files (default 1,000,000) as the portal would
serve it (the index expanded into ``metadata._file_indices``) into a file://
mirror folder, then runs whole ``odrun --portal file://DIR info RECID``
processes and reports the median wall and CPU (user + system) time and the peak
RSS (``ru_maxrss`` of each child, measured by a fresh wrapper process per run).

Targets: N = 1,000,000: <= 5 s and <= 300 MB peak RSS.
``--fetch`` also runs ``odrun fetch --dry-run`` (the planning step of a fetch;
target for N = 100,000: <= 150 MB).

Run: python benchmarks/metadata_scale.py [--files N] [--repeat 5] [--fetch]
[--compare /path/to/other/checkout] (the other checkout's runs interleaved with these)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RECID = "424243"
REPO = Path(__file__).resolve().parent.parent
BASE = "root://eospublic.cern.ch//eos/opendata/cms/Run2012B/DoubleMuParked/AOD/22Jan2013-v1"

#: runs ARGS as a child; prints its wall seconds, peak RSS (kB), exit code and CPU seconds
WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
elapsed = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(elapsed, usage.ru_maxrss, code, usage.ru_utime + usage.ru_stime)
"""


def write_record(folder: Path, n: int) -> int:
    """Write ``<folder>/<RECID>.json`` with an ``n``-file index; return its size in bytes."""
    path = folder / f"{RECID}.json"
    head = {
        "recid": RECID,
        "doi": "10.7483/OPENDATA.CMS.BENCH.0002",
        "title": "/DoubleMuParked/Run2012B-22Jan2013-v1/AOD (generated scale benchmark)",
        "experiment": ["CMS"],
        "type": {"primary": "Dataset", "secondary": ["Collision"]},
        "distribution": {"number_files": n, "size": n * 3_000_000_000 + n * (n - 1) // 2},
        "files": [],
    }
    with path.open("w") as out:
        out.write(f'{{"id": "{RECID}", "metadata": ')
        out.write(json.dumps(head)[:-1])
        out.write(f', "_file_indices": [{{"key": "bench_file_index", "number_files": {n}, ')
        out.write('"files": [')
        for i in range(n):
            name = f"{i:08X}-0000-E211-B0B3-00266CF9B{i % 1000:03d}.root"
            entry = {
                "checksum": f"adler32:{(i * 2654435761) & 0xFFFFFFFF:08x}",
                "filename": name,
                "size": 3_000_000_000 + i,
                "uri": f"{BASE}/{i // 1000:05d}/{name}",
                "key": f"idx_{i}",
            }
            out.write(("," if i else "") + json.dumps(entry))
        out.write("]}]}}")
    return path.stat().st_size


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int, float]:
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024, int(out[2]), float(out[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fetch", action="store_true", help="also time fetch --dry-run")
    parser.add_argument(
        "--tree", type=Path, default=REPO, help="the odrun checkout to run (default: this one)"
    )
    parser.add_argument(
        "--compare", type=Path, help="another checkout (e.g. the main branch), run interleaved"
    )
    args = parser.parse_args()
    trees = [args.tree.resolve()] + ([args.compare.resolve()] if args.compare else [])
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        mirror.mkdir()
        size = write_record(mirror, args.files)
        odrun = [sys.executable, "-m", "odrun", "--portal", f"file://{mirror}"]
        runs = {"info": [*odrun, "info", RECID]}
        if args.fetch:
            dest = str(Path(tmp) / "dest")
            runs["fetch --dry-run"] = [*odrun, "fetch", RECID, "--dry-run", "--dest", dest]
        print(f"record with {args.files:,} files, {size / 1e6:.0f} MB (file:// mirror)")
        results: dict[tuple[Path, str], list[tuple[float, float, int, float]]] = {}
        for _ in range(args.repeat):  # round-robin: each tree sees the same load
            for tree in trees:
                env = dict(os.environ, ODRUN_CACHE_DIR=f"{tmp}/cache-{trees.index(tree)}",
                           PYTHONPATH=str(tree))  # fmt: skip
                for label, cmd in runs.items():
                    results.setdefault((tree, label), []).append(measure(cmd, env, tree))
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for (tree, label), got in results.items():
            codes = {r[2] for r in got}
            secs = statistics.median(r[0] for r in got)
            cpu = statistics.median(r[3] for r in got)
            peak = max(r[1] for r in got)
            print(
                f"  {tree}: odrun {label:<16}: median {secs:6.2f} s wall, {cpu:6.2f} s CPU "
                f"of {len(got)}, peak RSS {peak:6.0f} MB, exit {sorted(codes)}"
            )


if __name__ == "__main__":
    main()
