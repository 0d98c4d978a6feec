"""``root://`` transport: the XRootD Python bindings (extra ``odrun[xrootd]``), else ``xrdcp``.

XRootD status codes are translated into odrun errors in exactly one place,
:func:`_xrd_error`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from odrun.errors import NotFoundError, OdrunError, TransientError, TransportError
from odrun.settings import Settings
from odrun.transfer.base import CHUNK, length_mismatch, skip_prefix

INSTALL_HINT = "install the XRootD bindings with: pip install 'odrun[xrootd]'"

# kXR error numbers (XProtocol.hh) that no retry will cure
_KXR_NOT_FOUND = 3011
_KXR_PERMANENT = {3000, 3001, 3002, 3003, 3004, 3006, 3008, 3009, 3010, 3013, 3016, 3017}


def bindings() -> Any | None:
    """The ``XRootD.client`` module, or None when the bindings are not installed."""
    try:
        from XRootD import client  # noqa: PLC0415 - optional dependency
    except ImportError:
        return None
    return client


#: XRootD files this process opened and has not closed yet (see :func:`finish_process`)
_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()


def finish_process() -> None:
    """End a process whose XRootD files all came from here (the CLI): close any still
    open and stop XrdCl's threads now, instead of the bindings' exit handler.

    That handler looks at every object on the heap (``gc.get_objects()``) for an open
    file to close before it stops the threads: 0.1 s and more per process, growing
    with the record in memory. A library user's process keeps the handler (its own
    files may be open). Does nothing when the bindings were not loaded, or are a
    version without that handler.
    """
    finalizer = sys.modules.get("XRootD.client.finalize")
    if finalizer is None:
        return
    handler = getattr(finalizer, "finalize", None)
    stop = getattr(getattr(finalizer, "client", None), "__XrdCl_Stop_Threads", None)
    if handler is None or stop is None:
        return
    for handle in list(_OPEN):
        with contextlib.suppress(Exception):
            if handle.is_open():
                handle.close(timeout=5)
    atexit.unregister(handler)
    stop()


def _xrd_error(status: Any, uri: str, action: str) -> OdrunError:
    """The one translation of an XRootD status into an odrun error."""
    errno = int(getattr(status, "errno", 0) or 0)
    message = str(getattr(status, "message", "") or "").strip()
    text = f"{uri}: {action} failed: {message or 'XRootD error'}"
    if errno == _KXR_NOT_FOUND:
        return NotFoundError(f"{uri}: no such file on the XRootD server")
    if errno in _KXR_PERMANENT:
        return TransportError(text)
    return TransientError(text)


class XRootDTransport:
    """Reads through the bindings' ``File.read`` at explicit offsets (resume is free)."""

    name = "xrootd"
    schemes = frozenset({"root", "roots"})

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # XRootD's own defaults wait minutes for a dead server; bound them by our
        # timeout unless the user tuned them (read when the bindings load)
        os.environ.setdefault("XRD_CONNECTIONWINDOW", str(max(1, int(settings.timeout) // 3)))
        os.environ.setdefault("XRD_CONNECTIONRETRY", "2")
        self.client = bindings()
        self._lock = threading.Lock()
        self._slots: dict[int, int] = {}
        #: per thread: (uri, size, File) kept open between ranges (see :meth:`release`)
        self._held = threading.local()

    def available(self) -> bool:
        return self.client is not None

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        """The file from ``offset``; each calling thread on a connection of its own (see below)."""
        return self._read(uri, offset, None, size)

    def read_range(self, uri: str, start: int, stop: int, size: int) -> Iterator[bytes]:
        """Yield bytes ``start..stop-1`` of a file of ``size`` bytes (multi-stream).

        XrdCl sends every file of one server through one TCP connection (a
        "channel" per user@host:port), so concurrent transfers (``--jobs``) and
        ranges (``--streams``) would share one connection's window: over a WAN,
        one connection's rate for all of them. Each calling thread gets a channel
        of its own through a login name of its own (``odrun-<n>@``), as
        ``xrdcp --streams`` gets substreams. A login name in the URI is kept.
        """
        return self._read(uri, start, stop, size, keep=True)

    def release(self, uri: str) -> None:
        """Close the file this thread kept open for ranges of ``uri`` (a stream ends).

        A stream reads its ranges through one open file: over a WAN an open and
        a close are a round trip of idle link each, per range.
        """
        held = getattr(self._held, "file", None)
        if held is not None and held[0] == uri:
            self._held.file = None
            _close(held[2], max(1, int(self.settings.timeout)))

    def _slot(self) -> int:
        ident = threading.get_ident()
        with self._lock:
            return self._slots.setdefault(ident, len(self._slots) % 64)

    def _read(
        self, uri: str, offset: int, stop: int | None, size: int | None, keep: bool = False
    ) -> Iterator[bytes]:
        timeout = max(1, int(self.settings.timeout))
        held = getattr(self._held, "file", None) if keep else None
        if held is not None and held[:2] == (uri, size):
            handle, size = held[2], held[1]
        else:
            if held is not None:
                self.release(held[0])
            handle, size = self._open(uri, size, timeout)
            if keep:
                self._held.file = (uri, size, handle)
        done = False
        try:
            end = size if stop is None else min(stop, size)
            yield from _pipelined(handle, uri, offset, end, timeout)
            done = True
        finally:
            if not (keep and done):  # a failed or abandoned read: the file is not reused
                if keep:
                    self._held.file = None
                _close(handle, timeout)

    def _open(self, uri: str, size: int | None, timeout: int) -> tuple[Any, int]:
        """An open ``File`` of ``uri`` and its size, which must be ``size`` when given."""
        if self.client is None:
            raise TransportError(f"{uri}: no XRootD bindings", hint=INSTALL_HINT)
        from XRootD.client.flags import OpenFlags  # noqa: PLC0415 - optional dependency

        handle = self.client.File()
        _OPEN.add(handle)
        # the URI as given in every message; the channel's login name only on the wire
        status, _ = handle.open(_channel(uri, self._slot()), OpenFlags.READ, timeout=timeout)
        if not status.ok:
            _OPEN.discard(handle)
            raise _xrd_error(status, uri, "open")
        try:
            status, info = handle.stat(timeout=timeout)
            if not status.ok:
                raise _xrd_error(status, uri, "stat")
            actual = int(info.size)
            if size is not None and actual != size:
                raise length_mismatch(uri, actual, size)  # another file: never resumed from
        except BaseException:
            _close(handle, timeout)
            raise
        return handle, actual


def _close(handle: Any, timeout: int) -> None:
    try:
        handle.close(timeout=timeout)
    finally:
        _OPEN.discard(handle)


def _channel(uri: str, slot: int) -> str:
    """``uri`` with the login name ``odrun-<slot>`` (XrdCl: a connection of its own)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" in rest.split("/", 1)[0]:
        return uri  # a login name of the user's own: keep it
    return f"{scheme}://odrun-{slot}@{rest}"


#: bytes per read: small enough that a read's bytes are still in the CPU cache when
#: they are hashed and written (4 MiB reads made the copy into the page cache cost 43% of
#: a 512 MiB fetch's CPU, 1 MiB reads 4%: docs/benchmarks.md)
READ_SIZE = 1024 * 1024
#: reads in flight on one open file: 16 x 1 MiB, more than a 1 Gbit/s link with a
#: 50 ms round trip holds, so the connection never idles waiting for the next request
READ_DEPTH = 16


def _pipelined(handle: Any, uri: str, offset: int, end: int, timeout: int) -> Iterator[bytes]:
    """Yield bytes ``offset..end-1`` of an open file, ``READ_DEPTH`` reads in flight, in order.

    One read at a time costs a round trip per 4 MiB (over a WAN: most of the
    time). A short read (the file shrank) restarts the pipeline after it; reads
    still in flight are waited for before the file is closed.
    """
    pending: collections.deque[tuple[int, int, queue.SimpleQueue[tuple[Any, Any]]]]
    pending = collections.deque()
    issued = offset

    def issue() -> None:
        nonlocal issued
        length = min(READ_SIZE, end - issued)
        box: queue.SimpleQueue[tuple[Any, Any]] = queue.SimpleQueue()
        status = handle.read(
            issued, length, timeout=timeout, callback=lambda st, data, _hosts: box.put((st, data))
        )
        if not status.ok:
            raise _xrd_error(status, uri, "read")
        pending.append((issued, length, box))
        issued += length

    try:
        while offset < end:
            while len(pending) < READ_DEPTH and issued < end:
                issue()
            _, length, box = pending.popleft()
            try:
                status, data = box.get(timeout=timeout + 5)
            except queue.Empty:
                raise TransientError(f"{uri}: no answer to a read at offset {offset}") from None
            if not status.ok:
                raise _xrd_error(status, uri, "read")
            if not data:
                raise TransientError(f"{uri}: server returned no data at offset {offset}")
            offset += len(data)
            yield data
            if len(data) < length:  # later reads were issued at the wrong offsets
                _drain(pending, timeout)
                issued = offset
    finally:
        _drain(pending, timeout)


def _drain(
    pending: collections.deque[tuple[int, int, queue.SimpleQueue[Any]]], timeout: int
) -> None:
    """Wait for reads in flight (their callbacks use the file handle), dropping their data."""
    while pending:
        _, _, box = pending.popleft()
        with contextlib.suppress(queue.Empty):
            box.get(timeout=timeout + 5)


class XrdcpTransport:
    """Fallback when the bindings are missing: ``xrdcp URI -`` streamed through a pipe.

    xrdcp cannot start at an offset, so a resumed transfer re-reads (and drops)
    the bytes the part file already holds.
    """

    name = "xrdcp"
    schemes = frozenset({"root", "roots"})

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.binary = shutil.which("xrdcp")

    def available(self) -> bool:
        return self.binary is not None

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        if self.binary is None:
            raise TransportError(f"{uri}: neither XRootD bindings nor xrdcp", hint=INSTALL_HINT)
        cmd = [self.binary, "--silent", "--nopbar", uri, "-"]
        with (
            tempfile.TemporaryFile() as errors,
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors) as proc,
        ):
            stdout = proc.stdout
            assert stdout is not None
            finished = False
            try:
                yield from skip_prefix(iter(lambda: stdout.read(CHUNK), b""), offset)
                finished = True
            finally:
                if not finished:  # the consumer stopped early (error, interrupt)
                    proc.kill()
            code = proc.wait()
            errors.seek(0)
            err = errors.read().decode(errors="replace").strip()
        if code == 54 or "No such file" in err:
            raise NotFoundError(f"{uri}: no such file on the XRootD server")
        if code != 0:
            last = err.splitlines()[-1] if err else f"exit code {code}"
            raise TransientError(f"{uri}: xrdcp failed: {last}")
