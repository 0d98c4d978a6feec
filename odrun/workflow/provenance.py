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
    spec = analysis.reana_path.name if analysis.reana_path else "odrun.yaml"
    status = (
        "http://schema.org/CompletedActionStatus"
        if result.status == "finished"
        else ("http://schema.org/FailedActionStatus")
    )
    inputs = [_file(f"workspace/{i['path']}", i) for i in result.inputs]
    outputs = [_file(f"workspace/{o['path']}", o) for o in result.outputs if not o.get("missing")]
    records = [
        {
            "@id": f"https://doi.org/{r.doi}" if r.doi else r.record_url,
            "@type": "Dataset",
            "name": r.title,
            "identifier": r.doi or r.recid,
            "url": r.record_url,
        }
        for r in result.records
    ]
    declared = cvmfs.declared_repos(analysis.reana)
    # revisions are measured here, so only for runs on this machine (not on REANA)
    repos = cvmfs.pins(declared) if not reana else dict.fromkeys(declared, cvmfs.UNKNOWN_PIN)
    records += [
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
    steps = [
        {
            "@id": f"#step-{n}",
            "@type": "CreateAction",
            "name": f"{s.name}: {s.command}",
            "startTime": s.started,
            "endTime": s.ended,
            "exitCode": s.exit_code,
            "actionStatus": "http://schema.org/CompletedActionStatus"
            if s.exit_code == 0
            else "http://schema.org/FailedActionStatus",
            "instrument": {"@id": spec},
        }
        for n, s in enumerate(result.steps, 1)
    ]
    run = {
        "@id": "#run",
        "@type": "CreateAction",
        "name": f"odrun run of {result.analysis}",
        "startTime": result.started,
        "endTime": result.ended,
        "actionStatus": status,
        "instrument": {"@id": spec},
        "agent": {"@id": "#odrun"},
        "object": [{"@id": x["@id"]} for x in inputs + records],
        "result": [{"@id": x["@id"]} for x in outputs],
    }
    if result.error:
        run["error"] = result.error
    runtimes = [] if reana else _runtime_nodes(result)
    if runtimes:
        run["description"] = f"runtime: {result.runtime_description}"
    engines: list[dict[str, Any]] = []
    if reana:  # where it ran: the REANA server (never its token) and the workflow id
        run["identifier"] = reana["workflow_id"]
        run["alternateName"] = reana["name"]
        run["url"] = f"{reana['server']}/details/{reana['workflow_id']}"
        run["location"] = {"@id": reana["server"]}
        engine = {"@type": "SoftwareApplication", "name": "REANA", "url": reana["server"]}
        engines.append({"@id": reana["server"], **engine})
    graph: list[dict[str, Any]] = [
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
            "hasPart": [{"@id": spec}] + [{"@id": x["@id"]} for x in inputs + outputs + records],
            "mentions": [{"@id": "#run"}]
            + [{"@id": s["@id"]} for s in steps]
            + [{"@id": n["@id"]} for n in runtimes],
        },
        {
            "@id": spec,
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"],
            "name": spec,
            "programmingLanguage": {"@id": f"#{analysis.workflow_type or 'odrun'}"},
        },
        {
            "@id": f"#{analysis.workflow_type or 'odrun'}",
            "@type": "ComputerLanguage",
            "name": analysis.workflow_type or "odrun manifest",
        },
        {"@id": "#odrun", "@type": "SoftwareApplication", "name": "odrun", "version": __version__},
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
