"""What a CWL workflow and its job may name: files inside the analysis, nothing else.

cwltool reads every document a workflow names (``run:``, ``$import``, ``$include``,
``$mixin``) and stages every ``File``/``Directory`` a job or a default names, wherever it
is: ``location: /home/me/.netrc`` would be bound into a job, and its copy could become an
output. Before anything runs, :func:`check_documents` walks the workflow's documents and
:func:`check_job` the job, and each path must stay inside the analysis folder (documents,
their defaults) or the workspace (the job), by the one confinement rule
(:func:`odrun._fs.confine`: relative, no ``..`` out, no link out). Remote (``http(s)://``)
references are what cwltool fetches, as REANA does; an analysis from a record may not name
them (its run would reach the network before any container starts).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from odrun._fs import confine
from odrun._yaml import load_yaml
from odrun.errors import OdrunError, SpecError, UnsafeMetadataError

if TYPE_CHECKING:
    from odrun.workflow.spec import Analysis

#: keys whose string value names another document
DOCUMENT_KEYS = ("run", "$import", "$include", "$mixin")
REMOTE = ("http", "https")
#: at most this many documents (a workflow naming itself in a loop is read once each)
MAX_DOCUMENTS = 1000


def _local(ref: str) -> str | None:
    """The path part of a reference (``file:`` URIs unquoted); None for a fragment alone."""
    ref = ref.split("#", 1)[0]
    if not ref:
        return None
    parsed = urlparse(ref)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return ref


def rebase_job(job: dict[str, Any], job_file: str | None) -> dict[str, Any]:
    """The job with the relative ``location``/``path`` of each File and Directory made
    relative to the workspace: cwltool, like REANA's CWL engine, reads a job file's
    locations relative to the job file's folder (``../../code/fit.C`` in
    ``workflow/cwl/input.yml`` is ``code/fit.C``, as REANA's own demos write them). A job
    that is the parameters themselves (no ``job_file``) is already relative to the
    workspace. Absolute, remote and escaping locations are kept as they are, for
    :func:`check_job` to judge."""
    folder = os.path.dirname(job_file) if job_file else ""
    if not folder:
        return job
    import copy  # noqa: PLC0415 - only for a job from a file in a subfolder

    rebased = copy.deepcopy(job)
    for node in _walk(rebased):
        if node.get("class") not in ("File", "Directory"):
            continue
        for key in ("location", "path"):
            ref = node.get(key)
            if not isinstance(ref, str) or urlparse(ref).scheme or os.path.isabs(ref):
                continue
            node[key] = os.path.normpath(os.path.join(folder, ref))
    return rebased


def _inside(root: Path, base: Path, ref: str, what: str, untrusted: bool) -> Path | None:
    """``ref`` (relative to the folder ``base``) inside ``root``, or an error; None for a
    remote reference (allowed unless ``untrusted``) or a fragment."""
    error: type[OdrunError] = UnsafeMetadataError if untrusted else SpecError
    scheme = urlparse(ref).scheme
    if scheme in REMOTE:
        if untrusted:
            raise UnsafeMetadataError(
                f"{what} {ref} is remote: cwltool would fetch it before any container starts",
                hint="an analysis from a record must ship every file it names",
            )
        return None
    if scheme not in ("", "file") and len(scheme) > 1:  # a Windows drive letter is no scheme
        raise error(f"{what} {ref}: cwltool cannot read a {scheme}: reference here")
    local = _local(ref)
    if local is None:
        return None
    if os.path.isabs(local):
        raise error(
            f"{what} {ref!r} is an absolute path: it must be relative, inside {root}",
            hint="name the file relative to the analysis (and list it in inputs)",
        )
    rel = os.path.normpath(os.path.relpath(base / local, root.resolve()))
    return confine(root, rel, what, error=error)


def _walk(doc: Any) -> Iterator[dict[str, Any]]:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _files(doc: Any) -> Iterator[str]:
    """The ``location``/``path`` of every File and Directory object in ``doc``."""
    for node in _walk(doc):
        if node.get("class") in ("File", "Directory"):
            for key in ("location", "path"):
                if isinstance(node.get(key), str):
                    yield node[key]


def check_documents(root: Path, workflow: str, untrusted: bool = False) -> list[str]:
    """The documents ``workflow`` reads (itself first), relative to ``root``; raises when one
    of them, or a File/Directory default in one, lies outside ``root``."""
    first = _inside(root, root.resolve(), workflow, "workflow.file", untrusted)
    todo = [first] if first is not None else []
    seen: list[Path] = []
    while todo and len(seen) < MAX_DOCUMENTS:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.append(path)
        if not path.is_file():
            raise SpecError(f"CWL document {path.relative_to(root.resolve())} does not exist")
        doc = load_yaml(path, f"CWL document {path.name}", error=SpecError)
        name = path.relative_to(root.resolve()).as_posix()
        for node in _walk(doc):
            for key in DOCUMENT_KEYS:
                value = node.get(key)
                if isinstance(value, str):
                    found = _inside(root, path.parent, value, f"{name}: {key}", untrusted)
                    if found is not None:
                        todo.append(found)
        for ref in _files(doc):
            _inside(root, path.parent, ref, f"{name}: File location", untrusted)
    return [p.relative_to(root.resolve()).as_posix() for p in seen]


def check_job(job: dict[str, Any], workspace: Path, untrusted: bool = False) -> None:
    """Every File/Directory the job names lies inside the workspace (where it is read)."""
    for ref in _files(job):
        _inside(workspace, workspace.resolve(), ref, "CWL job: File location", untrusted)


def check_references(
    analysis: Analysis, job_of: Callable[[Analysis], dict[str, Any]]
) -> list[tuple[str, bool]]:
    """For ``odrun validate``: (message, unsafe) for the first reference out of the
    analysis in its CWL documents, and in its job (``job_of``: the job it runs)."""
    workflow = str((analysis.reana or {}).get("workflow", {}).get("file") or "")
    found: list[tuple[str, bool]] = []
    for check in (
        lambda: check_documents(analysis.root, workflow),
        lambda: check_job(job_of(analysis), analysis.root),
    ):
        try:
            check()
        except (SpecError, UnsafeMetadataError) as exc:
            found.append((exc.message, isinstance(exc, UnsafeMetadataError)))
    return found
