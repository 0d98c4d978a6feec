"""The Snakemake job graph reana-client 0.9.6 sends as ``workflow.specification``, built with
the installed Snakemake (8 or 9) in a child process.

reana-commons' ``snakemake_load`` builds a DAG with Snakemake 7's internals and sends
``{"job_dependencies": {job: [jobs it needs]}, "steps": [one per rule that runs]}``; this
script builds the same with Snakemake 8/9's API. It runs as a script (``python smkgraph.py
SNAKEFILE CONFIGFILE|- OUT``) in the analysis folder, so Snakemake's working-directory
changes, logging and imports stay out of odrun's process; it imports nothing from odrun.
A ``.snakemake`` folder it had to create is removed again.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


def _value(resource: Any) -> Any:
    """A rule resource's value (Snakemake 8+ wraps them in ``Resource``)."""
    return getattr(resource, "value", resource)


def graph(snakefile: str, configfile: str | None) -> dict[str, Any]:
    """``job_dependencies`` and ``steps`` as reana-commons 0.9 builds them."""
    from snakemake.api import SnakemakeApi  # noqa: PLC0415 - only in the child
    from snakemake.settings.types import (  # noqa: PLC0415
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    configfiles = [Path(configfile).resolve()] if configfile else []
    with SnakemakeApi(OutputSettings(dryrun=True)) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=configfiles),
            storage_settings=StorageSettings(),
            workdir=Path.cwd(),
            snakefile=Path(snakefile),
        )
        workflow_api.dag(dag_settings=DAGSettings())
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        dag = workflow.dag
        dependencies = {
            str(job): [str(dep) for dep in deps] for job, deps in dag.dependencies.items()
        }
        steps = []
        for rule in workflow.rules:  # the Snakefile's order (reana-client: a set's order)
            if rule.norun:  # every rule that runs something, as reana-commons (not only the
                continue  # DAG's: it builds its DAG over all rules)
            image = getattr(rule, "_container_img", None) or rule.container_img
            resources = rule.resources
            steps.append(
                {
                    "name": rule.name,
                    "environment": (image if isinstance(image, str) else "").replace(
                        "docker://", ""
                    ),
                    "inputs": dict(rule._input),
                    "params": dict(rule._params),
                    "outputs": dict(rule._output),
                    "commands": [rule.shellcmd],
                    "compute_backend": _value(resources.get("compute_backend")),
                    "kubernetes_memory_limit": _value(resources.get("kubernetes_memory_limit")),
                    "kubernetes_uid": _value(resources.get("kubernetes_uid")),
                }
            )
    return {"job_dependencies": dependencies, "steps": steps}


def main(argv: list[str]) -> int:
    snakefile, configfile, out = argv
    made = not Path(".snakemake").exists()
    try:
        doc = graph(snakefile, None if configfile == "-" else configfile)
    finally:
        if made:
            shutil.rmtree(".snakemake", ignore_errors=True)
    Path(out).write_text(json.dumps(doc, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
