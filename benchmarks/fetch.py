"""Fetch benchmark: odrun against the best tools, on loopback and over an emulated WAN.

Every tool runs as a whole process from the command line, cold (empty destination
and cache before each run, ``sync`` untimed), medians of ``--repeat`` runs, all in
one run of this script. Ratio = other tool's time / odrun's time (> 1: odrun is
faster); each row prints its goal and whether it is met.

Suites (both run in a fresh network namespace of their own, ``unshare --net``):

- ``loopback``: one Debian ``xrootd`` daemon serving root:// and HTTP (XrdHttp),
  a portal stand-in serving the API and ``/eos/`` files for cernopendata-client;
  many small files vs ``xrdcp --parallel 8``, ``aria2c -j 8`` and
  cernopendata-client; one large file vs ``xrdcp`` and ``curl``;
- ``wan``: the same servers behind :mod:`wan`'s delaying proxies (25 ms each way,
  100 Mbit/s per connection, 1 Gbit/s total with ``tc tbf``); many files vs
  ``aria2c -j 8``, ``xrdcp --parallel 8`` and cernopendata-client; one large file
  in 8 streams vs ``aria2c -x 8 -s 8``, ``xrdcp --streams 8 --cksum adler32:...``
  and single-stream ``curl``.

Needs root, ``xrootd-server xrootd-client curl aria2``; cernopendata-client in its
own venv under /var/tmp keyed by version (``--make-cod-venv`` creates it; without it
that row is skipped). Writes a JSON of the results (``--json``) and a PNG chart
(``--png``, needs matplotlib: ``pip install 'odrun[bench]'``).

Run: python benchmarks/fetch.py [--suite all|loopback|wan] [--repeat 3]
     python benchmarks/fetch.py --suite wan --small-count 8 --small-mb 1 --large-mb 16 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

import wan  # noqa: E402

import xrootd_server  # noqa: E402

MB = 1_000_000
MIB = 1024 * 1024
COD_VERSION = "1.0.2"
COD_VENV = Path(f"/var/tmp/odrun-bench-cod-{COD_VERSION}")
JOBS = 8


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


@dataclass
class Row:
    suite: str
    workload: str
    peer: str
    goal: float
    peer_s: float | None = None
    odrun_s: float | None = None
    peer_runs: list[float] | None = None
    odrun_runs: list[float] | None = None
    #: CPU seconds (user + system) of the whole process tree, median: robust to a busy machine
    peer_cpu: float | None = None
    odrun_cpu: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.peer_s or not self.odrun_s:
            return None
        return self.peer_s / self.odrun_s

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "skipped"
        return "met" if self.ratio >= self.goal else "NOT met"

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), ratio=self.ratio, verdict=self.verdict)


class Bench:
    """Timing of whole processes, cold, medians; one place that cleans between runs."""

    def __init__(self, work: Path, repeat: int) -> None:
        self.work, self.repeat = work, repeat
        self.dest, self.cache = work / "dest", work / "cache"
        self.memo: dict[tuple[str, ...], list[float] | str] = {}
        self.cpu: dict[tuple[str, ...], float] = {}

    def clean(self) -> None:
        shutil.rmtree(self.dest, ignore_errors=True)
        shutil.rmtree(self.cache, ignore_errors=True)
        self.dest.mkdir()
        os.sync()

    def time(self, cmd: list[str], env: dict[str, str] | None = None) -> list[float] | str:
        """Run times of ``cmd`` (each after a clean), or why it could not run."""
        key = tuple(cmd)
        if key in self.memo:  # one peer or odrun row shared by two comparisons
            return self.memo[key]
        if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
            return f"{cmd[0]} not found"
        times: list[float] = []
        cpu: list[float] = []
        for _ in range(self.repeat):
            self.clean()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                cmd,
                env=env,
                cwd=self.dest,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
            )
            times.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if done.returncode != 0:
                err = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                self.memo[key] = f"{Path(cmd[0]).name} failed: {err[:160]}"
                return self.memo[key]
        self.memo[key] = times
        self.cpu[key] = statistics.median(cpu)
        return times


#: set from --only: rows whose peer does not contain it are not run
ONLY = [""]


def compare(
    bench: Bench, suite: str, workload: str, peer: str, goal: float,
    peer_cmd: list[str], odrun_cmd: list[str], odrun_env: dict[str, str],
) -> Row:  # fmt: skip
    row = Row(suite, workload, peer, goal)
    if ONLY[0] not in peer:
        row.note = f"not run (--only {ONLY[0]!r})"
        return row
    odrun_times = bench.time(odrun_cmd, odrun_env)
    peer_times = bench.time(peer_cmd)
    for times, attr in ((odrun_times, "odrun"), (peer_times, "peer")):
        if isinstance(times, str):
            row.note = (row.note + "; " if row.note else "") + times
        else:
            setattr(row, f"{attr}_runs", [round(t, 3) for t in times])
            setattr(row, f"{attr}_s", statistics.median(times))
    row.odrun_cpu = bench.cpu.get(tuple(odrun_cmd))
    row.peer_cpu = bench.cpu.get(tuple(peer_cmd))
    print(format_row(row), flush=True)
    return row


def format_row(row: Row) -> str:
    def sec(v: float | None) -> str:
        return f"{v:8.2f}" if v is not None else "       -"

    ratio = f"{row.ratio:6.2f}" if row.ratio is not None else "     -"
    text = (
        f"{row.suite:8} {row.workload:14} {row.peer:36} {sec(row.peer_s)} {sec(row.odrun_s)} "
        f"{ratio}  >= {row.goal:<4g} {row.verdict}"
    )
    if row.peer_cpu is not None and row.odrun_cpu is not None:
        text += f"  [cpu s {row.peer_cpu:.2f} / {row.odrun_cpu:.2f}]"
    return text + (f"  ({row.note})" if row.note else "")


HEADER = f"{'suite':8} {'workload':14} {'peer':36} {'peer s':>8} {'odrun s':>8} {'ratio':>6}  goal"


@dataclass
class Files:
    """The benchmark's files on the xrootd server: (name, size, adler32) each."""

    small: list[tuple[str, int, str]]
    large: tuple[str, int, str]


