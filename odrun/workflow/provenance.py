"""The provenance record of a run as an RO-Crate (Workflow Run Crate profile, process run).

``<run>/ro-crate-metadata.json`` describes the run folder: the workflow spec,
the records read (by DOI or record URL), input and output files with size and
checksum, the CVMFS repositories it declares (with the revision and root hash
mounted), one CreateAction per command with its exit code and times, the
runtime the commands ran in (``#runtime``; a ``#runtime-fallback`` PropertyValue
when ``--runtime auto`` fell back to the host), and the tools. No environment
variables are recorded (they may hold secrets).
"""

from __future__ import annotations

import json
import mimetypes
from typing import TYPE_CHECKING, Any

from odrun import cvmfs
from odrun._fs import atomic_write
from odrun._version import __version__

if TYPE_CHECKING:
    from odrun.workflow.model import RunResult
    from odrun.workflow.spec import Analysis

# RO-Crate 1.1 plus the one Workflow Run Crate term it lacks (inline: valid offline)
CONTEXT = [
    "https://w3id.org/ro/crate/1.1/context",
    {"exitCode": "https://w3id.org/ro/terms/workflow-run#exitCode"},
]
PROFILES = [
    "https://w3id.org/ro/wfrun/process/0.5",
    "https://w3id.org/ro/wfrun/workflow/0.5",
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
]


# formats mimetypes does not know, common in HEP analyses
_FORMATS = {"root": "application/x-root", "yaml": "application/yaml", "yml": "application/yaml"}


def _file(rel: str, entry: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"@id": rel, "@type": "File", "name": rel.rsplit("/", 1)[-1]}
    if entry.get("size") is not None:
        node["contentSize"] = str(entry["size"])
    if entry.get("checksum"):
        node["identifier"] = entry["checksum"]
    kind = mimetypes.guess_type(rel)[0] or _FORMATS.get(rel.rsplit(".", 1)[-1].lower())
    if kind:
        node["encodingFormat"] = kind
    return node


def crate(
    result: RunResult, analysis: Analysis, reana: dict[str, str] | None = None
) -> dict[str, Any]:
    """The crate; ``reana`` ({server, workflow_id, name}) for a run submitted to REANA."""
    spec = main_entity(result, analysis)
    inputs = [_file(f"workspace/{i['path']}", i) for i in result.inputs]
    outputs = [_file(f"workspace/{o['path']}", o) for o in result.outputs if not o.get("missing")]
    records = _record_nodes(result) + _cvmfs_nodes(analysis, measured=not reana)
    steps = _step_nodes(result, spec)
    runtimes = [] if reana else _runtime_nodes(result)
    run = _run_node(result, spec, inputs + records, outputs, described=bool(runtimes))
    engines: list[dict[str, Any]] = []
    if reana:  # where it ran: the REANA server (never its token) and the workflow id
        run["identifier"] = reana["workflow_id"]
        run["alternateName"] = reana["name"]
        run["url"] = f"{reana['server']}/details/{reana['workflow_id']}"
        run["location"] = {"@id": reana["server"]}
        engine = {"@type": "SoftwareApplication", "name": "REANA", "url": reana["server"]}
        engines.append({"@id": reana["server"], **engine})
    tools = [  # an engine in a Python of its own (yadage): its packages, pinned
        {"@id": f"#engine-{name}", "@type": "SoftwareApplication", "name": name}
        | {"softwareVersion": version}
        for name, version in sorted(result.engine_versions.items())
    ]
    engines += tools
    parts = [{"@id": x["@id"]} for x in inputs + outputs + records]
    mentions = [{"@id": "#run"}] + [{"@id": n["@id"]} for n in steps + runtimes + tools]
    graph: list[dict[str, Any]] = [
        *_root_nodes(result, analysis, spec, parts, mentions),
        run,
        *engines,
        *runtimes,
        *steps,
        *records,
        *inputs,
        *outputs,
        *({"@id": p, "@type": "CreativeWork", "name": p.rsplit("/", 2)[-2]} for p in PROFILES),
    ]
    return {"@context": CONTEXT, "@graph": graph}


#: the packed CWL workflow a CWL run writes in its run folder (odrun.workflow.cwl.PACKED)
PACKED_CWL = "packed.cwl"
#: Workflow RO-Crate's identifier of the CWL language
CWL_LANGUAGE_ID = "https://w3id.org/workflowhub/workflow-ro-crate#cwl"
CWL_LANGUAGE: dict[str, Any] = {
    "@id": CWL_LANGUAGE_ID,
    "@type": "ComputerLanguage",
    "name": "Common Workflow Language",
    "alternateName": "CWL",
    "identifier": {"@id": "https://w3id.org/cwl/"},
    "url": {"@id": "https://www.commonwl.org/"},
}


def main_entity(result: RunResult, analysis: Analysis) -> str:
    """The workflow that ran: the packed CWL workflow (Workflow Run Crate: the main entity
    is the workflow itself), else the spec (reana.yaml, or odrun.yaml alone)."""
    if analysis.workflow_type == "cwl" and (result.run_dir / PACKED_CWL).is_file():
        return PACKED_CWL
    return analysis.reana_path.name if analysis.reana_path else "odrun.yaml"


def _status(ok: bool) -> str:
    return f"http://schema.org/{'Completed' if ok else 'Failed'}ActionStatus"


