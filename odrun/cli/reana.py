"""CLI commands for REANA: submit, status, logs, download, stop. Parse, call, render."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from odrun import render
from odrun.api import report_hook
from odrun.cli._common import global_options, json_option, settings_of
from odrun.errors import (
    CancelledError,
    ConfigError,
    ConflictError,
    UsageError,
)
from odrun.reana.client import ReanaClient
from odrun.reana.models import WorkflowLogs, WorkflowStatus
from odrun.reana.spec import IMAGE_ENV, IMAGE_HOWTO
from odrun.reana.submit import Submission, SubmitOptions, find_record, outcome_error, submit
from odrun.reana.workspace import download
from odrun.workflow import load_analysis

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

SERVER_ENV = "REANA_SERVER_URL"
TOKEN_ENV = "REANA_ACCESS_TOKEN"
WORKON_ENV = "REANA_WORKON"
INSECURE_KEY = "odrun.reana.insecure_http"


def _say(message: str) -> None:
    render.echo(f"odrun: {message}", err=True)


def _remember_insecure(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[INSECURE_KEY] = True  # meta: shared by every context, not a setting


def _server_option(func: Callable[..., object]) -> Callable[..., object]:
    func = click.option(
        "--insecure-http",
        is_flag=True,
        expose_value=False,
        callback=_remember_insecure,
        help="Allow a plain http:// REANA server that is not loopback (the token then "
        "travels unencrypted).",
    )(func)
    return click.option("--server", metavar="URL", help=f"REANA server URL [{SERVER_ENV}].")(func)


def _client(ctx: click.Context, server: str | None, recorded: str | None = None) -> ReanaClient:
    """--server, else REANA_SERVER_URL: the token goes only to a server the user names.

    ``recorded`` (the server a local submission record names) must be that server: a
    record is a file in a folder, which an untrusted analysis could have planted."""
    settings = settings_of(ctx)
    url = server or settings.reana_server_url
    if recorded and not (url and _same_server(recorded, url)):
        named = f"the server given is {url}" if url else "no server is given"
        raise UsageError(
            f"the local submission record names REANA server {recorded}, but {named}: "
            "odrun sends the access token only to the server you name",
            hint=f"if you trust it, pass --server {recorded} (or set {SERVER_ENV})",
        )
    if not url:
        raise ConfigError(
            "no REANA server given",
            hint=f"pass --server URL or set {SERVER_ENV} (e.g. https://reana.cern.ch)",
        )
    insecure = bool(ctx.meta.get(INSECURE_KEY))
    client = ReanaClient(url, settings.reana_access_token, settings, insecure_http=insecure)
    if client.unencrypted:
        _say(
            f"warning: --insecure-http: REANA server {client.server} is plain http; the access "
            "token travels unencrypted and anyone on the network path can read it"
        )
    return client


def _same_server(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


class _Progress:
    """Follow display: a rich status line on a terminal, a plain line per change otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last = ""
        self.rich = sys.stderr.isatty() and not quiet
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    @contextmanager
    def show(self) -> Iterator[_Progress]:
        if not self.rich:
            yield self
            return
        from rich.progress import (  # noqa: PLC0415 - rich only when a bar is drawn
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
        )

        with Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            console=render.stderr_console(),
        ) as bar:
            self.bar, self.task = bar, bar.add_task("queued", total=None)
            yield self

    def __call__(self, status: WorkflowStatus) -> None:
        jobs = status.jobs
        line = (
            f"{status.name}: {status.status}  jobs {jobs.finished}/{jobs.total} finished, "
            f"{jobs.running} running, {jobs.failed} failed"
            + (f"  [{status.current_step}]" if status.current_step else "")
        )
        if self.bar is not None and self.task is not None:
            total = jobs.total or None
            self.bar.update(self.task, description=line, total=total, completed=jobs.finished)
        elif line != self.last and not self.quiet:
            render.echo(line, err=True)
        self.last = line


def _print_logs(logs: WorkflowLogs, only_failed: bool, err: bool = True) -> None:
    jobs = logs.failed if only_failed and logs.failed else logs.jobs
    if (not jobs or not only_failed) and logs.workflow.strip():
        render.echo(logs.workflow.rstrip(), err=err, lines=True)
    for job in jobs:
        render.echo(f"--- step {job.name} ({job.status}): {job.command}", err=err)
        if job.logs.strip():
            render.echo(job.logs.rstrip(), err=err, lines=True)


