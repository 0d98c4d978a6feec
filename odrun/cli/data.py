"""CLI commands that move or check bytes: fetch, verify-files, cache. Parse, call, render."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from odrun import render
from odrun.cli._common import (
    filter_options,
    global_options,
    json_option,
    pick_target,
    protocol_option,
    record_target,
    settings_of,
)
from odrun.errors import ChecksumError, NotFoundError, PartialError, UsageError
from odrun.progress import PlainProgress, RichProgress
from odrun.records import FileFilter, Resolver
from odrun.records.model import RecordFile
from odrun.transfer import Fetcher, FileStore, State, Verdict, verify_files
from odrun.transfer.fetch import DEFAULT_JOBS, fetch_error


@click.command()
@global_options
@record_target
@click.option(
    "--dest", type=click.Path(file_okay=False, path_type=Path), help="Folder [./<recid>]."
)
@protocol_option(
    ("auto", "root", "https"),
    default="auto",
    show_default=True,
    help="auto: root:// when XRootD is available, falling back to HTTPS (and back).",
)
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=DEFAULT_JOBS, show_default=True)
@click.option(
    "--streams",
    type=click.IntRange(1, 64),
    default=None,
    help="Byte ranges fetched at once for each large file (env ODRUN_STREAMS) [default: 4; 1 "
    "from a server on this machine]; "
    "1: one stream per file.",
)
@filter_options
@click.option("--dry-run", is_flag=True, help="Show what would be fetched; transfer nothing.")
@json_option
@click.pass_context
def fetch(
    ctx: click.Context,
    target: str,
    dest: Path | None,
    protocol: str,
    jobs: int,
    streams: int | None,
    names: tuple[str, ...],
    regexp: str | None,
    ranges: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Download a record's files, verified against size and checksum, via the shared cache.

    Files go to DEST/<path>; each is written to a .part file in the cache,
    verified while it arrives, then linked into place. Interrupted transfers
    resume on the next run. Files of 64 MiB or more (ODRUN_STREAMS_MIN_SIZE) come
    in --streams byte ranges at once when the server serves ranges. Exit code
    0: all files in place; 6: some failed; 3/4/5: nothing could be fetched (not
    found / checksum / transport).

    \b
    Examples:
      odrun fetch 10.7483/OPENDATA.CMS.LVG5.QT81 --dest data/
      odrun fetch 1 --filter-range 1-10 --jobs 8 --protocol https
      odrun fetch 1 --filter-name '*.root' --streams 8
      odrun fetch 5500 --filter-name '*.py' --dry-run --json
    """
    settings = settings_of(ctx)
    if streams is not None:
        settings = settings.with_(streams=streams)
    chosen = FileFilter.build(names, regexp, ranges)
    with Resolver(settings) as resolver:
        record = resolver.resolve(target)
    files = chosen.apply(record.files)
    if not record.files_complete:
        render.warning(
            f"record {record.recid}: file list incomplete "
            f"({len(record.missing_indices)} index files unreadable); fetching the known files"
        )
    dest = dest or Path(record.recid)
    total = sum(f.size or 0 for f in files)
    with Fetcher(settings, protocol) as fetcher:  # type: ignore[arg-type]
        if dry_run or as_json or not files:
            report = fetcher.fetch_files(
                files, dest, jobs=jobs, dry_run=dry_run, recid=record.recid
            )
        elif render.on_terminal(sys.stderr):
            with RichProgress(render.stderr_console(), len(files), total) as bar:
                report = fetcher.fetch_files(
                    files, dest, jobs=jobs, progress=bar, recid=record.recid
                )
        else:
            with PlainProgress(sys.stderr) as lines:
                report = fetcher.fetch_files(
                    files, dest, jobs=jobs, progress=lines, recid=record.recid
                )
    if as_json:
        render.print_json(
            dict(report.to_dict(), recid=record.recid, files_complete=record.files_complete)
        )
    else:
        rate = report.bytes_transferred / report.seconds if report.seconds else 0.0
        verb = "would fetch" if dry_run else "fetched"
        render.echo(
            f"{verb} {len(report.results)} files to {dest}: "
            f"{report.count(State.DOWNLOADED)} downloaded, {report.count(State.CACHED)} cached, "
            f"{report.count(State.PRESENT)} already present, {len(report.failed)} failed; "
            f"{render.human_size(report.bytes_transferred)} in {report.seconds:.1f} s "
            f"({render.human_size(int(rate))}/s)"
            + (
                f"; {report.unverified} unverified (no checksum declared)"
                if report.unverified
                else ""
            ),
            err=True,
        )
    error = fetch_error(report)
    if error is not None:
        raise error
    if not record.files_complete:  # a script must not take it for the whole record
        raise PartialError(
            f"record {record.recid}: {len(record.missing_indices)} file index(es) could not be "
            f"read, so its file list is incomplete: {'would fetch' if dry_run else 'fetched'} "
            f"the {len(report.results)} files it lists, not the others",
            hint="run the same command again later (--refresh asks the indices again)",
        )


