"""Fetch a record's files: plan candidates, run transfers in parallel, report per-file state.

``fetch_files`` streams the plan through a bounded thread pool (at most
``jobs * 4`` files in flight), so memory stays flat for records with 100,000
files. Each file ends in one state: ``downloaded``, ``cached`` (already in the
shared cache, linked), ``present`` (already at the destination), ``failed``
(with the reason and the exit code of its error) or ``planned`` (dry run).
A file in place is ``verified`` (size and checksum) or, when the record declares
no checksum, ``unverified`` (its size alone was checked): ``integrity``.

Two files never share a destination path: the first keeps it, a later one whose
path is the same (also case-only, when the destination's filesystem ignores
case) or is a folder of the other (or the other way round) fails with a
MetadataError and nothing is overwritten. (``parse_record`` already gives a
record's files distinct paths; this guards every other file list.)

A full cache or destination fails the file with a DiskFullError (exit 13); a
file already in place is never failed because the cache could not be written.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from odrun._fs import confine
from odrun.checksum import checksum_file
from odrun.errors import (
    CancelledError,
    ChecksumError,
    DiskFullError,
    MetadataError,
    NotFoundError,
    OdrunError,
    PartialError,
    TransportError,
)
from odrun.records.model import RecordFile
from odrun.records.paths import PathClaims
from odrun.settings import Settings
from odrun.transfer.engine import Engine
from odrun.transfer.http import HttpTransport
from odrun.transfer.local import FileTransport
from odrun.transfer.space import disk_full, is_disk_full
from odrun.transfer.store import FileStore, cache_key
from odrun.transfer.xrootd import XrdcpTransport, XRootDTransport
from odrun.urls import scheme_of

ProtocolChoice = Literal["auto", "root", "https"]
DEFAULT_JOBS = 4


class State(str, enum.Enum):
    DOWNLOADED = "downloaded"
    CACHED = "cached"
    PRESENT = "present"
    FAILED = "failed"
    PLANNED = "planned"


@dataclass
class FileResult:
    path: str
    uri: str
    size: int | None
    state: State
    source: str | None = None
    transport: str | None = None
    reason: str | None = None
    exit_code: int = 0
    bytes_transferred: int = 0
    resumed_from: int = 0
    seconds: float = 0.0
    #: for a file in place: "verified" (size and checksum) or "unverified" (no checksum)
    integrity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "uri": self.uri,
            "size": self.size,
            "state": self.state.value,
            "source": self.source,
            "transport": self.transport,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "bytes_transferred": self.bytes_transferred,
            "resumed_from": self.resumed_from,
            "seconds": round(self.seconds, 3),
            "integrity": self.integrity,
        }


@dataclass
class FetchReport:
    dest: Path
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, state: State) -> int:
        return sum(1 for r in self.results if r.state is state)

    @property
    def bytes_transferred(self) -> int:
        return sum(r.bytes_transferred for r in self.results)

    @property
    def unverified(self) -> int:
        """Files in place whose record declares no checksum (their size alone was checked)."""
        return sum(1 for r in self.results if r.integrity == "unverified")

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.state is State.FAILED]

    @property
    def exit_code(self) -> int:
        """0 all done; 6 some failed; if all failed, their common code (else 5)."""
        failed = self.failed
        if not failed:
            return 0
        if len(failed) < len(self.results):
            return PartialError.exit_code
        codes = {r.exit_code for r in failed}
        return codes.pop() if len(codes) == 1 else TransportError.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "files": len(self.results),
            "downloaded": self.count(State.DOWNLOADED),
            "cached": self.count(State.CACHED),
            "present": self.count(State.PRESENT),
            "failed": self.count(State.FAILED),
            "planned": self.count(State.PLANNED),
            "unverified": self.unverified,
            "bytes_transferred": self.bytes_transferred,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "results": [r.to_dict() for r in self.results],
        }


class Progress(Protocol):
    def start(self, f: RecordFile) -> None: ...
    def position(self, f: RecordFile, done: int) -> None: ...
    def finish(self, f: RecordFile, result: FileResult) -> None: ...


class NoProgress:
    def start(self, f: RecordFile) -> None:
        pass

    def position(self, f: RecordFile, done: int) -> None:
        pass

    def finish(self, f: RecordFile, result: FileResult) -> None:
        pass


class Fetcher:
    """Owns the transports and the shared cache for one or many fetches."""

    def __init__(self, settings: Settings, protocol: ProtocolChoice = "auto") -> None:
        self.settings = settings
        self.protocol = protocol
        self.http = HttpTransport(settings)
        self.store = FileStore(settings.cache_dir)
        root = XRootDTransport(settings)
        self.engine = Engine(
            settings,
            self.store,
            [root if root.available() else XrdcpTransport(settings), self.http, FileTransport()],
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root_available(self) -> bool:
        return any("root" in t.schemes for t in self.engine.transports)

    def candidates(self, uri: str) -> list[str]:
        """The URIs to try for one file, in order, for the chosen protocol."""
        pmap = self.settings.protocol_map
        if scheme_of(uri) == "file":
            return [uri]
        as_root = pmap.rewrite(uri, "root")
        as_http = pmap.rewrite(uri, "https")
        if self.protocol == "root":
            return [as_root]
        if self.protocol == "https":
            return [as_http]
        ordered = [as_root, as_http] if self.root_available else [as_http, as_root]
        return list(
            dict.fromkeys(u for u in ordered if scheme_of(u) != "root" or self.root_available)
        ) or [uri]

    def fetch_one(
        self, f: RecordFile, dest: Path, progress: Progress, recid: str | None
    ) -> FileResult:
        started = time.monotonic()
        target = dest / f.path
        key = cache_key(f)
        result = FileResult(f.path, f.uri, f.size, State.CACHED)
        progress.start(f)
        try:
            target = confine(dest, f.path, "record file")  # no link may lead it out of dest
            with self.store.lock(key, self.engine.cancelled):
                cached = self.store.has(key) and self.store.intact(key)
                if self.store.same_file(key, target) and cached:
                    self.store.touch(key)
                elif _verified_at(target, f):
                    result.state = State.PRESENT  # e.g. a copy made across filesystems
                elif cached:
                    self.store.link(key, target)
                    self.store.touch(key)
                else:
                    done = self.engine.download(
                        f,
                        key,
                        self.candidates(f.uri),
                        {"recid": recid, "record_path": f.path, "declared_uri": f.uri},
                        lambda pos: progress.position(f, pos),
                    )
                    self.store.link(key, target)
                    result.state = State.DOWNLOADED
                    result.source, result.transport = done.uri, done.transport
                    result.bytes_transferred, result.resumed_from = done.bytes, done.resumed_from
        except DiskFullError as exc:
            # the cache could not even be locked: a file already in place is still fine
            if _verified_at(target, f):
                result.state = State.PRESENT
            else:
                result.state, result.reason, result.exit_code = (
                    State.FAILED,
                    str(exc),
                    exc.exit_code,
                )
        except OdrunError as exc:
            result.state, result.reason, result.exit_code = State.FAILED, str(exc), exc.exit_code
        except OSError as exc:
            if is_disk_full(exc):
                full = disk_full(exc, Path(exc.filename or target), f.size, f.path)
                result.state, result.reason = State.FAILED, str(full)
                result.exit_code = full.exit_code
            else:
                result.state, result.reason = State.FAILED, f"{target}: {exc.strerror or exc}"
                result.exit_code = TransportError.exit_code
        except Exception as exc:  # one file's bug must not abort the others' transfers
            result.state, result.exit_code = State.FAILED, 1
            result.reason = f"unexpected error: {type(exc).__name__}: {exc}"
        if result.state is not State.FAILED:
            result.integrity = "verified" if f.checksum is not None else "unverified"
        result.seconds = time.monotonic() - started
        progress.finish(f, result)
        return result

    def fetch_files(
        self,
        files: Iterable[RecordFile],
        dest: Path,
        *,
        jobs: int = DEFAULT_JOBS,
        dry_run: bool = False,
        progress: Progress | None = None,
        recid: str | None = None,
    ) -> FetchReport:
        progress = progress or NoProgress()
        files = list(files)
        for f in files:  # every target checked before anything is written (UnsafeMetadataError)
            confine(dest, f.path, "record file")
        self.engine.cancelled.clear()  # a Fetcher may be reused after an interrupt
        report = FetchReport(dest)
        started = time.monotonic()
        claims = PathClaims(case_insensitive=case_insensitive(dest))
        collided: list[FileResult] = []

        def admitted() -> Iterator[RecordFile]:
            for f in files:
                owner = claims.claim(f.path, f.uri)
                if owner is None:
                    yield f
                else:
                    collided.append(_collision(f, owner, dest))

        if dry_run:
            for f in admitted():
                state = State.CACHED if self.store.has(cache_key(f)) else State.PLANNED
                report.results.append(
                    FileResult(f.path, f.uri, f.size, state, source=self.candidates(f.uri)[0])
                )
            report.results += collided
            return report
        for result in _bounded_map(
            lambda f: self.fetch_one(f, dest, progress, recid),
            admitted(),
            max(1, jobs),
            abort=self.engine.cancelled.set,
        ):
            report.results.append(result)
        report.results += collided
        report.results.sort(key=lambda r: r.path)
        report.seconds = time.monotonic() - started
        return report


def _bounded_map(
    fn: Any, items: Iterable[RecordFile], jobs: int, abort: Callable[[], None]
) -> Iterator[FileResult]:
    """Run ``fn`` over ``items`` with ``jobs`` threads and at most ``jobs * 4`` pending.

    On an exception here (Ctrl-C arrives in the main thread) ``abort`` tells the
    running transfers to stop at their next chunk, keeping their part files.
    """
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="odrun-fetch")
    pending: set[Future[FileResult]] = set()
    try:
        for item in items:
            pending.add(pool.submit(fn, item))
            if len(pending) >= jobs * 4:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (fut.result() for fut in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (fut.result() for fut in done)
    except BaseException:
        abort()
        raise
    finally:
        # on an exception, queued files never start; running ones see `cancelled`
        pool.shutdown(wait=True, cancel_futures=True)


def fetch_error(report: FetchReport) -> OdrunError | None:
    """The error to exit with, or None when every file is in place."""
    failed = report.failed
    if not failed:
        return None
    first = failed[0].reason or "failed"
    if report.exit_code == PartialError.exit_code:
        return PartialError(
            f"{len(failed)} of {len(report.results)} files failed; first: {first}",
            hint="run the same command again: finished files are kept, partial ones resume",
        )
    kind = {
        ChecksumError.exit_code: ChecksumError,
        NotFoundError.exit_code: NotFoundError,
        DiskFullError.exit_code: DiskFullError,
        MetadataError.exit_code: MetadataError,
        CancelledError.exit_code: CancelledError,
    }.get(report.exit_code, TransportError)
    if kind is DiskFullError and len(failed) == 1:
        return DiskFullError(first)  # already one line naming the filesystem
    return kind(f"nothing could be fetched ({len(failed)} files failed); first: {first}")


def _collision(f: RecordFile, owner: tuple[str, str], dest: Path) -> FileResult:
    path, uri = owner
    how = "is the same path as" if path.casefold() == f.path.casefold() else "clashes with"
    error = MetadataError(
        f"{f.path} ({f.uri}) {how} {path} ({uri}) in {dest}: not fetched, "
        "refusing to overwrite one file with another",
        hint="fetch the two files into different --dest folders",
    )
    return FileResult(
        f.path, f.uri, f.size, State.FAILED, reason=str(error), exit_code=error.exit_code
    )


def case_insensitive(dest: Path) -> bool:
    """Whether ``dest`` (or its nearest existing folder) ignores case in names.

    Looks up the nearest existing path component that has letters under its
    other case; no file is written.
    """
    current = Path(os.path.abspath(dest))
    while not current.exists() and current != current.parent:
        current = current.parent
    while current != current.parent:
        other = current.with_name(current.name.swapcase())
        if other.name != current.name:
            try:
                return os.path.samefile(current, other)
            except OSError:
                return False
        current = current.parent
    return False


def _verified_at(target: Path, f: RecordFile) -> bool:
    """True when ``target`` already holds exactly the declared bytes."""
    try:
        if f.size is None or f.checksum is None or target.stat().st_size != f.size:
            return False
    except OSError:
        return False
    return checksum_file(target, f.checksum.algorithm) == f.checksum