def _finish(sub: Submission, as_json: bool) -> None:
    report_hook(_say)(sub.run_dir)  # report.html, once the run record is written
    if sub.logs is not None and sub.status == "failed" and not as_json:
        _print_logs(sub.logs, only_failed=True)
    if as_json:
        doc = sub.to_dict()
        if sub.logs is not None:
            doc["failed_steps"] = [j.__dict__ for j in sub.logs.failed]
        render.print_json(doc)
    else:
        render.echo(f"workflow {sub.workflow_name} {sub.status}: {sub.run_dir}")
        render.output_lines(sub.outputs)
        render.check_lines(sub.checks)
    error = outcome_error(sub)
    if error is not None:
        raise error


@click.command("submit")
@global_options
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_server_option
@click.option("--name", metavar="NAME", help="Workflow name [the analysis name].")
@click.option(
    "--inputs",
    "inputs",
    type=click.Choice(["auto", "upload", "remote"]),
    default="auto",
    show_default=True,
    help="Record files: upload the verified local copies, or fetch them in the cluster "
    "(an injected first step running `odrun fetch`; needs --odrun-image); auto: remote "
    "above 1 GB when an odrun image is given.",
)
@click.option(
    "--odrun-image",
    metavar="IMAGE",
    envvar=IMAGE_ENV,
    help=f"Image of the injected fetch step, required by --inputs remote [{IMAGE_ENV}]; "
    f"build and push it as {IMAGE_HOWTO} says.",
)
@click.option("--follow", is_flag=True, help="Show live progress until the workflow ends.")
@click.option("--download", is_flag=True, help="Download the declared outputs at the end.")
@click.option(
    "--trust-snakefile",
    is_flag=True,
    help="Let the Snakefile of an analysis fetched from a record (odrun run DOI) run on this "
    "host to build the job graph reana-client sends (refused without it).",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --download puts the outputs [the analysis folder].",
)
@click.option("--verify", "do_verify", is_flag=True, help="Download and check the expectations.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds between polls (> 0).",
)
@json_option
@click.pass_context
def submit_cmd(
    ctx: click.Context,
    path: Path,
    server: str | None,
    name: str | None,
    inputs: str,
    odrun_image: str | None,
    follow: bool,
    download: bool,
    output_dir: Path | None,
    do_verify: bool,
    poll_interval: float,
    as_json: bool,
    trust_snakefile: bool = False,
) -> None:
    """Run an analysis on a REANA cluster: validate, create, upload, start (and follow).

    The server and token come from --server / REANA_SERVER_URL and
    REANA_ACCESS_TOKEN (the variables reana-client uses). A local record is kept in
    PATH/.odrun/reana/<workflow>/ for status, logs, download, stop and verify.
    Exit code 0 only if the workflow finished and (--verify) every expectation
    holds; 7 if it failed (the failed step's logs are shown); 12 if the token is
    rejected.

    \b
    Examples:
      export REANA_SERVER_URL=https://reana.cern.ch REANA_ACCESS_TOKEN=...
      odrun submit workflows/dimuon-demo --follow --verify
      odrun submit . --name z-peak --follow --download --output-dir out/
      odrun submit . --inputs remote --odrun-image registry.example.org/odrun/odrun:0.1.0
    """
    settings = settings_of(ctx)
    analysis = load_analysis(path)
    options = SubmitOptions(
        name=name,
        inputs=inputs,
        odrun_image=odrun_image,
        follow=follow,
        download=download or do_verify,
        verify=do_verify,
        output_dir=output_dir,
        poll_interval=poll_interval,
        trust_snakefile=trust_snakefile,
    )
    progress = _Progress(quiet=as_json)
    try:
        with _client(ctx, server) as client, progress.show():
            sub = submit(analysis, client, settings, options, say=_say, on_status=progress)
    except KeyboardInterrupt:  # the library names what was left; this is after the end
        raise CancelledError("interrupted", hint=f"odrun status {path}") from None
    _finish(sub, as_json)


def _resolve(
    ctx: click.Context, run: str | None, server: str | None
) -> tuple[ReanaClient, str, Submission | None]:
    """RUN, else REANA_WORKON (reana-client's default workflow)."""
    run = run or settings_of(ctx).reana_workon
    if not run:
        raise UsageError(
            "no RUN given",
            hint=f"name a record folder, analysis or workflow, or set {WORKON_ENV}",
        )
    sub = find_record(run, Path.cwd())
    if sub is not None:
        return _client(ctx, server, sub.server), sub.workflow_id, sub
    return _client(ctx, server), run, None