def _record_nodes(result: RunResult) -> list[dict[str, Any]]:
    """The open-data records read, by DOI (or record URL)."""
    return [
        {
            "@id": f"https://doi.org/{r.doi}" if r.doi else r.record_url,
            "@type": "Dataset",
            "name": r.title,
            "identifier": r.doi or r.recid,
            "url": r.record_url,
        }
        for r in result.records
    ]


def _cvmfs_nodes(analysis: Analysis, *, measured: bool) -> list[dict[str, Any]]:
    """The CVMFS repositories the spec declares; revisions are ``measured`` only for runs
    on this machine (not on REANA)."""
    declared = cvmfs.declared_repos(analysis.reana)
    repos = cvmfs.pins(declared) if measured else dict.fromkeys(declared, cvmfs.UNKNOWN_PIN)
    return [
        {
            "@id": f"#cvmfs-{name}",
            "@type": "Dataset",
            "name": f"CVMFS repository {name}",
            "url": f"file://{cvmfs.DEFAULT_ROOT / name}",
            **({"version": pin["revision"]} if pin["revision"] else {}),
            **({"identifier": pin["root_hash"]} if pin["root_hash"] else {}),
        }
        for name, pin in repos.items()
    ]


def _step_nodes(result: RunResult, spec: str) -> list[dict[str, Any]]:
    """One CreateAction per command, with its exit code and times."""
    return [
        {
            "@id": f"#step-{n}",
            "@type": "CreateAction",
            "name": f"{s.name}: {s.command}",
            "startTime": s.started,
            "endTime": s.ended,
            "exitCode": s.exit_code,
            "actionStatus": _status(s.exit_code == 0),
            "instrument": {"@id": spec},
        }
        for n, s in enumerate(result.steps, 1)
    ]


def _run_node(
    result: RunResult,
    spec: str,
    read: list[dict[str, Any]],
    made: list[dict[str, Any]],
    *,
    described: bool,
) -> dict[str, Any]:
    """The run as a whole: what it read (``read``) and made (``made``)."""
    run: dict[str, Any] = {
        "@id": "#run",
        "@type": "CreateAction",
        "name": f"odrun run of {result.analysis}",
        "startTime": result.started,
        "endTime": result.ended,
        "actionStatus": _status(result.status == "finished"),
        "instrument": {"@id": spec},
        "agent": {"@id": "#odrun"},
        "object": [{"@id": x["@id"]} for x in read],
        "result": [{"@id": x["@id"]} for x in made],
    }
    if result.error:
        run["error"] = result.error
    if described:
        run["description"] = f"runtime: {result.runtime_description}"
    return run


def _root_nodes(
    result: RunResult,
    analysis: Analysis,
    spec: str,
    parts: list[dict[str, Any]],
    mentions: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The metadata descriptor, the root dataset, the workflow, its language and odrun."""
    language = f"#{analysis.workflow_type or 'odrun'}"
    lang_node: dict[str, Any] = {
        "@id": language,
        "@type": "ComputerLanguage",
        "name": analysis.workflow_type or "odrun manifest",
    }
    extra: list[dict[str, Any]] = []
    if spec == PACKED_CWL:
        lang_node = CWL_LANGUAGE
        language = CWL_LANGUAGE_ID
        if analysis.reana_path is not None:  # the reana.yaml that named it: a part, as a file
            name = analysis.reana_path.name
            parts = [{"@id": name}, *parts]
            extra.append({"@id": name, "@type": "File", "name": name})
    return [
        {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
            "about": {"@id": "./"},
        },
        {
            "@id": "./",
            "@type": "Dataset",
            "name": f"Run of {result.analysis}",
            "description": f"odrun {result.status} run of the analysis {result.analysis}: "
            "the workflow, the open-data records it read, its outputs and every command.",
            "datePublished": result.ended or result.started,
            "license": {"@id": "https://spdx.org/licenses/CC0-1.0"},
            "conformsTo": [{"@id": p} for p in PROFILES],
            "mainEntity": {"@id": spec},
            "hasPart": [{"@id": spec}, *parts],
            "mentions": mentions,
        },
        {
            "@id": spec,
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"],
            "name": spec,
            "programmingLanguage": {"@id": language},
        },
        lang_node,
        *extra,
        {"@id": "#odrun", "@type": "SoftwareApplication", "name": "odrun", "version": __version__},
    ]


def _runtime_nodes(result: RunResult) -> list[dict[str, Any]]:
    """Where the commands ran and, for a fallback to the host, from where and why."""
    nodes: list[dict[str, Any]] = [
        {
            "@id": "#runtime",
            "@type": "SoftwareApplication",
            "name": result.runtime,
            "description": result.runtime_description,
        }
    ]
    fallback = result.runtime_fallback
    if fallback is not None:
        nodes.append(
            {
                "@id": "#runtime-fallback",
                "@type": "PropertyValue",
                "name": "runtime_fallback",
                "value": fallback.from_,
                "description": fallback.reason,
            }
        )
    return nodes


def write_crate(result: RunResult, analysis: Analysis, reana: dict[str, str] | None = None) -> None:
    for path in (analysis.reana_path, analysis.manifest_path):
        if path is not None:  # the specs that ran, beside their record
            atomic_write(result.run_dir / path.name, path.read_bytes())
    text = json.dumps(crate(result, analysis, reana), indent=2)
    atomic_write(result.run_dir / "ro-crate-metadata.json", (text + "\n").encode())
