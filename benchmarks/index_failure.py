"""Benchmark: a record whose index files cannot be read, called twice (issue 14).

Serves the fixture record 17 (three raw index files) from the test portal
(tests/portal_server.py) and maps its root:// index URIs to a closed port on
127.0.0.1, so every index read fails. Times whole ``odrun info`` / ``files`` /
``cite`` processes: the first call pays the retries (1 + ODRUN_RETRIES attempts
with backoff), later calls within ODRUN_INDEX_FAILURE_TTL fail fast; ``cite``
never reads an index.

Run: python benchmarks/index_failure.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import portal_server  # noqa: E402


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    with portal_server.serve() as server, tempfile.TemporaryDirectory() as cache:
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            ODRUN_CACHE_DIR=cache,
            ODRUN_PROTOCOL_MAP=f"root://eospublic.cern.ch=http://127.0.0.1:{closed_port()}",
        )
        odrun = [sys.executable, "-m", "odrun", "--portal", server.url]
        for label, args in [
            ("info 17 (first: retries)", ["info", "17"]),
            ("info 17 (failure remembered)", ["info", "17"]),
            ("files 17 (remembered, exit 6)", ["files", "17"]),
            ("cite 17 (reads no index)", ["cite", "17"]),
        ]:
            start = time.perf_counter()
            proc = subprocess.run(
                [*odrun, *args], env=env, capture_output=True, cwd=REPO, check=False
            )
            print(
                f"  odrun {label:<32} {time.perf_counter() - start:6.2f} s  exit {proc.returncode}"
            )


if __name__ == "__main__":
    main()