def make_progress(
    files: Sequence[RecordFile], *, quiet: bool
) -> RichProgress | PlainProgress | None:
    """Bars on a terminal, one line per file otherwise, nothing for --json / --dry-run."""
    if quiet or not files:
        return None
    if render.on_terminal(sys.stderr):
        return RichProgress(render.stderr_console(), len(files), sum(f.size or 0 for f in files))
    return PlainProgress(sys.stderr)


@click.command()
@global_options
@click.argument("targets", nargs=-1)
@click.option(
    "--recid", "recids", metavar="N", multiple=True, help="Also this record id (repeatable)."
)
@click.option("--doi", "dois", metavar="DOI", multiple=True, help="Also this DOI (repeatable).")
@click.option(
    "--to",
    "dest",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Mirror folder (created if missing).",
)
@click.option("--with-files", is_flag=True, help="Also fetch the files, verified, into DIR/files/.")
@protocol_option(("auto", "root", "https"), default="auto", show_default=True)
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=DEFAULT_JOBS, show_default=True)
@json_option
@click.pass_context
def mirror(
    ctx: click.Context,
    targets: tuple[str, ...],
    recids: tuple[str, ...],
    dois: tuple[str, ...],
    dest: Path,
    with_files: bool,
    protocol: str,
    jobs: int,
    as_json: bool,
) -> None:
    """Write records (and with --with-files their data) to a folder usable as --portal file://DIR.

    Each record becomes DIR/<recid>.json, the API document with file indices
    expanded, so the mirror answers offline. With --with-files the files are
    fetched and verified into DIR/files/<recid>/ and the record points at them
    (relative file: URIs: the folder can be moved or copied to another machine).

    \b
    Examples:
      odrun mirror 1 5500 10.7483/OPENDATA.CMS.KYMN.CR5R --to ./mirror
      odrun mirror 3005 12361 --to /shared/od-mirror --with-files
      odrun --portal file:///shared/od-mirror fetch 12361 --dest data/
    """
    targets = (
        *targets,
        *(pick_target(None, recid, None) for recid in recids),
        *(pick_target(None, None, doi) for doi in dois),
    )
    if not targets:
        raise UsageError(
            "no record given: expected TARGET..., --recid N or --doi DOI",
            hint="e.g. odrun mirror 1 5500 --to ./mirror",
        )
    from odrun.mirror import write_mirror  # noqa: PLC0415 - only this command writes mirrors

    settings = settings_of(ctx)
    entries = []
    failed = 0
    with Resolver(settings) as resolver, Fetcher(settings, protocol) as fetcher:  # type: ignore[arg-type]
        for entry in write_mirror(
            targets,
            dest,
            resolver,
            fetcher if with_files else None,
            jobs=jobs,
            progress=None if as_json else PlainProgress(sys.stderr),
        ):
            entries.append(entry)
            failed += len(entry.report.failed) if entry.report else 0
            if not as_json:
                state = "" if entry.files_complete else " (file list incomplete)"
                got = ""
                if entry.report:
                    local = entry.file_count - len(entry.report.failed)
                    got = f", {local} stored under files/{entry.recid}/"
                render.echo(
                    f"{entry.path}: record {entry.recid}, {entry.file_count} files{got}{state}"
                )
    if as_json:
        render.print_json(
            [
                {
                    "recid": e.recid,
                    "path": str(e.path),
                    "file_count": e.file_count,
                    "files_complete": e.files_complete,
                    "fetch": e.report.to_dict() if e.report else None,
                }
                for e in entries
            ]
        )
    if failed:
        raise PartialError(
            f"{failed} files could not be fetched; their records keep the remote URIs",
            hint="run the same command again to retry them",
        )


