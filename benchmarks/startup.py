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
median is reported next to the floor, a bare ``python -c pass``. ``--compare
DIR`` runs the same commands with another checkout first on PYTHONPATH (e.g. the
main branch) for a before/after on the same, possibly loaded, machine.

Run: python benchmarks/startup.py [--repeat 7] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metadata_scale import RECID, write_record

REPO = Path(__file__).resolve().parent.parent
COD_LABEL = "get-file-locations (HTTP)"


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
        cod = cod_binary()
        portal = serve_record(mirror) if cod else None
        trees = {"this checkout": REPO}
        if args.compare:
            trees[f"{args.compare}"] = args.compare.resolve()
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for tree_name, tree in trees.items():
                env = dict(os.environ, PYTHONPATH=str(tree), ODRUN_CACHE_DIR=f"{tmp}/cache")
                for label, cmd in cases.items():
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
    for tree_name in trees:
        print(f"{tree_name}: median of {args.repeat} cold runs")
        for label in [*cases, COD_LABEL]:
            if (tree_name, label) not in times:
                continue
            t = times[(tree_name, label)]
            print(
                f"  {label:<28} {statistics.median(t) * 1000:7.0f} ms"
                f"  (min {min(t) * 1000:.0f}, max {max(t) * 1000:.0f})"
            )


if __name__ == "__main__":
    main()
