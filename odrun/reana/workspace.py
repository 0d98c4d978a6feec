"""Download a REANA workflow's outputs: the library side of ``odrun download``.

With a local submission record (``PATH/.odrun/reana/<workflow>``) the analysis's declared
outputs go to their relative paths under the output folder, with their checksums in the
run record (and, with ``verify``, the expectations judged). For a bare workflow name every
workspace file goes under the output folder: each name the server lists is confined to it
(:func:`odrun._fs.confine`, links followed) before a single byte is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from odrun._fs import confine
from odrun.errors import MetadataError, OdrunError, UsageError
from odrun.reana.client import ReanaClient
from odrun.reana.record import Submission
from odrun.reana.submit import SubmitOptions, collect, download_outputs, write_run_record
from odrun.records.paths import PathClaims
from odrun.redact import redact
from odrun.workflow.model import Say
from odrun.workflow.spec import load_analysis


@dataclass
class Download:
    """What :func:`download` fetched."""

    workflow: str
    #: the folder the files went to
    target: Path
    #: workspace file names downloaded (a bare workflow name)
    files: list[str] = field(default_factory=list)
    #: the local submission record, updated (with a record)
    submission: Submission | None = None


def download(
    client: ReanaClient,
    workflow: str,
    submission: Submission | None = None,
    *,
    output_dir: Path | None = None,
    verify: bool = False,
    say: Say = lambda _: None,
) -> Download:
    """Download ``workflow``'s outputs (see the module docstring).

    Raises :class:`~odrun.errors.MetadataError` (nothing written) when the server lists a
    workspace file that would land outside the output folder, and
    :class:`~odrun.errors.UsageError` when a recorded workflow has not finished.

    Example::

        with ReanaClient(url, token, settings) as client:
            got = odrun.reana.download(client, "dimuon-demo.3", output_dir=Path("results"))
        print(got.files)
    """
    if submission is None:
        target = (output_dir or Path(workflow)).resolve()
        files = client.ls(workflow)
        dests = [inside(target, f.name, workflow) for f in files]  # all checked first
        distinct(target, [f.name for f in files], dests, workflow)
        for f, dest in zip(files, dests, strict=True):
            client.download(workflow, f.name, dest)
        return Download(workflow, target, [f.name for f in files])
    analysis = load_analysis(Path(submission.analysis_path))
    if verify and not analysis.manifest.get("expect"):
        say("warning: --verify: odrun.yaml declares no expect: entries, nothing to verify")
    status = client.status(workflow)
    submission.update(status)
    if status.status != "finished":
        raise UsageError(
            f"workflow {submission.workflow_name} is {status.status}, not finished",
            hint=f"wait for it: odrun status {submission.run_dir}",
        )
    if verify:
        collect(client, submission, analysis, SubmitOptions(verify=True, output_dir=output_dir))
    else:
        download_outputs(client, submission, analysis, output_dir)
        write_run_record(submission, analysis)
        submission.save()
    target = (output_dir or analysis.root).resolve()
    return Download(workflow, target, [str(o.get("path")) for o in submission.outputs], submission)


def distinct(target: Path, names: list[str], dests: list[Path], workflow: str) -> None:
    """No two listed names land on one path, nor one inside another listed file
    (``a//b`` and ``a/b``; ``a`` and ``a/b``): a later download would overwrite or fail."""
    claims = PathClaims()
    for name, dest in zip(names, dests, strict=True):
        owner = claims.claim(dest.relative_to(target.resolve()).as_posix(), name)
        if owner is not None:
            raise MetadataError(
                f"REANA workflow {workflow} lists workspace files {owner[1]!r} and {name!r}, "
                f"which collide at {owner[0]} under {target}: nothing written",
                hint="report it to the REANA server's operators",
            )


def inside(target: Path, name: str, workflow: str) -> Path:
    """Workspace file ``name`` (as the server lists it) under ``target``, never outside it,
    nor named after the access token (the file name would keep it on disk)."""
    if redact(name) != name:
        raise MetadataError(
            f"REANA workflow {workflow} lists a workspace file named after your access token "
            f"({redact(name)!r}): nothing written",
            hint="report it to the REANA server's operators; consider renewing the token",
        )
    try:
        dest = confine(target, name, "workspace file")
    except OdrunError:
        dest = target
    if dest == target.resolve():
        raise MetadataError(
            f"REANA workflow {workflow} lists workspace file {name!r}, which would land outside "
            f"{target}: nothing written",
            hint="report it to the REANA server's operators",
        )
    return dest


__all__ = ["Download", "distinct", "download", "inside"]
