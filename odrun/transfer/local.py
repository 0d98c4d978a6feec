"""``file://`` transport: local files and mirrors (``odrun mirror --with-files``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

from odrun.errors import NotFoundError, TransportError
from odrun.transfer.base import CHUNK
from odrun.untrusted import split_url


def file_path(uri: str) -> Path:
    split = split_url(uri)
    if split is None or split.netloc not in ("", "localhost"):
        raise TransportError(f"{uri}: file:// URIs must be local (file:///path)")
    return Path(unquote(split.path))


class FileTransport:
    name = "file"
    schemes = frozenset({"file"})

    def available(self) -> bool:
        return True

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        path = file_path(uri)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"{uri}: no such file") from None
        except OSError as exc:
            raise TransportError(f"{uri}: cannot read: {exc.strerror}") from None
        with fh:
            fh.seek(offset)
            while chunk := fh.read(CHUNK):
                yield chunk
