"""Where a run's steps will run, decided before anything is fetched or staged.

:func:`choose_runtime` checks the runtime asked for, its images (pulled unless
offline) and the CVMFS repositories; ``--runtime auto`` falls back to the host
only for an analysis the user wrote (never for one fetched from a record), and
then loudly: a warning banner, and :class:`~odrun.workflow.runtime.Fallback`
recorded in run.json, the lock and the RO-Crate, so ``--locked`` can refuse it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odrun.errors import ConfigError, UsageError
from odrun.workflow.runtime import (
    CONTAINER_RUNTIMES,
    Fallback,
    HostRuntime,
    OciRuntime,
    Runtime,
    check_cvmfs,
    describe,
    installed_container_runtimes,
    make_runtime,
)

if TYPE_CHECKING:
    from odrun.workflow.model import RunResult, Say
    from odrun.workflow.spec import Analysis

BANNER = "=" * 72


def choose_runtime(
    analysis: Analysis, result: RunResult, images: list[str], untrusted: bool, say: Say
) -> Runtime:
    """The runtime asked for (``result.runtime``), ready to run ``images``.

    ``auto``: the first installed container runtime that already has every image (it
    never pulls); else the host, recorded as a fallback in ``result``. An explicit
    runtime that cannot run raises ConfigError/UsageError instead.
    """
    resources = (analysis.reana or {}).get("workflow", {}).get("resources") or {}
    cvmfs = check_cvmfs([str(r) for r in resources.get("cvmfs") or []])
    wanted = result.runtime
    # auto only uses what is already there: choosing a runtime never goes to a registry
    # (the offline demo stays offline); an explicit --runtime podman|docker pulls
    pull = not result.offline and wanted != "auto"
    fallback: Fallback | None = None
    runtime: Runtime
    if wanted != "auto":
        runtime, name = make_runtime(wanted, cvmfs, pull), wanted
        if name != "host":
            for image in images or [None]:  # type: ignore[list-item]
                runtime.prepare(image)
    elif not images:  # no step names an image: nothing to run in a container
        runtime, name = HostRuntime(), "host"
    else:
        runtime, name, fallback = _first_ready(images, cvmfs, pull)
    if wanted == "auto" and name == "host" and untrusted:
        why = fallback.reason if fallback else "no step names a container image"
        raise ConfigError(
            f"this analysis comes from a record and would run on the host: {why}",
            hint="review its commands, then allow it with --runtime host",
        )
    if fallback is not None:
        _banner(fallback, images, say)
        result.runtime_fallback = fallback
    elif wanted == "auto" and name == "host":
        say("warning: --runtime auto: no step names a container image; running on the host")
    result.runtime = name
    if isinstance(runtime, OciRuntime):
        for image in images:
            digest = runtime.digest(image)
            if digest:
                result.image_digests[image] = digest
    if name == "host" and images:
        result.ignored_images = images
        say(f"warning: runtime host ignores the step images: {', '.join(images)}")
    return runtime


def whole_network(analysis: Analysis, say: Say, jobs: str) -> bool:
    """Whether an engine's jobs (``jobs``: "CWL jobs") get the network: odrun.yaml
    ``network: true`` only. A list of step names cannot apply to jobs the container runtime
    cannot tell apart: said in a warning, and they run with ``--network=none``."""
    allowed = analysis.manifest.get("network", False)
    if isinstance(allowed, list) and allowed:
        say(
            f"warning: odrun.yaml network names steps; {jobs} cannot be told apart by the "
            "container runtime, so only 'network: true' applies to them: they run with "
            "--network=none"
        )
    return allowed is True


def host_without_images(
    result: RunResult, untrusted: bool, say: Say, *, source: str, declare: str, parts: str
) -> None:
    """An engine whose jobs name no image (``source`` "the Snakefile", "the CWL workflow")
    runs them on the host: refused for an explicit container runtime, and under ``auto``
    for an analysis from a record (review first); said as a warning otherwise."""
    wanted = result.runtime
    if wanted in ("podman", "docker", "apptainer"):
        raise UsageError(
            f"--runtime {wanted}: {source} declares no {declare} image",
            hint=f"add {declare} to its {parts}, or use --runtime host",
        )
    if wanted == "auto" and untrusted:
        raise ConfigError(
            f"this analysis comes from a record and would run on the host: {source} "
            f"declares no {declare} image",
            hint=f"review its {parts}, then allow it with --runtime host",
        )
    if wanted == "auto":
        say(f"warning: --runtime auto: {source} names no image; runs on the host")
    result.runtime = "host"


def _first_ready(
    images: list[str], cvmfs: tuple[str, ...], pull: bool
) -> tuple[Runtime, str, Fallback | None]:
    """``auto``: the first installed container runtime that has every image, else the host
    and the fallback naming the first runtime tried and why each one could not run them."""
    tried = installed_container_runtimes()
    if not tried:
        why = f"no container runtime ({', '.join(CONTAINER_RUNTIMES)}) is installed"
        return HostRuntime(), "host", Fallback("auto", why)
    reasons = []
    for name in tried:
        runtime = make_runtime(name, cvmfs, pull)
        try:
            for image in images:
                runtime.prepare(image)
        except (ConfigError, UsageError) as exc:
            reasons.append(exc.message)
            continue
        return runtime, name, None
    return HostRuntime(), "host", Fallback(tried[0], "; ".join(reasons))


def _banner(fallback: Fallback, images: list[str], say: Say) -> None:
    say(BANNER)
    say(f"WARNING: runtime {describe('host', fallback)}")
    say(
        f"--runtime auto: {fallback.reason}; running on the host: the commands run on this "
        f"machine, not in {', '.join(images)}, and results may differ"
    )
    say("to run in the images make them available; to accept the host say --runtime host")
    say("recorded in run.json, odrun.lock and the RO-Crate; --locked refuses this run")
    say(BANNER)
