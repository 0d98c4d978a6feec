"""An emulated WAN on one machine: a network namespace, ``tc tbf`` and a delaying TCP proxy.

The kernel here has no ``netem``; what it has is enough for a faithful-enough model
of "EOS from a laptop or a VM":

- :func:`reexec_in_namespace` runs a command in a fresh network namespace
  (``unshare --net``, root) whose loopback is the only link, so no other
  engineer's traffic shares it and the real network is not reachable;
- :func:`shape_loopback` puts a token-bucket filter (``tc qdisc tbf``) on that
  loopback: the *total* rate. Every proxied byte crosses ``lo`` twice (server to
  proxy, proxy to client), so the filter runs at twice the wanted total;
- :class:`DelayProxy` is a TCP proxy of our own in front of each server port: it
  holds every byte ``delay`` seconds in each direction (25 ms: a 50 ms round trip)
  and paces each connection, each direction, to ``rate`` bytes per second (100
  Mbit/s). A new connection is also held one round trip before its first byte
  goes through (TCP's handshake). Bytes in flight per direction are bounded by
  ``window`` (a TCP receive window: 4 MiB, Linux's default ``tcp_rmem`` maximum
  is 6 MiB): a connection reaches ``min(rate, window / RTT)``.

What it does not model (see docs/benchmarks.md): packet loss, TCP slow start
and congestion control on the delayed path (the client's and the server's TCP
see loopback, the proxy's buffer plays the network), jitter, and TLS.
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

INSIDE = "ODRUN_BENCH_IN_NETNS"
MBIT = 1_000_000 / 8  # bytes per second in one Mbit/s


def reexec_in_namespace(argv: Sequence[str]) -> int:
    """Run ``argv`` (a Python command line) in a new network namespace; its exit code."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        raise RuntimeError("the WAN suite needs root and unshare (util-linux)")
    env = dict(os.environ, **{INSIDE: "1"})
    return subprocess.call([unshare, "--net", "--", *argv], env=env)


def in_namespace() -> bool:
    return os.environ.get(INSIDE) == "1"


def shape_loopback(total_mbit: float) -> None:
    """Bring ``lo`` up and cap it at ``total_mbit`` (per proxied byte: see the module doc)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    rate = f"{int(total_mbit * 2)}mbit"
    subprocess.run(
        ["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", rate,
         "burst", "1mb", "latency", "50ms"],
        check=True,
    )  # fmt: skip


class _Direction:
    """One direction of one connection: bytes wait ``delay``, then leave at ``rate``."""

    def __init__(self, src: socket.socket, dst: socket.socket, proxy: DelayProxy, key: int) -> None:
        self.src, self.dst, self.proxy, self.key = src, dst, proxy, key
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued = 0
        self.cond = threading.Condition()
        self.done = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.src.recv(256 * 1024)
            except OSError:
                data = b""
            due = time.monotonic() + self.proxy.delay
            with self.cond:
                while data and self.queued >= self.proxy.window and not self.done.is_set():
                    self.cond.wait(0.5)
                self.queue.append((due, data))
                self.queued += len(data)
                self.cond.notify_all()
            if not data:
                return

    def _write(self) -> None:
        free_at = 0.0  # when this direction may send again (pacing at ``rate``)
        step = 64 * 1024
        try:
            while True:
                with self.cond:
                    while not self.queue:
                        self.cond.wait()
                    due, data = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the emulated propagation delay
                if not data:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
                for pos in range(0, len(data), step):
                    piece = data[pos : pos + step]
                    now = time.monotonic()
                    if free_at > now:
                        time.sleep(free_at - now)  # pacing
                    self.dst.sendall(piece)
                    free_at = max(free_at, now) + len(piece) / self.proxy.rate
                with self.cond:
                    self.queued -= len(data)
                    self.cond.notify_all()
        except OSError:
            pass
        finally:
            self.done.set()
            with self.cond:
                self.cond.notify_all()
            self.proxy.closed(self)


class DelayProxy:
    """Listen on 127.0.0.1:``port`` (0: any), forward to ``upstream`` with delay and pacing."""

    def __init__(
        self,
        upstream: int,
        *,
        delay: float = 0.025,
        rate: float = 100 * MBIT,
        window: int = 4 * 1024 * 1024,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = (host, upstream)
        self.delay, self.rate, self.window = delay, rate, window
        self.listener = socket.create_server((host, 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._lock = threading.Lock()
        self._open: dict[int, tuple[socket.socket, socket.socket, int]] = {}
        threading.Thread(target=self._accept, daemon=True, name="wan-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        time.sleep(2 * self.delay)  # the handshake's round trip
        with self._lock:
            self.connections += 1
            self._open[id(client)] = (client, server, 2)
        key = id(client)
        _Direction(client, server, self, key).start()
        _Direction(server, client, self, key).start()

    def closed(self, direction: _Direction) -> None:
        key = direction.key
        with self._lock:
            client, server, left = self._open[key]
            if left > 1:
                self._open[key] = (client, server, left - 1)
                return
            del self._open[key]
        for sock in (client, server):
            sock.close()

    def close(self) -> None:
        self.listener.close()
        with self._lock:
            socks = [s for c, s, _ in self._open.values() for s in (c, s)]
        for sock in socks:
            sock.close()


def main() -> int:
    """Self-check: round trip and one connection's rate through a proxy, in a namespace."""
    if not in_namespace():
        return reexec_in_namespace([sys.executable, __file__])
    shape_loopback(1000)
    sink = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = sink.accept()
        with conn:
            conn.recv(1)
            conn.sendall(b"x")  # a round trip
            conn.recv(1)
            conn.sendall(b"\0" * 5_000_000)

    threading.Thread(target=serve, daemon=True).start()
    proxy = DelayProxy(sink.getsockname()[1])
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        start = time.monotonic()
        sock.sendall(b"?")
        sock.recv(1)
        rtt = time.monotonic() - start
        start = time.monotonic()
        sock.sendall(b"?")
        got = 0
        while got < 5_000_000:
            got += len(sock.recv(1 << 20))
        rate = got / (time.monotonic() - start) / MBIT
    print(f"first round trip {rtt * 1000:.0f} ms (handshake included), {rate:.0f} Mbit/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