def make_files(xrd: Any, prefix: str, count: int, size: int, large: int) -> Files:
    small = [
        (
            f"{prefix}/small/f{i:04d}.bin",
            *make_file(xrd.data / prefix / "small" / f"f{i:04d}.bin", size),
        )
        for i in range(count)
    ]
    big = (f"{prefix}/large.bin", *make_file(xrd.data / prefix / "large.bin", large))
    uid = xrootd_server.pwd.getpwnam("xrootd").pw_uid
    for path in (xrd.data / prefix).rglob("*"):
        os.chown(path, uid, -1)
    os.chown(xrd.data / prefix, uid, -1)
    return Files(small, big)


def make_file(path: Path, size: int) -> tuple[int, str]:
    """Write ``size`` random bytes (unique content: no cache sharing); return size, adler32."""
    path.parent.mkdir(parents=True, exist_ok=True)
    adler, left = 1, size
    with path.open("wb") as fh:
        while left:
            chunk = os.urandom(min(left, 4 << 20))
            fh.write(chunk)
            adler = zlib.adler32(chunk, adler)
            left -= len(chunk)
    return size, f"adler32:{adler & 0xFFFFFFFF:08x}"


@dataclass
class Endpoints:
    root: str  # root://127.0.0.1:port
    http: str  # http://127.0.0.1:port (XrdHttp)
    portal: str  # http://127.0.0.1:port (API and /eos/ for cernopendata-client)


