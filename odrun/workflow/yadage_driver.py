"""yadage's side of ``odrun run`` for ``workflow.type: yadage``: runs in yadage's own Python.

odrun starts this file with the interpreter of :attr:`Settings.yadage_python` (a venv
holding yadage and packtivity, whose pins conflict with odrun's own dependencies), so
it imports nothing from odrun: the standard library and yadage only. Two commands:

- ``plan SPEC TOPLEVEL ROOT REMOTE OUT``: load and validate the workflow (``$ref``
  resolved from TOPLEVEL, as REANA does; a file outside ROOT is refused, and so is a URL
  unless REMOTE is 1) and write OUT, a JSON document holding the resolved
  workflow, the container images its steps name and the versions of yadage,
  packtivity, adage and yadage-schemas;
- ``run WORKFLOW_JSON WORKDIR PARAMS_JSON OUT``: run the resolved workflow in WORKDIR
  (yadage's data directory and its ``initdir``, as REANA's yadage engine does) with
  the initial parameters, then write OUT: ``{"ok": bool, "error": str, "failed": [...]}``.

Every failure ends in OUT (and exit code 1), never only in a traceback on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from importlib import metadata
from typing import Any

SCHEMA = "yadage/workflow-schema"
DISTRIBUTIONS = ("yadage", "packtivity", "adage", "yadage-schemas")


def _write(path: str, doc: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=1, sort_keys=True)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    message = getattr(exc, "message", None)  # a jsonschema error: where, and what is wrong
    if isinstance(message, str) and hasattr(exc, "absolute_path"):
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        what = " ".join(message.split())
        text = f"at {where}: {what if len(what) < 200 else '...' + what[-150:]}"
    return f"{type(exc).__name__}: {text}"[:500]


def environments(doc: Any) -> tuple[list[str], list[str]]:
    """(``image:imagetag`` of every docker-encapsulated environment, the other environment
    types: those packtivity runs on the host whatever the runtime), nested workflows too."""
    found: set[str] = set()
    other: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("environment_type")
            if kind == "docker-encapsulated" and node.get("image"):
                found.add(f"{node['image']}:{node.get('imagetag') or 'latest'}")
            elif isinstance(kind, str) and kind != "docker-encapsulated":
                other.add(kind)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return sorted(found), sorted(other)


def guard_refs(root: str, remote: bool, refused: list[dict[str, str]]) -> None:
    """Every ``$ref`` yadage-schemas loads goes through its ``urlopen``: refuse a file
    outside ``root`` (the analysis folder, links followed) and, unless ``remote``, any
    URL; each refusal is noted in ``refused`` (the loader hides the reason)."""
    import urllib.parse  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    from yadageschemas.dialects import raw_with_defaults as loader  # noqa: PLC0415

    real = loader.urlopen
    top = os.path.realpath(root)

    def guarded(uri: str, *args: Any, **kwargs: Any) -> Any:
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme in ("", "file"):
            path = os.path.realpath(urllib.request.url2pathname(parsed.path))
            if path != top and not path.startswith(top + os.sep):
                refused.append({"kind": "outside", "error": f"$ref {path} leads outside {top}"})
                raise OSError(refused[-1]["error"])
        elif not remote:
            refused.append({"kind": "remote", "error": f"$ref {uri} is remote (offline)"})
            raise OSError(refused[-1]["error"])
        return real(uri, *args, **kwargs)

    loader.urlopen = guarded


def plan(spec: str, toplevel: str, root: str, remote: str, out: str) -> int:
    refused: list[dict[str, str]] = []
    try:
        import yadageschemas  # noqa: PLC0415

        guard_refs(root, remote == "1", refused)
        workflow = yadageschemas.load(
            spec=spec,
            specopts={
                "toplevel": toplevel,
                "schema_name": SCHEMA,
                "schemadir": None,
                "load_as_ref": False,
            },
            validopts={"schema_name": SCHEMA, "schemadir": None},
            validate=True,
        )
    except Exception as exc:
        if refused:  # the reason the loader hid
            _write(out, {"ok": False, **refused[0]})
        else:
            _write(out, {"ok": False, "error": _one_line(exc)})
        return 1
    versions = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    images, other = environments(workflow)
    doc = {"ok": True, "workflow": workflow, "images": images, "versions": versions}
    _write(out, {**doc, "host_environments": other})
    return 0


def _failed_nodes(steering: Any, backend: Any) -> list[dict[str, str]]:
    """Each failed node's name and its own error (a publisher's, say), as one line."""
    try:
        dag = steering.workflow.dag
        nodes = [dag.getNode(n) for n in dag.nodes()]
        failed = sorted((n for n in nodes if n.ready() and not n.successful()), key=str)
    except Exception:
        return []
    out = []
    for node in failed:
        error = ""
        try:
            info = backend.fail_info(node.resultproxy)
            if info and isinstance(info[1], BaseException):
                error = _one_line(info[1])
        except Exception:  # the node's name is still worth reporting
            error = ""
        out.append({"name": str(node.name), "error": error})
    return out


def run(workflow_json: str, workdir: str, params_json: str, out: str) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    steering = backend = None
    try:
        from yadage.steering_api import steering_ctx  # noqa: PLC0415
        from yadage.utils import setupbackend_fromstring  # noqa: PLC0415

        with open(workflow_json, encoding="utf-8") as f:
            workflow = json.load(f)["workflow"]
        with open(params_json, encoding="utf-8") as f:
            params = json.load(f)
        backend = setupbackend_fromstring("multiproc:auto")
        with steering_ctx(
            dataarg=workdir,
            dataopts={"initdir": workdir},
            initdata=params,
            workflow_json=workflow,
            backend=backend,
            visualize=False,
            accept_metadir=True,
            updateinterval=0.1,
        ) as steering:
            pass
    except BaseException as exc:
        failed = _failed_nodes(steering, backend) if steering is not None else []
        _write(out, {"ok": False, "error": _one_line(exc), "failed": failed})
        return 1
    _write(out, {"ok": True, "error": "", "failed": []})
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[0] == "plan":
        return plan(*argv[1:])
    if len(argv) == 5 and argv[0] == "run":
        return run(*argv[1:])
    print(
        "usage: yadage_driver.py plan SPEC TOPLEVEL ROOT REMOTE OUT"
        " | run WORKFLOW WORKDIR PARAMS OUT",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
