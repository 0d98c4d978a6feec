"""Benchmark: resolving a record with a 10,000-file index once its metadata is cached.

Target (foundation issue): well under one second. Serves a generated record
from a local HTTP portal on 127.0.0.1, resolves it once (fills the cache),
then times cached resolutions in-process and the full CLI (`odrun --offline
info --json`, interpreter start included), side by side with a json.loads of
the same document as the floor.

Run: python benchmarks/resolve_cached.py [--files N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from odrun import Settings
from odrun.records import Resolver


def make_document(n: int) -> bytes:
    base = "root://eospublic.cern.ch//eos/opendata/cms/Run2012B/DoubleMuParked/AOD/22Jan2013-v1"
    files = [
        {
            "checksum": f"adler32:{(i * 2654435761) & 0xFFFFFFFF:08x}",
            "filename": f"{i:08X}-0000-E211-B0B3-00266CF9B{i % 1000:03d}.root",
            "size": 3_000_000_000 + i,
            "uri": f"{base}/{i // 1000:05d}/{i:08X}-0000-E211-B0B3-00266CF9B{i % 1000:03d}.root",
            "key": f"idx_{i}",
        }
        for i in range(n)
    ]
    meta = {
        "recid": "424242",
        "doi": "10.7483/OPENDATA.CMS.BENCH.0001",
        "title": "/DoubleMuParked/Run2012B-22Jan2013-v1/AOD (generated benchmark record)",
        "experiment": ["CMS"],
        "type": {"primary": "Dataset", "secondary": ["Collision"]},
        "distribution": {"number_files": n, "size": sum(f["size"] for f in files)},
        "files": [],
        "_file_indices": [{"key": "bench_file_index", "number_files": n, "files": files}],
    }
    return json.dumps({"id": "424242", "metadata": meta}).encode()


def serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    body = make_document(args.files)
    server = serve(body)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as cache:
        settings = Settings.load({"portal_url": url, "cache_dir": Path(cache)})
        with Resolver(settings) as resolver:
            first = timed(lambda: resolver.resolve("424242"), 1)[0]
        offline = settings.with_(offline=True)

        def cached() -> None:
            with Resolver(offline) as r:
                assert r.resolve("424242").file_count == args.files

        lib = timed(cached, args.repeat)
        floor = timed(lambda: json.loads(body), args.repeat)
        env = dict(os.environ, ODRUN_CACHE_DIR=cache)
        cmd = [
            sys.executable,
            "-m",
            "odrun",
            "--portal",
            url,
            "--offline",
            "info",
            "424242",
            "--json",
        ]

        def cli() -> None:
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)

        cli_times = timed(cli, max(3, args.repeat // 2))
        dry = [sys.executable, "-m", "odrun", "--portal", url, "--offline", "fetch", "424242",
               "--dry-run", "--json", "--dest", str(Path(cache) / "dest")]  # fmt: skip
        subprocess.run(dry, env=env, check=True, stdout=subprocess.DEVNULL)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    server.shutdown()
    med = statistics.median
    print(f"record with {args.files} files, {len(body) / 1e6:.1f} MB of metadata")
    print(f"  first resolve (HTTP, fills cache): {first * 1000:8.1f} ms")
    print(f"  cached resolve, library          : {med(lib) * 1000:8.1f} ms (median of {len(lib)})")
    print(f"  cached, full CLI incl. startup   : {med(cli_times) * 1000:8.1f} ms")
    print(f"  json.loads floor                 : {med(floor) * 1000:8.1f} ms")
    print(f"ratio cached-library / 1 s target  : {med(lib) / 1.0:.3f}  (<= 1 means met)")
    print(f"ratio cached-CLI / 1 s target      : {med(cli_times) / 1.0:.3f}")
    print(f"ratio cached-library / json floor  : {med(lib) / med(floor):.1f}x")
    print(f"peak RSS of any CLI run (incl. fetch --dry-run --json): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