@click.command("verify-files")
@global_options
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@record_target
@filter_options
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True)
@json_option
@click.pass_context
def verify_files_cmd(
    ctx: click.Context,
    directory: Path,
    target: str,
    names: tuple[str, ...],
    regexp: str | None,
    ranges: tuple[str, ...],
    jobs: int,
    as_json: bool,
) -> None:
    """Check files in DIRECTORY against the record's sizes and checksums (streaming).

    Exit code 0 when every file matches, 4 on a size/checksum mismatch, 3 when
    files are missing, 6 when the record's file list is incomplete (an index file
    could not be read: the files it lists were not checked). A file the record
    declares no checksum for is only checked by size and shown as "unverified (no
    checksum declared)".

    \b
    Examples:
      odrun verify-files ./5500 5500
      odrun verify-files data/ 1 --filter-range 1-10 --json
    """
    with Resolver(settings_of(ctx)) as resolver:
        record = resolver.resolve(target)
    files = FileFilter.build(names, regexp, ranges).apply(record.files)
    started = time.monotonic()
    checks = []
    for check in verify_files(directory, files, jobs):
        checks.append(check)
        if not as_json:
            mark = {Verdict.OK: "ok", Verdict.UNVERIFIED: "?"}.get(check.verdict, "BAD")
            detail = f": expected {check.expected}, got {check.actual}" if check.actual else ""
            render.echo(f"{mark:3} {check.verdict.text:20} {check.path}{detail}")
    seconds = time.monotonic() - started
    bad = [c for c in checks if c.verdict in (Verdict.SIZE, Verdict.CHECKSUM)]
    missing = [c for c in checks if c.verdict is Verdict.MISSING]
    if as_json:
        render.print_json(
            {
                "recid": record.recid,
                "directory": str(directory),
                "ok": not bad and not missing and record.files_complete,
                "files_complete": record.files_complete,
                "unverified": sum(1 for c in checks if c.verdict is Verdict.UNVERIFIED),
                "seconds": round(seconds, 3),
                "files": [c.to_dict() for c in checks],
            }
        )
    if bad:
        raise ChecksumError(f"{len(bad)} of {len(checks)} files do not match the record")
    if missing:
        raise NotFoundError(
            f"{len(missing)} of {len(checks)} files are missing from {directory}",
            hint=f"fetch them with: odrun fetch {target} --dest {directory}",
        )
    if not record.files_complete:  # files the record holds but odrun could not list
        unread = len(record.missing_indices)
        raise PartialError(
            f"record {record.recid}: file list incomplete ({unread} index files unreadable): "
            f"only the {len(checks)} known files were checked, the rest were not",
            hint="try again later (odrun info --json shows missing_indices)",
        )


@click.group()
def cache() -> None:
    """Inspect and maintain the shared file cache (ODRUN_CACHE_DIR)."""


@cache.command("path")
@global_options
@click.pass_context
def cache_path(ctx: click.Context) -> None:
    """Print the cache folder."""
    render.echo(settings_of(ctx).cache_dir)


