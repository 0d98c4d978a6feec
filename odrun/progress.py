"""Progress displays for fetches: rich bars on a terminal, plain lines otherwise.

rich is imported when a :class:`RichProgress` is made, never for plain lines (start-up).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TextIO

from odrun.records.model import RecordFile
from odrun.render import clean, human_size, markup
from odrun.transfer.fetch import FileResult, State

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


class RichProgress:
    """Overall bytes (rate, ETA) plus one bar per file in flight."""

    def __init__(self, console: Console, total_files: int, total_bytes: int) -> None:
        from rich.progress import (  # noqa: PLC0415 - rich only when bars are drawn
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.total_files = total_files
        self.done_files = 0
        self.overall = self.progress.add_task(self._label(), total=total_bytes or None)
        self.tasks: dict[str, tuple[TaskID, int]] = {}
        self.lock = threading.Lock()

    def _label(self) -> str:
        return f"total ({self.done_files}/{self.total_files} files)"

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, f: RecordFile) -> None:
        with self.lock:
            name = f.path if len(f.path) <= 40 else "…" + f.path[-39:]
            self.tasks[f.path] = (self.progress.add_task(name, total=f.size), 0)

    def position(self, f: RecordFile, done: int) -> None:
        with self.lock:
            task, before = self.tasks[f.path]
            self.tasks[f.path] = (task, done)
        self.progress.update(task, completed=done)
        self.progress.advance(self.overall, done - before)

    def finish(self, f: RecordFile, result: FileResult) -> None:
        with self.lock:
            task, before = self.tasks.pop(f.path)
            self.done_files += 1
        self.progress.remove_task(task)
        if result.state is not State.FAILED:
            self.progress.advance(self.overall, (f.size or 0) - before)
        else:
            reason = markup(f"{f.path}: {result.reason}")
            self.progress.console.print(f"[red]failed[/] {reason}")
        self.progress.update(self.overall, description=self._label())


class PlainProgress:
    """One line per finished file, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def start(self, f: RecordFile) -> None:
        pass

    def position(self, f: RecordFile, done: int) -> None:
        pass

    def finish(self, f: RecordFile, result: FileResult) -> None:
        detail = (result.reason or "") if result.state is State.FAILED else human_size(f.size)
        if result.resumed_from:
            detail += f", resumed at {human_size(result.resumed_from)}"
        with self.lock:
            self.stream.write(clean(f"{result.state.value:10} {f.path} ({detail})") + "\n")
            self.stream.flush()
