"""Benchmark odrun fetch against native tools, side by side, on one loopback xrootd server.

Prints throughput ratios (odrun / other tool; > 1 means odrun is faster):

1. one large file (default 256 MB) with verification on: odrun --protocol root vs
   ``xrdcp``, odrun --protocol https vs ``curl`` on the xrootd HTTP port;
2. many small files (default 500 x 1 MB): odrun (parallel) vs ``cernopendata-client
   download-files`` (HTTP, ``--server`` pointed at a local portal) and vs a
   sequential ``xrdcp`` loop;
3. verification overhead: adler32 of the large file / odrun's transfer time;
4. ``odrun verify-files`` throughput on files in the page cache.

Needs root (the xrootd daemon runs as its own user), ``xrootd-server xrootd-client curl``
and, for the cernopendata-client row, a venv with it: ``--cod PATH`` (default
``/tmp/cod-venv/bin/cernopendata-client``; created with ``python3 -m venv /tmp/cod-venv
&& /tmp/cod-venv/bin/pip install cernopendata-client``). Rows whose tool is missing are
reported as skipped.

Run: python benchmarks/fetch.py [--large-mb 256] [--small-count 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from odrun.checksum import adler32 as odrun_adler32

import xrootd_server

MB = 1_000_000


def make_file(path: Path, size: int) -> tuple[int, str]:
    """Write ``size`` random bytes (unique content: no cache sharing); return size, adler32."""
    adler, left = 1, size
    with path.open("wb") as fh:
        while left:
            chunk = os.urandom(min(left, 4 << 20))
            fh.write(chunk)
            adler = zlib.adler32(chunk, adler)
            left -= len(chunk)
    return size, f"adler32:{adler & 0xFFFFFFFF:08x}"


class Portal(ThreadingHTTPServer):
    """API documents for the benchmark records, and /eos/ files for cernopendata-client."""

    daemon_threads = True

    def __init__(self, records: dict[str, dict[str, Any]], eos_root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _PortalHandler)
        self.records = records
        self.eos_root = eos_root

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _PortalHandler(BaseHTTPRequestHandler):
    server: Portal
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = "/" + "/".join(p for p in self.path.split("?")[0].split("/") if p)
        parts = path.split("/")
        if path.startswith("/api/records/") and parts[3] in self.server.records:
            return self._send(json.dumps(self.server.records[parts[3]]).encode())
        if path.startswith("/record/") and parts[2] in self.server.records:
            return self._send(b"<html>record</html>")
        if path.startswith("/eos/"):
            file = self.server.eos_root / path.removeprefix("/eos/")
            if file.is_file():
                with file.open("rb") as fh:
                    self.send_response(200)
                    self.send_header("Content-Length", str(file.stat().st_size))
                    self.end_headers()
                    self.wfile.flush()
                    self.connection.sendfile(fh)
                return None
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def record(recid: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    meta = {"recid": recid, "title": f"benchmark {recid}", "experiment": ["CMS"], "files": files}
    return {"id": recid, "metadata": meta}


def timed(fn: Callable[[], None], repeat: int, before: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(cmd: list[str], **kwargs: Any) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--large-mb", type=int, default=256)
    parser.add_argument("--small-count", type=int, default=500)
    parser.add_argument("--small-mb", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cod", default="/tmp/cod-venv/bin/cernopendata-client")
    args = parser.parse_args()
    reason = xrootd_server.unavailable_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    work = Path(tempfile.mkdtemp(prefix="odrun-bench-", dir="/var/tmp"))
    results: list[tuple[str, float, float]] = []
    try:
        with xrootd_server.run_xrootd(work / "xrootd") as xrd:
            large = xrd.data / "large.bin"
            large_size, large_sum = make_file(large, args.large_mb * MB)
            small_dir = xrd.data / "small"
            small_dir.mkdir()
            small = []
            for i in range(args.small_count):
                size, adler = make_file(small_dir / f"f{i:04d}.bin", int(args.small_mb * MB))
                small.append((f"f{i:04d}.bin", size, adler))
            uid = xrootd_server.pwd.getpwnam("xrootd").pw_uid
            for path in (large, small_dir, *small_dir.iterdir()):
                os.chown(path, uid, -1)
            eos = work / "eos"
            (eos / "bench").mkdir(parents=True)
            (eos / "bench" / "small").symlink_to(small_dir)
            records = {
                "1": record(
                    "1", [{"uri": xrd.uri("large.bin"), "size": large_size, "checksum": large_sum}]
                ),
                "2": record(
                    "2",
                    [{"uri": xrd.uri(f"small/{n}"), "size": s, "checksum": c} for n, s, c in small],
                ),
                "3": record(
                    "3",
                    [
                        {
                            "uri": f"root://eospublic.cern.ch//eos/bench/small/{n}",
                            "size": s,
                            "checksum": c,
                        }
                        for n, s, c in small
                    ],
                ),
            }
            portal = Portal(records, eos)
            threading.Thread(target=portal.serve_forever, daemon=True).start()
            dest = work / "dest"
            cache = work / "cache"

            def clean() -> None:
                """Untimed: empty destination and cache, and flush dirty pages, so
                that no tool pays for the previous one's disk writes."""
                shutil.rmtree(dest, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
                dest.mkdir()
                os.sync()

            def odrun(recid: str, protocol: str, pmap: str) -> Callable[[], None]:
                env = dict(
                    os.environ, ODRUN_CACHE_DIR=str(cache), ODRUN_PORTAL_URL=portal.url,
                    ODRUN_PROTOCOL_MAP=pmap,
                )  # fmt: skip
                cmd = [sys.executable, "-m", "odrun", "fetch", recid, "--dest", str(dest),
                       "--protocol", protocol, "--jobs", str(args.jobs), "--json"]  # fmt: skip
                return lambda: run(cmd, env=env)

            xmap = xrd.protocol_map
            t_odrun_root = timed(odrun("1", "root", xmap), args.repeat, clean)
            t_xrdcp = timed(
                lambda: run(["xrdcp", "-f", "-s", xrd.uri("large.bin"), str(dest / "large.bin")]),
                args.repeat,
                clean,
            )
            results.append(
                (f"large {args.large_mb} MB: odrun root:// vs xrdcp", t_xrdcp, t_odrun_root)
            )
            t_odrun_http = timed(odrun("1", "https", xmap), args.repeat, clean)
            t_curl = timed(
                lambda: run(
                    [
                        "curl",
                        "-sf",
                        "-o",
                        str(dest / "large.bin"),
                        f"{xrd.http_url}//data/large.bin",
                    ]
                ),
                args.repeat,
                clean,
            )
            results.append((f"large {args.large_mb} MB: odrun https vs curl", t_curl, t_odrun_http))

            label = f"{args.small_count} x {args.small_mb:g} MB"
            eos_map = f"root://eospublic.cern.ch={portal.url}"
            t_odrun_small_http = timed(odrun("3", "https", eos_map), args.repeat, clean)
            if Path(args.cod).exists():

                def cod() -> None:
                    run(
                        [args.cod, "download-files", "--recid", "3", "--server", portal.url,
                         "--protocol", "http"],
                        cwd=dest,
                    )  # fmt: skip

                t_cod = timed(cod, max(1, args.repeat // 2), clean)
                results.append(
                    (f"{label}: odrun https vs cernopendata-client", t_cod, t_odrun_small_http)
                )
            else:
                print(f"skipped cernopendata-client row: {args.cod} not found", file=sys.stderr)
            t_odrun_small_root = timed(odrun("2", "root", xmap), args.repeat, clean)

            def xrdcp_loop() -> None:
                for n, _, _ in small:
                    run(["xrdcp", "-f", "-s", xrd.uri(f"small/{n}"), str(dest / n)])

            t_loop = timed(xrdcp_loop, 1, clean)
            results.append(
                (f"{label}: odrun root:// vs sequential xrdcp", t_loop, t_odrun_small_root)
            )

            # the same large transfers through the library (no CLI start-up: ~0.5 s)
            for protocol, other, tool in (("root", t_xrdcp, "xrdcp"), ("https", t_curl, "curl")):
                t_lib = library_fetch(
                    xrd.uri("large.bin"), large_size, large_sum, xmap, cache, dest, clean,
                    args.repeat, protocol,
                )  # fmt: skip
                results.append(
                    (f"large {args.large_mb} MB: odrun library {protocol} vs {tool}", other, t_lib)
                )

            # verification cost, in-process A/B on the large file: real hashing vs none
            t_verify_on, t_verify_off = verification_ab(
                xrd.uri("large.bin"), large_size, large_sum, xmap, cache, dest, clean, args.repeat
            )
            data = large.read_bytes()
            start = time.perf_counter()
            adler = 1
            view = memoryview(data)
            for off in range(0, len(data), 4 << 20):
                adler = odrun_adler32(view[off : off + (4 << 20)], adler)
            t_hash = time.perf_counter() - start
            del data, view

            # verify-files on data in the page cache
            clean()
            odrun("2", "root", xmap)()
            env = dict(os.environ, ODRUN_CACHE_DIR=str(cache), ODRUN_PORTAL_URL=portal.url)
            run([sys.executable, "-m", "odrun", "verify-files", str(dest), "2"], env=env)  # warm
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "odrun", "verify-files", str(dest), "2", "--jobs", "2",
                 "--json"],
                env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
            t_verify_cli = time.perf_counter() - start
            t_verify = json.loads(out.stdout)["seconds"]
            verified = sum(s for _, s, _ in small)
            portal.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(results, t_verify_on, t_verify_off, t_hash, verified, t_verify, t_verify_cli)


def verification_ab(
    uri: str, size: int, checksum: str, pmap: str, cache: Path, dest: Path,
    clean: Callable[[], None], repeat: int,
) -> tuple[float, float]:  # fmt: skip
    """Median fetch time of one file with odrun's streaming adler32, and with none."""
    from odrun.checksum import Hasher, parse_checksum
    from odrun.transfer import engine

    declared = parse_checksum(checksum)

    class NullHasher(Hasher):
        def update(self, data: bytes | memoryview) -> None:
            pass

        def checksum(self):  # type: ignore[no-untyped-def]
            return declared

    once = one_file_fetch(uri, size, checksum, pmap, cache, dest, "root")
    once()  # warm-up (XRootD client start), not counted
    on_times, off_times = [], []
    for _ in range(max(3, repeat * 2)):  # interleaved, so disk write-back noise hits both
        on_times.append(timed(once, 1, clean))
        engine.Hasher = NullHasher  # type: ignore[misc]
        try:
            off_times.append(timed(once, 1, clean))
        finally:
            engine.Hasher = Hasher  # type: ignore[misc]
    on, off = statistics.median(on_times), statistics.median(off_times)
    return on, off


def one_file_fetch(
    uri: str, size: int, checksum: str, pmap: str, cache: Path, dest: Path, protocol: str
) -> Callable[[], None]:
    """A callable fetching one file through the library, failing loudly if it fails."""
    from odrun.records.parse import parse_record
    from odrun.settings import Settings
    from odrun.transfer.fetch import Fetcher

    files = parse_record({"metadata": {"recid": "1", "files": [
        {"uri": uri, "size": size, "checksum": checksum}]}}).files  # fmt: skip
    settings = Settings.load({"cache_dir": cache, "protocol_map": pmap})

    def once() -> None:
        with Fetcher(settings, protocol) as fetcher:  # type: ignore[arg-type]
            report = fetcher.fetch_files(files, dest)
            assert not report.failed, report.failed

    return once


def library_fetch(
    uri: str, size: int, checksum: str, pmap: str, cache: Path, dest: Path,
    clean: Callable[[], None], repeat: int, protocol: str,
) -> float:  # fmt: skip
    """Median in-process fetch time of one file (what `odrun run` staging pays)."""
    once = one_file_fetch(uri, size, checksum, pmap, cache, dest, protocol)
    once()  # warm-up
    return timed(once, repeat, clean)


def report(
    results: list[tuple[str, float, float]], t_on: float, t_off: float, t_hash: float,
    verified: int, t_verify: float, t_verify_cli: float,
) -> None:  # fmt: skip
    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"\n{'comparison':58} {'other s':>8} {'odrun s':>8} {'ratio':>6}  target")
    for name, other, ours in results:
        target = 5.0 if "cernopendata" in name else 3.0 if "sequential" in name else 0.95
        ratio = other / ours
        verdict = met(ratio >= target)
        print(f"{name:58} {other:8.2f} {ours:8.2f} {ratio:6.2f}  >= {target:g} ({verdict})")
    overhead = (t_on - t_off) / t_off
    label = "verification overhead: fetch with adler32 vs without"
    print(f"{label:58} {t_off:8.2f} {t_on:8.2f} {overhead:6.1%}  <= 3% ({met(overhead <= 0.03)})")
    label = "  (adler32 alone over the same bytes, from memory)"
    print(f"{label:58} {'':8} {t_hash:8.2f}")
    rate = verified / t_verify / 1e9
    label = "odrun verify-files on cached data, hashing phase (GB/s)"
    print(f"{label:58} {'':8} {t_verify:8.2f} {rate:6.2f}  >= 1 GB/s ({met(rate >= 1)})")
    rate_cli = verified / t_verify_cli / 1e9
    label = "odrun verify-files, whole CLI incl. start-up (GB/s)"
    print(f"{label:58} {'':8} {t_verify_cli:8.2f} {rate_cli:6.2f}")


if __name__ == "__main__":
    main()
