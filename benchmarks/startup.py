"""Benchmark: start-up time of whole ``odrun`` processes (issue 14).

Targets: ``odrun --version`` <= 80 ms, ``odrun --help`` <= 150 ms, and ``odrun
info`` of a record with 5,178 files (read from a file:// mirror, as from the
metadata cache) as fast as cernopendata-client's ``get-file-locations`` (0.18-0.25 s
measured in the issue). cernopendata-client runs side by side when its venv exists
(``benchmarks/fetch.py --make-cod-venv`` makes it under /var/tmp): it reads the same
record document from a portal stand-in on loopback (``/record/<recid>`` and
``/api/records/<recid>``, the two requests it makes); it has no cache.

Every command runs as a new process, round-robin with the others (so each run is
"cold": the one before it was another Python process), ``--repeat`` times; the
median is reported next to the floor, a bare ``python -c pass``. The "fixed cost of a
fetch" row is ``odrun fetch --json`` of one 1 kB file from a file:// mirror into a new
folder (the file is in the cache after the first run: linked into place, verified):
what every ``odrun fetch`` process pays before and after its transfers. ``--compare
DIR`` runs the same commands with another checkout first on PYTHONPATH (e.g. the
main branch) for a before/after on the same, possibly loaded, machine.

Bytecode: an installed odrun has its ``.pyc`` files (pip compiles them); a source tree run
with ``PYTHONDONTWRITEBYTECODE=1`` (as this project's sandbox sets it) compiles every odrun
module from source in every process (~70 modules, 0.1-0.3 s). So each tree gets a
bytecode cache of its own (``PYTHONPYCACHEPREFIX`` in the temporary folder), filled by one
untimed run of each command; ``--no-pyc`` measures without it.

Run: python benchmarks/startup.py [--repeat 7] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metadata_scale import RECID, write_record

REPO = Path(__file__).resolve().parent.parent
COD_LABEL = "get-file-locations (HTTP)"
FETCH_LABEL = "odrun fetch --json (1 file)"


def cod_binary() -> str | None:
    """cernopendata-client from benchmarks/fetch.py's venv (newest version), if made."""
    found = sorted(glob.glob("/var/tmp/odrun-bench-cod-*/bin/cernopendata-client"))
    return found[-1] if found else None


def serve_record(mirror: Path) -> ThreadingHTTPServer:
    """The two portal pages cernopendata-client reads, from the mirror's record document."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            body, kind = b"", "text/html"
            if path == f"/record/{RECID}":
                body = b"<html>record</html>"
            elif path == f"/api/records/{RECID}":
                body, kind = (mirror / f"{RECID}.json").read_bytes(), "application/json"
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_small_mirror(mirror: Path) -> str:
    """One record (recid 990014) with one 1 kB file inside ``mirror``; returns the recid."""
    (mirror / "files").mkdir(parents=True, exist_ok=True)
    data = b"odrun fixed cost of a fetch\n" * 36
    (mirror / "files" / "small.txt").write_bytes(data)
    entry = {"uri": "file:files/small.txt", "size": len(data)}
    entry["checksum"] = f"adler32:{zlib.adler32(data):08x}"
    meta = {"recid": "990014", "title": "fixed cost of a fetch", "files": [entry]}
    (mirror / "990014.json").write_text(json.dumps({"id": "990014", "metadata": meta}))
    return "990014"


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process; ``cwd`` too, as ``python -m``
    puts it first on sys.path."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--files", type=int, default=5178)
    parser.add_argument("--compare", type=Path, help="another checkout to measure too")
    parser.add_argument("--no-pyc", action="store_true", help="keep the environment's bytecode")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        mirror.mkdir()
        write_record(mirror, args.files)
        small = write_small_mirror(mirror)
        py = sys.executable
        odrun = [py, "-m", "odrun"]
        cases = {
            "python -c pass (floor)": [py, "-c", "pass"],
            "odrun --version": [*odrun, "--version"],
            "odrun --help": [*odrun, "--help"],
            f"odrun info ({args.files} files)": [
                *odrun, "--portal", f"file://{mirror}", "info", RECID
            ],
            FETCH_LABEL: [
                *odrun, "--portal", f"file://{mirror}", "fetch", small, "--json", "--dest"
            ],
        }  # fmt: skip
        cod = cod_binary()
        portal = serve_record(mirror) if cod else None
        trees = {"this checkout": REPO}
        if args.compare:
            trees[f"{args.compare}"] = args.compare.resolve()
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        envs = {}
        for t, (tree_name, tree) in enumerate(trees.items()):
            env = dict(os.environ, PYTHONPATH=str(tree), ODRUN_CACHE_DIR=f"{tmp}/cache{t}")
            if not args.no_pyc:
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                env["PYTHONPYCACHEPREFIX"] = f"{tmp}/pyc{t}"
                for label, base in cases.items():  # untimed: fills the bytecode cache
                    warm = [f"{tmp}/fetched-{t}-warm"] if label == FETCH_LABEL else []
                    run_once([*base, *warm], env, tree)
            envs[tree_name] = env
        for i in range(args.repeat):
            for t, (tree_name, tree) in enumerate(trees.items()):
                env = envs[tree_name]
                for label, base in cases.items():
                    new_folder = [f"{tmp}/fetched-{t}-{i}"] if label == FETCH_LABEL else []
                    cmd = [*base, *new_folder]
                    times.setdefault((tree_name, label), []).append(run_once(cmd, env, tree))
            if cod and portal:
                url = f"http://127.0.0.1:{portal.server_address[1]}"
                cmd = [cod, "get-file-locations", "--recid", RECID, "--server", url]
                times.setdefault(("cernopendata-client", COD_LABEL), []).append(
                    run_once(cmd, dict(os.environ), Path(tmp))
                )
        if portal:
            portal.shutdown()
    if cod:
        trees["cernopendata-client"] = Path(cod)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in load_at_start)}")
    for tree_name in trees:
        print(f"{tree_name}: median of {args.repeat} cold runs")
        for label in [*cases, COD_LABEL]:
            if (tree_name, label) not in times:
                continue
            wall = [w for w, _ in times[(tree_name, label)]]
            cpu = [c for _, c in times[(tree_name, label)]]
            print(
                f"  {label:<28} {statistics.median(wall) * 1000:7.0f} ms wall"
                f"  (min {min(wall) * 1000:.0f}, max {max(wall) * 1000:.0f})"
                f"  {statistics.median(cpu) * 1000:5.0f} ms CPU"
            )


if __name__ == "__main__":
    main()