def run_suite(
    suite: str, bench: Bench, files: Files, ends: Endpoints, portal: Portal, cod: Path | None,
    wan_mode: bool,
) -> list[Row]:  # fmt: skip
    rows: list[Row] = []
    tag = "20" if wan_mode else "10"  # recids 101.. and 201..
    small_n, small_size = len(files.small), files.small[0][1]
    large_name, large_size, large_sum = files.large

    def root(name: str) -> str:
        return f"{ends.root}//data/{name}"

    def http(name: str) -> str:
        return f"{ends.http}//data/{name}"

    def rec(recid: str, entries: list[dict[str, Any]]) -> str:
        portal.records[recid] = record(recid, entries)
        return recid

    small_rec = rec(
        f"{tag}1", [{"uri": root(n), "size": s, "checksum": c} for n, s, c in files.small]
    )
    large_rec = rec(
        f"{tag}2", [{"uri": root(large_name), "size": large_size, "checksum": large_sum}]
    )
    cod_rec = rec(
        f"{tag}3",
        [
            {"uri": f"root://eospublic.cern.ch//eos/bench/{n}", "size": s, "checksum": c}
            for n, s, c in files.small
        ],
    )
    env = dict(
        os.environ,
        ODRUN_CACHE_DIR=str(bench.cache),
        ODRUN_PORTAL_URL=ends.portal,
        ODRUN_PROTOCOL_MAP=f"{ends.root}={ends.http}",
        PYTHONPATH=str(HERE.parent),
        # an installed odrun has its bytecode: compile it once into a cache of the
        # benchmark's own (this sandbox sets PYTHONDONTWRITEBYTECODE, so without it every
        # odrun process would compile every module it imports)
        PYTHONPYCACHEPREFIX=str(bench.work / "pyc"),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(HERE.parent / "odrun")], env=env, check=True
    )
    cod_env = dict(env, ODRUN_PROTOCOL_MAP=f"root://eospublic.cern.ch={ends.portal}")

    def odrun(recid: str, protocol: str, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "odrun",
            "fetch",
            recid,
            "--dest",
            str(bench.dest),
            "--protocol",
            protocol,
            "--jobs",
            str(JOBS),
            "--json",
            *extra,
        ]

    many = (
        f"{small_n} x {small_size // MIB} MiB"
        if small_size % MIB == 0
        else f"{small_n} x {small_size / MB:g} MB"
    )
    one = f"1 x {large_size / MIB:g} MiB"
    listing = bench.work / f"{tag}-urls.txt"
    listing.write_text("".join(http(n) + "\n" for n, _, _ in files.small))
    xrdcp_many = [
        "xrdcp",
        "-f",
        "-s",
        "--parallel",
        str(JOBS),
        *(root(n) for n, _, _ in files.small),
        str(bench.dest) + "/",
    ]
    aria_many = [
        "aria2c",
        "-q",
        "-j",
        str(JOBS),
        "-x",
        "1",
        "-i",
        str(listing),
        "-d",
        str(bench.dest),
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        # XrdHttp 5.5 answers a rare spurious 404 under parallel load: let aria2c retry it
        "--max-file-not-found=3",
        "--max-tries=3",
    ]
    cod_cmd = (
        [
            str(cod),
            "download-files",
            "--recid",
            cod_rec,
            "--server",
            ends.portal,
            "--protocol",
            "http",
        ]
        if cod
        else ["cernopendata-client (no venv: --make-cod-venv)"]
    )
    streams = ["--streams", str(JOBS)] if wan_mode else []
    rows.append(
        compare(
            bench,
            suite,
            many,
            f"xrdcp --parallel {JOBS} (root://)",
            1.0,
            xrdcp_many,
            odrun(small_rec, "root"),
            env,
        )
    )
    rows.append(
        compare(
            bench,
            suite,
            many,
            f"aria2c -j {JOBS} (HTTP)",
            1.0,
            aria_many,
            odrun(small_rec, "https"),
            env,
        )
    )
    rows.append(
        compare(
            bench,
            suite,
            many,
            "cernopendata-client (HTTP, portal)",
            10.0 if wan_mode else 5.0,
            cod_cmd,
            odrun(cod_rec, "https"),
            cod_env,
        )
    )
    dest_large = str(bench.dest / "large.bin")
    if wan_mode:
        rows.append(
            compare(
                bench,
                suite,
                one,
                f"aria2c -x {JOBS} -s {JOBS} (HTTP)",
                1.0,
                [
                    "aria2c",
                    "-q",
                    "-x",
                    str(JOBS),
                    "-s",
                    str(JOBS),
                    "-d",
                    str(bench.dest),
                    "-o",
                    "large.bin",
                    "--allow-overwrite=true",
                    http(large_name),
                ],
                odrun(large_rec, "https", *streams),
                env,
            )
        )
        rows.append(
            compare(
                bench,
                suite,
                one,
                f"xrdcp --streams {JOBS} --cksum (root://)",
                1.0,
                [
                    "xrdcp",
                    "-f",
                    "-s",
                    "--streams",
                    str(JOBS),
                    "--cksum",
                    large_sum,
                    root(large_name),
                    dest_large,
                ],
                odrun(large_rec, "root", *streams),
                env,
            )
        )
        rows.append(
            compare(
                bench,
                suite,
                one,
                "curl, one stream (HTTP)",
                3.0,
                ["curl", "-sf", "-o", dest_large, http(large_name)],
                odrun(large_rec, "https", *streams),
                env,
            )
        )
    else:
        rows.append(
            compare(
                bench,
                suite,
                one,
                "xrdcp (root://)",
                1.0,
                ["xrdcp", "-f", "-s", root(large_name), dest_large],
                odrun(large_rec, "root"),
                env,
            )
        )
        rows.append(
            compare(
                bench,
                suite,
                one,
                "curl (HTTP, XrdHttp)",
                0.95,
                ["curl", "-sf", "-o", dest_large, http(large_name)],
                odrun(large_rec, "https"),
                env,
            )
        )
    return rows


@contextmanager
def proxied(xrd: Any, portal: Portal) -> Iterator[Endpoints]:
    """The servers behind the WAN proxies, on a shaped loopback."""
    wan.shape_loopback(1000)
    proxies = [wan.DelayProxy(port) for port in (xrd.port, xrd.http_port, portal.server_address[1])]
    try:
        r, h, p = (f"127.0.0.1:{x.port}" for x in proxies)
        yield Endpoints(f"root://{r}", f"http://{h}", f"http://{p}")
    finally:
        for proxy in proxies:
            proxy.close()
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)


