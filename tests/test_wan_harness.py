"""The emulated-WAN harness (benchmarks/wan.py) and a small run of the fetch benchmark's WAN suite.

Kept in the test suite so the harness cannot rot: CI runs the WAN suite with a few
small files (< 60 s) and checks that every peer and odrun ran through the proxies.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import wan  # noqa: E402

import xrootd_server  # noqa: E402


def _sink(payload: int) -> tuple[socket.socket, threading.Thread]:
    """A server that answers one byte, then sends ``payload`` bytes after a second request."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1)
            conn.sendall(b"x")
            conn.recv(1)
            conn.sendall(b"\0" * payload)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_proxy_delays_each_way_and_paces_each_connection() -> None:
    payload = 1_000_000
    server, thread = _sink(payload)
    proxy = wan.DelayProxy(server.getsockname()[1], delay=0.025, rate=10 * wan.MBIT)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sock.sendall(b"?")
            sock.recv(1)  # the handshake's round trip, then this one
            start = time.monotonic()
            sock.sendall(b"?")
            first = sock.recv(1)
            rtt = time.monotonic() - start
            got = len(first)
            while got < payload:
                data = sock.recv(1 << 20)
                assert data, "proxy closed early"
                got += len(data)
            seconds = time.monotonic() - start
    finally:
        proxy.close()
        server.close()
        thread.join(timeout=10)
    assert rtt >= 0.05  # 25 ms each way
    assert seconds >= 0.05 + payload / (10 * wan.MBIT) * 0.9  # paced at 10 Mbit/s
    assert proxy.connections == 1


def test_small_wan_suite_runs_every_peer(tmp_path: Path) -> None:
    reason = xrootd_server.unavailable_reason()
    if reason or os.geteuid() != 0:
        pytest.skip(reason or "needs root (network namespace)")
    out = tmp_path / "wan.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fetch.py"), "--suite", "wan",
         "--small-count", "4", "--small-mb", "1", "--large-mb", "8", "--repeat", "1",
         "--json", str(out), "--png", str(tmp_path / "wan.png")],
        capture_output=True, text=True, timeout=90, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.monotonic() - started < 60
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert {r["suite"] for r in rows} == {"wan"}
    assert len(rows) == 6
    for row in rows:
        assert row["odrun_s"] is not None, row  # odrun ran through the proxies every time
        assert row["goal"] > 0
        assert row["verdict"] in ("met", "NOT met", "skipped")
        assert f"{row['verdict']}" in done.stdout
        if "cernopendata-client" not in row["peer"]:
            assert row["peer_s"] is not None, row
            assert row["verdict"] in ("met", "NOT met")
    # 4 x 1 MB through a 100 Mbit/s link with 50 ms round trips cannot take less than that
    assert all(r["odrun_s"] > 0.1 for r in rows)