@cache.command("ls")
@global_options
@json_option
@click.pass_context
def cache_ls(ctx: click.Context, as_json: bool) -> None:
    """List cached files: key, size, where they came from (busy: a fetch holds it)."""
    store = FileStore(settings_of(ctx).cache_dir)
    entries = list(store.entries())
    if as_json:
        render.print_json(
            [
                {**e.meta, "key": e.key, "size": e.size, "path": str(e.path), "busy": e.busy}
                for e in entries
            ]
        )
        return
    for e in entries:
        busy = "\tbusy" if e.busy else ""
        render.echo(f"{e.key}\t{render.human_size(e.size)}\t{e.meta.get('uri', '?')}{busy}")
    total = sum(e.size for e in entries)
    render.echo(f"{len(entries)} files, {render.human_size(total)}", err=True)


@cache.command("verify")
@global_options
@click.option("--remove-bad", is_flag=True, help="Delete entries that do not verify.")
@json_option
@click.pass_context
def cache_verify(ctx: click.Context, remove_bad: bool, as_json: bool) -> None:
    """Re-hash every cached file against its key. Exit code 4 if any is corrupt.

    Entries without a declared checksum are checked by size and shown as
    "unverified (no checksum declared)"; entries a running fetch holds are
    skipped (busy).
    """
    store = FileStore(settings_of(ctx).cache_dir)
    checks = list(store.verify(remove_bad=remove_bad))
    bad = [{"key": c.key, "problem": c.problem} for c in checks if c.status == "bad"]
    unverified = [c.key for c in checks if c.status == "unverified"]
    busy = [c.key for c in checks if c.status == "busy"]
    if as_json:
        render.print_json(
            {
                "checked": len(checks) - len(busy),
                "bad": bad,
                "unverified": len(unverified),
                "unverified_keys": unverified,
                "busy": busy,
                "removed": remove_bad,
            }
        )
    else:
        for c in checks:
            if c.status != "ok":
                render.echo(f"{'BAD ' if c.status == 'bad' else ''}{c.key}: {c.problem}")
        render.echo(
            f"{len(checks) - len(busy)} files checked, {len(bad)} bad, "
            f"{len(unverified)} unverified (no checksum declared), {len(busy)} busy",
            err=True,
        )
    if bad and not remove_bad:
        raise ChecksumError(
            f"{len(bad)} cached files are corrupt", hint="odrun cache verify --remove-bad"
        )


@cache.command("gc")
@global_options
@click.option("--max-size", metavar="SIZE", help="Shrink the cache to SIZE (e.g. 50G), LRU first.")
@click.option("--parts-older-than", type=float, default=7.0, show_default=True, metavar="DAYS")
@json_option
@click.pass_context
def cache_gc(
    ctx: click.Context, max_size: str | None, parts_older_than: float, as_json: bool
) -> None:
    """Remove stale part files and, with --max-size, least recently used entries.

    Each part and entry is removed under its lock: what a running fetch holds
    is skipped (listed as "skipped"), never pulled from under it.

    \b
    Examples:
      odrun cache gc --max-size 100G
    """
    store = FileStore(settings_of(ctx).cache_dir)
    limit = parse_size(max_size) if max_size is not None else None
    report = store.gc(parts_older_than=parts_older_than * 86400, max_size=limit)
    if as_json:
        render.print_json(
            {"removed": report.removed, "skipped": report.skipped, "freed": report.freed}
        )
    else:
        busy = f", {len(report.skipped)} in use skipped" if report.skipped else ""
        render.echo(
            f"removed {len(report.removed)} items ({render.human_size(report.freed)}){busy}",
            err=True,
        )


def parse_size(text: str) -> int:
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    value = text.strip().upper().removesuffix("B")
    unit = value[-1] if value and value[-1] in units else ""
    try:
        size = int(float(value[: len(value) - len(unit)]) * units[unit])
        if size < 0:
            raise ValueError("negative")
        return size
    except (ValueError, OverflowError):  # OverflowError: 1e999G, inf
        raise UsageError(
            f"--max-size {text!r} is not a size: expected e.g. 500M, 50G, 2T"
        ) from None