@click.command("status")
@global_options
@click.argument("run", required=False)
@_server_option
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, run: str | None, server: str | None, as_json: bool) -> None:
    """Show a REANA workflow's status and job progress.

    RUN (default: REANA_WORKON) is a local record folder (PATH/.odrun/reana/<workflow>), an analysis
    folder (its latest submission), or a workflow name or id on the server.

    \b
    Examples:
      odrun status workflows/dimuon-demo
      odrun status dimuon-demo.3 --server https://reana.cern.ch --json
    """
    client, workflow, sub = _resolve(ctx, run, server)
    with client:
        status = client.status(workflow)
    if sub is not None:
        sub.update(status)
        sub.save()
    if as_json:
        render.print_json(status.to_dict() | {"server": client.server})
        return
    jobs = status.jobs
    render.echo(f"{status.name} ({status.id}): {status.status}")
    render.echo(
        f"  jobs: {jobs.total} total, {jobs.running} running, {jobs.finished} finished, "
        f"{jobs.failed} failed"
    )
    if status.current_step:
        render.echo(f"  current step: {status.current_step}")


@click.command("logs")
@global_options
@click.argument("run", required=False)
@_server_option
@click.option("--failed", "only_failed", is_flag=True, help="Only the failed steps' logs.")
@json_option
@click.pass_context
def logs_cmd(
    ctx: click.Context, run: str | None, server: str | None, only_failed: bool, as_json: bool
) -> None:
    """Print a REANA workflow's logs: the engine's, then each step's.

    RUN: as for `odrun status`.

    \b
    Examples:
      odrun logs workflows/dimuon-demo --failed
    """
    client, workflow, _ = _resolve(ctx, run, server)
    with client:
        logs = client.logs(workflow)
    if as_json:
        render.print_json({"workflow_logs": logs.workflow, "jobs": [j.__dict__ for j in logs.jobs]})
        return
    _print_logs(logs, only_failed, err=False)


@click.command("download")
@global_options
@click.argument("run", required=False)
@_server_option
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the outputs go [the analysis folder; ./<workflow> without a local record].",
)
@click.option("--verify", "do_verify", is_flag=True, help="Check the expectations too.")
@json_option
@click.pass_context
def download_cmd(
    ctx: click.Context,
    run: str,
    server: str | None,
    output_dir: Path | None,
    do_verify: bool,
    as_json: bool,
) -> None:
    """Download a REANA workflow's declared outputs (and record their checksums).

    With a local record the declared outputs go to their relative paths under
    --output-dir; for a bare workflow name every workspace file does.

    \b
    Examples:
      odrun download workflows/dimuon-demo --verify
      odrun download dimuon-demo.3 --output-dir results/
    """
    client, workflow, sub = _resolve(ctx, run, server)
    with client:
        got = download(client, workflow, sub, output_dir=output_dir, verify=do_verify, say=_say)
    if got.submission is None:
        if as_json:
            render.print_json({"workflow": workflow, "files": got.files})
        else:
            render.echo(f"downloaded {len(got.files)} files to {got.target}")
        return
    _finish(got.submission, as_json)


@click.command("stop")
@global_options
@click.argument("run", required=False)
@_server_option
@click.pass_context
def stop_cmd(ctx: click.Context, run: str | None, server: str | None) -> None:
    """Stop a running REANA workflow.

    RUN: as for `odrun status`.

    \b
    Examples:
      odrun stop workflows/dimuon-demo
    """
    client, workflow, sub = _resolve(ctx, run, server)
    with client:
        status = client.status(workflow)
        name = status.name or workflow
        if status.done:  # REANA answers 409 to stopping an ended workflow
            render.echo(f"{name}: already {status.status}, nothing to stop")
        elif status.status == "created":
            render.echo(
                f"{name}: created but never started, nothing to stop "
                f"(delete it in the REANA web UI, or: reana-client delete -w {name})"
            )
        else:
            try:
                client.stop(workflow)
            except ConflictError:  # 409: it ended between the status and the stop
                status = client.status(workflow)
                if not status.done:
                    raise
                render.echo(f"{name}: already {status.status}, nothing to stop")
            else:
                status = client.status(workflow)
                render.echo(f"{name}: {status.status}")
    if sub is not None:
        sub.update(status)
        sub.save()