def cod_binary(make: bool) -> Path | None:
    binary = COD_VENV / "bin" / "cernopendata-client"
    if not binary.exists() and make:
        subprocess.run([sys.executable, "-m", "venv", str(COD_VENV)], check=True)
        subprocess.run(
            [str(COD_VENV / "bin" / "pip"), "install", "-q", f"cernopendata-client=={COD_VERSION}"],
            check=True,
        )
    return binary if binary.exists() else None


def markdown(rows: list[Row]) -> str:
    """The rows as the Markdown table docs/benchmarks.md shows."""

    def num(v: float | None, fmt: str = ".2f") -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        "| suite | workload | peer | peer s | odrun s | ratio | goal | | CPU s peer / odrun |",
        "|---|---|---|--:|--:|--:|--:|---|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.suite} | {r.workload} | {r.peer} | {num(r.peer_s)} | {num(r.odrun_s)} | "
            f"{num(r.ratio)} | >= {r.goal:g} | {r.verdict} | "
            f"{num(r.peer_cpu)} / {num(r.odrun_cpu)} |"
        )
    return "\n".join(lines)


def chart(rows: list[Row], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no chart: matplotlib missing (pip install 'odrun[bench]'); not written: {path}")
        return
    shown = [r for r in rows if r.ratio is not None]
    if not shown:
        print(f"no chart: no row has a ratio; not written: {path}")
        return
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.2))
    labels = [f"{r.suite}: {r.workload} vs {r.peer}" for r in shown]
    ratios = [r.ratio or 0 for r in shown]
    colors = ["tab:green" if r.verdict == "met" else "tab:red" for r in shown]
    ax.barh(range(len(shown)), ratios, color=colors)
    ax.scatter(
        [r.goal for r in shown],
        range(len(shown)),
        marker="|",
        s=300,
        color="black",
        label="goal",
        zorder=3,
    )
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("other tool's time / odrun's time (> 1: odrun faster; log scale)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--suite", choices=["all", "loopback", "wan"], default="all")
    parser.add_argument("--small-count", type=int, default=None, help="[loopback 300, wan 200]")
    parser.add_argument("--small-mb", type=float, default=None, help="[loopback 1.048576, wan 5]")
    parser.add_argument("--large-mb", type=float, default=None, help="MiB [loopback 512, wan 2048]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("fetch-benchmark.json"))
    parser.add_argument("--png", type=Path, default=None, help="[no chart]")
    parser.add_argument("--make-cod-venv", action="store_true")
    parser.add_argument("--only", default="", help="run only rows whose peer contains this")
    parser.add_argument("--table-from", type=Path, help="print a results JSON as Markdown; exit")
    args = parser.parse_args()
    if args.table_from:
        data = json.loads(args.table_from.read_text())
        fields = set(Row.__dataclass_fields__)
        rows = [Row(**{k: v for k, v in r.items() if k in fields}) for r in data["rows"]]
        print(markdown(rows))
        return 0
    if not wan.in_namespace():  # everything runs in a namespace of its own
        return wan.reexec_in_namespace([sys.executable, __file__, *sys.argv[1:]])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    reason = xrootd_server.unavailable_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    ONLY[0] = args.only
    cod = cod_binary(args.make_cod_venv)
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="odrun-bench-", dir="/var/tmp"))
    rows: list[Row] = []
    started = time.time()
    try:
        with xrootd_server.run_xrootd(work / "xrootd") as xrd:
            eos = work / "eos" / "eos"
            eos.mkdir(parents=True)
            (eos / "bench").symlink_to(xrd.data)
            portal = Portal({}, eos)
            threading.Thread(target=portal.serve_forever, daemon=True).start()
            bench = Bench(work, args.repeat)
            print(HEADER, flush=True)
            for suite in ("loopback", "wan"):
                if args.suite not in ("all", suite):
                    continue
                is_wan = suite == "wan"
                files = make_files(
                    xrd,
                    suite,
                    args.small_count or (200 if is_wan else 300),
                    int((args.small_mb or (5 if is_wan else 1.048576)) * MB),
                    int((args.large_mb or (2048 if is_wan else 512)) * MIB),
                )
                if is_wan:
                    with proxied(xrd, portal) as ends:
                        rows += run_suite(suite, bench, files, ends, portal, cod, True)
                else:
                    ends = Endpoints(xrd.root_url, xrd.http_url, portal.url)
                    rows += run_suite(suite, bench, files, ends, portal, cod, False)
                shutil.rmtree(xrd.data / suite, ignore_errors=True)
            portal.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "load_average_at_start": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "rows": [r.to_dict() for r in rows],
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(rows))
    print(f"results: {args.json}")
    if args.png:
        chart(rows, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
