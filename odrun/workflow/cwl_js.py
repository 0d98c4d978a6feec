"""Where a CWL workflow's JavaScript expressions run (``InlineJavascriptRequirement``).

cwltool evaluates expressions (and validates them with jshint) with the first ``nodejs`` or
``node`` on its PATH, in a ``vm`` context that is no sandbox: ``globalThis.constructor
.constructor("return process")()`` reaches node's ``process``, and with it files and the
network. For an analysis from a record (untrusted) odrun therefore never lets a node on the
host evaluate them when the run has a container runtime: it puts ``node`` and ``nodejs``
first on cwltool's PATH, scripts that start node in a container of
:attr:`Settings.cwl_node_image <odrun.settings.Settings.cwl_node_image>`
(``docker.io/library/node:alpine``, the image cwltool itself falls back to) with no network,
no host folder, a read-only root, no capabilities and an unprivileged user. The expression
sees only what cwltool hands it on stdin.

With ``--runtime host`` the expressions run on the host, as the tools do (the user said so);
``--runtime auto`` never falls back to the host for a record.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from odrun.errors import ConfigError
from odrun.workflow.model import Say
from odrun.workflow.runtime import ApptainerRuntime, OciRuntime, Runtime, executable

#: the names cwltool tries, in its order (cwl_utils.sandboxjs.NodeJSEngine.new_js_proc)
NODE_NAMES = ("nodejs", "node")


def uses_javascript(packed: dict[str, Any], job: dict[str, Any]) -> bool:
    """Whether any process, step or the job (``cwl:requirements``) asks for
    InlineJavascriptRequirement: anywhere in them, so no nesting hides it."""
    return "InlineJavascriptRequirement" in json.dumps([packed, job], default=str)


def node_argv(runtime: Runtime, image: str) -> list[str] | None:
    """The command that runs ``node ARGS...`` in a confined container of ``image`` (the
    arguments follow), or None for the host runtime."""
    if isinstance(runtime, OciRuntime):
        confine = ["--network=none", "--security-opt=label=disable", "--read-only"]
        confine += ["--cap-drop=all", "--security-opt=no-new-privileges"]
        confine += ["--user=65534:65534", "--workdir=/"]
        return [runtime.binary, "run", "--rm", "-i", *confine, image, "node"]
    if isinstance(runtime, ApptainerRuntime):
        exe = executable("apptainer") or "apptainer"
        isolate = ["--containall", "--cleanenv", "--no-home", "--net", "--network", "none"]
        return [exe, "exec", *isolate, f"docker://{image}", "node"]
    return None


def prepare(runtime: Runtime, image: str, say: Say) -> list[str] | None:
    """The node command for a record's expressions (:func:`node_argv`), its image ready
    (pulled when the runtime may pull); ConfigError naming the image and the setting if it
    cannot be had. None (with a warning) on the host runtime."""
    argv = node_argv(runtime, image)
    if argv is None:
        say(
            "warning: the record's CWL JavaScript expressions (InlineJavascriptRequirement) "
            "are evaluated by cwltool with node on the host (--runtime host)"
        )
        return None
    try:
        runtime.prepare(image)
    except ConfigError as exc:
        raise ConfigError(
            f"this analysis comes from a record and its CWL JavaScript expressions "
            f"(InlineJavascriptRequirement) run in a container of {image} "
            f"(ODRUN_CWL_NODE_IMAGE), which {runtime.name} cannot run: {exc.message}",
            hint=f"{runtime.name} pull {image} (or set ODRUN_CWL_NODE_IMAGE to a local image "
            f"with node), or name the runtime (--runtime {runtime.name}) so that it is pulled",
        ) from None
    return argv


def write_node_shims(folder: Path, argv: list[str]) -> None:
    """``nodejs`` and ``node`` in ``folder`` (first on cwltool's PATH) running ``argv``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in NODE_NAMES:
        shim = folder / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n', encoding="utf-8")
        shim.chmod(0o755)


__all__ = ["NODE_NAMES", "node_argv", "prepare", "uses_javascript", "write_node_shims"]
