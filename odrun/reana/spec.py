"""What odrun sends to REANA: the expanded spec, the files to upload, the remote-fetch step.

- :func:`expand` builds the JSON body of ``POST /api/workflows`` as reana-client 0.9.6
  does (:mod:`odrun.reana.specload`: parameters files loaded, CWL packed, yadage null).
- :func:`workspace_files` lists the files to upload: the spec file, ``inputs.files``,
  ``inputs.directories`` (ignore files honoured), the workflow and parameters files.
- :func:`inject_fetch` adds the step (serial) or rule (snakemake) that fetches the
  declared records inside the cluster with ``odrun fetch`` (``--inputs remote``).
- :func:`bundle` builds the ZIP of the bundles-v1 protocol (REANA 0.95+).
"""

from __future__ import annotations

import copy
import io
import shlex
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from odrun.errors import UsageError
from odrun.records import FileFilter, Resolver
from odrun.records.model import Record, RecordFile
from odrun.settings import Settings
from odrun.workflow.spec import Analysis, record_settings, relative

from . import specload

#: the injected fetch step's image (built from images/odrun): no public default exists,
#: --inputs remote needs --odrun-image or this variable
IMAGE_ENV = "ODRUN_REANA_IMAGE"
IMAGE_HOWTO = "images/odrun/README.md"
FETCH_STEP = "odrun-fetch-inputs"
FETCH_RULE = "odrun_fetch_inputs"
#: above this many bytes of declared record files, --inputs auto fetches in the cluster
REMOTE_THRESHOLD = 1_000_000_000


@dataclass(frozen=True)
class RecordInputs:
    """One odrun.yaml ``records`` item, resolved: the record and the files it selects."""

    item: dict[str, Any]
    record: Record
    files: list[RecordFile]
    dest: str

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)


def safe_rel(rel: str, what: str) -> str:
    return relative(rel, what).as_posix()


def expand(
    analysis: Analysis,
    settings: Settings | None = None,
    say: Callable[[str], None] = lambda _: None,
    *,
    untrusted: bool = False,
) -> dict[str, Any]:
    """The spec to send, as reana-client 0.9.6 builds it (:func:`specload.build_spec`);
    ``untrusted``: no code of the analysis may run here (a record's Snakefile)."""
    return specload.build_spec(analysis, settings or Settings(), say, untrusted=untrusted)


def workspace_files(analysis: Analysis) -> list[tuple[str, Path]]:
    """(workspace path, local file) of every file to upload, each once: what reana-client
    uploads, then odrun's additions (:func:`specload.upload_set`)."""
    return specload.upload_set(analysis)


def resolve_records(analysis: Analysis, settings: Settings) -> list[RecordInputs]:
    """The records odrun.yaml declares, resolved (metadata only: nothing is fetched)."""
    wanted = analysis.manifest.get("records") or []
    if not wanted:
        return []
    out = []
    with Resolver(record_settings(analysis, settings)) as resolver:
        for item in wanted:
            record = resolver.resolve(str(item["ref"]))
            ranges = [str(item["range"])] if item.get("range") else []
            chosen = FileFilter.build(item.get("names") or [], item.get("regexp"), ranges)
            dest = safe_rel(str(item.get("dest") or f"data/{record.recid}"), "records dest")
            out.append(RecordInputs(dict(item), record, chosen.apply(record.files), dest))
    return out


def fetch_command(inputs: RecordInputs, portal: str | None) -> str:
    """The ``odrun fetch`` command line that fetches one records item in the cluster."""
    argv = ["odrun"]
    if portal:
        argv += ["--portal", portal]
    argv += ["fetch", inputs.record.recid, "--dest", inputs.dest]
    for name in inputs.item.get("names") or []:
        argv += ["--filter-name", str(name)]
    if inputs.item.get("regexp"):
        argv += ["--filter-regexp", str(inputs.item["regexp"])]
    if inputs.item.get("range"):
        argv += ["--filter-range", str(inputs.item["range"])]
    return shlex.join(argv)


def inject_fetch(
    spec: dict[str, Any],
    records: list[RecordInputs],
    portal: str | None,
    snakefile_text: str | None = None,
    image: str = "",
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``spec`` with a first step/rule fetching ``records`` in the cluster.

    Returns the new spec and the files to upload instead of the analysis' own (for
    snakemake: ``snakefile_text``, the workflow file, with the fetch rule added).
    """
    spec = copy.deepcopy(spec)
    commands = [fetch_command(r, portal) for r in records]
    wtype = spec.get("workflow", {}).get("type")
    if not commands:
        return spec, {}
    if not image:
        raise UsageError(
            f"the in-cluster fetch step needs an odrun image: --odrun-image or {IMAGE_ENV}",
            hint=f"build and push it as {IMAGE_HOWTO} says",
        )
    if wtype == "serial":
        steps = spec["workflow"].setdefault("specification", {}).setdefault("steps", [])
        steps.insert(0, {"name": FETCH_STEP, "environment": image, "commands": commands})
        return spec, {}
    if wtype == "snakemake":
        # appended, not prepended: the Snakefile's first rule stays the default target,
        # and Snakemake runs this rule first because the other rules need its outputs
        snakefile = str(spec["workflow"].get("file") or "Snakefile")
        outputs = [f"{r.dest}/{f.path}" for r in records for f in r.files]
        # Snakemake formats shell: strings ({input}, {output}): literal braces are doubled
        shell = " && ".join(commands).replace("{", "{{").replace("}", "}}")
        rule = (
            "\n\n# added by odrun submit --inputs remote: fetch the declared records first\n"
            f"rule {FETCH_RULE}:\n"
            f"    output: {outputs!r}\n"
            f"    container: {'docker://' + image!r}\n"
            f"    shell: {shell!r}\n"
        )
        return spec, {snakefile: (snakefile_text or "").rstrip("\n").encode() + rule.encode()}
    raise UsageError(
        f"--inputs remote supports serial and snakemake workflows, not {wtype}",
        hint="use --inputs upload",
    )


def remote_portal(analysis: Analysis, settings: Settings) -> str | None:
    """The portal the in-cluster fetch must use (None: odrun's default)."""
    url = record_settings(analysis, settings).portal_url
    return None if url == Settings().portal_url else url


def bundle(spec: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """bundles-v1: an uncompressed ZIP with the canonical reana.yaml and the workflow files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("reana.yaml", yaml.safe_dump(spec, sort_keys=False))
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return buffer.getvalue()
