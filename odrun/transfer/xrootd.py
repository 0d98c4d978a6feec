"""``root://`` transport: the XRootD Python bindings (extra ``odrun[xrootd]``), else ``xrdcp``.

XRootD status codes are translated into odrun errors in exactly one place,
:func:`_xrd_error`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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

    def available(self) -> bool:
        return self.client is not None

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        return self._read(uri, offset, None, size)

    def read_range(self, uri: str, start: int, stop: int, size: int) -> Iterator[bytes]:
        """Yield bytes ``start..stop-1`` of a file of ``size`` bytes (multi-stream)."""
        return self._read(uri, start, stop, size)

    def _read(self, uri: str, offset: int, stop: int | None, size: int | None) -> Iterator[bytes]:
        if self.client is None:
            raise TransportError(f"{uri}: no XRootD bindings", hint=INSTALL_HINT)
        from XRootD.client.flags import OpenFlags  # noqa: PLC0415 - optional dependency

        timeout = max(1, int(self.settings.timeout))
        handle = self.client.File()
        status, _ = handle.open(uri, OpenFlags.READ, timeout=timeout)
        if not status.ok:
            raise _xrd_error(status, uri, "open")
        try:
            status, info = handle.stat(timeout=timeout)
            if not status.ok:
                raise _xrd_error(status, uri, "stat")
            actual = int(info.size)
            if size is not None and actual != size:
                raise length_mismatch(uri, actual, size)  # another file: never resumed from
            size = actual
            end = size if stop is None else min(stop, size)
            while offset < end:
                status, data = handle.read(offset, min(CHUNK, end - offset), timeout=timeout)
                if not status.ok:
                    raise _xrd_error(status, uri, "read")
                if not data:
                    raise TransientError(f"{uri}: server returned no data at offset {offset}")
                offset += len(data)
                yield data
        finally:
            handle.close(timeout=timeout)


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
