"""Typed settings with one precedence: CLI > ODRUN_* environment > config file > defaults.

The process environment is read here and nowhere else: the ``ODRUN_*`` variable of each
field, the REANA variables reana-client reads (``REANA_SERVER_URL``,
``REANA_ACCESS_TOKEN``, ``REANA_WORKON``: see :data:`FOREIGN_ENV`), and, for child
processes and diagnostics, :func:`process_environment` and :func:`debug_enabled`.

The config file is TOML (``$ODRUN_CONFIG``, default ``<user config dir>/odrun/config.toml``)
with the same keys as the :class:`Settings` fields, e.g.::

    portal_url = "https://opendata.cern.ch"
    cache_dir = "/scratch/odrun-cache"
    protocol_map = "root://eospublic.cern.ch=https://eospublic.cern.ch"

``index_failure_ttl`` (``ODRUN_INDEX_FAILURE_TTL``, seconds, default 300): a file
index that could not be read (unreachable storage, 404) is remembered in the
metadata cache, and for this long later calls report it missing at once instead
of retrying; ``--refresh`` or 0 asks again every time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from . import untrusted
from .errors import ConfigError
from .untrusted import MAX_COUNT
from .urls import DEFAULT_PROTOCOL_MAP, ProtocolMap

DEFAULT_PORTAL = "https://opendata.cern.ch"
DEFAULT_HEPDATA = "https://www.hepdata.net"
ENV_PREFIX = "ODRUN_"
DEFAULT_CVMFS_ROOT = Path("/cvmfs")
#: fields read from another tool's variable (reana-client's) instead of ODRUN_<FIELD>
FOREIGN_ENV = {
    "reana_server_url": "REANA_SERVER_URL",
    "reana_access_token": "REANA_ACCESS_TOKEN",
    "reana_workon": "REANA_WORKON",
}


def _default_cache_dir() -> Path:
    return platformdirs.user_cache_path("odrun")


@dataclass(frozen=True)
class Settings:
    """Everything that changes how odrun talks to the world."""

    portal_url: str = DEFAULT_PORTAL
    cache_dir: Path = field(default_factory=_default_cache_dir)
    offline: bool = False
    #: re-fetch metadata even when a fresh cached copy exists
    refresh: bool = False
    #: seconds for connect/read of one request
    timeout: float = 30.0
    #: extra attempts after a transient failure (5xx, reset, timeout)
    retries: int = 3
    #: first backoff delay in seconds; doubles per attempt, with jitter
    retry_backoff: float = 0.5
    #: concurrent byte-range streams for one large file (1: one stream per file); 0, the
    #: default, is automatic: 4, but 1 from a server on this machine (loopback, file://),
    #: where no link limits a connection and more streams only cost CPU
    streams: int = 0
    #: files of at least this many bytes are fetched in ``streams`` ranges
    streams_min_size: int = 64 * 1024 * 1024
    #: seconds a cached metadata response counts as fresh
    metadata_ttl: float = 7 * 24 * 3600.0
    #: seconds a file index that could not be read is not asked again (0: always ask)
    index_failure_ttl: float = 300.0
    protocol_map: ProtocolMap = field(
        default_factory=lambda: ProtocolMap.parse(DEFAULT_PROTOCOL_MAP)
    )
    #: unpacking a record's code archive stops past this many bytes written (10 GiB)
    unpack_max_bytes: int = 10 * 1024**3
    #: ... or when the bytes written exceed this many times the archive's size
    unpack_max_ratio: float = 200.0
    #: ... or past this many members
    unpack_max_members: int = 100_000
    #: where CVMFS repositories are mounted (ODRUN_CVMFS_ROOT)
    cvmfs_root: Path = DEFAULT_CVMFS_ROOT
    #: the REANA server (REANA_SERVER_URL; --server wins)
    reana_server_url: str | None = None
    #: the REANA access token (REANA_ACCESS_TOKEN); never shown in repr
    reana_access_token: str | None = field(default=None, repr=False)
    #: the workflow status/logs/download/stop act on when RUN is omitted (REANA_WORKON)
    reana_workon: str | None = None
    #: HEPData, for ``hepdata:`` references (ODRUN_HEPDATA_URL; https, or http on loopback)
    hepdata_url: str = DEFAULT_HEPDATA
    #: the Python that runs yadage for workflow.type yadage (ODRUN_YADAGE_PYTHON): a venv
    #: with yadage and packtivity (their pins conflict with odrun's); None: odrun's own
    yadage_python: Path | None = None
    #: the image in which a record's CWL JavaScript expressions are evaluated by node
    #: (ODRUN_CWL_NODE_IMAGE), never a node on the host (odrun.workflow.cwl_js)
    cwl_node_image: str = "docker.io/library/node:alpine"

    @property
    def metadata_cache_dir(self) -> Path:
        return self.cache_dir / "metadata"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from defaults, the config file, ODRUN_* variables and ``overrides``.

        ``overrides`` holds CLI values; a ``None`` value means "not given".
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        values.update(_read_config_file(env))
        for f in fields(cls):
            raw = env.get(FOREIGN_ENV.get(f.name, ENV_PREFIX + f.name.upper()))
            if raw is not None and raw != "":
                values[f.name] = raw
        # ODRUN_PORTAL is a convenient alias of ODRUN_PORTAL_URL
        if "portal_url" not in values and env.get("ODRUN_PORTAL"):
            values["portal_url"] = env["ODRUN_PORTAL"]
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        return cls(**{k: _coerce(k, v) for k, v in values.items()})


_KNOWN = {f.name for f in fields(Settings)}


#: variables a child process never gets: analysis code (a Snakefile's Python, a host step,
#: a CWL expression) runs in those children and could read and send them
SECRET_ENV = (FOREIGN_ENV["reana_access_token"],)


def process_environment() -> dict[str, str]:
    """A copy of the process environment, for a child process (Snakemake, a container
    runtime, a host step) that must see what odrun was started with, without
    :data:`SECRET_ENV` (the REANA token); odrun itself reads settings."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV}


def environment_value(*names: str) -> str | None:
    """The first of ``names`` set (non-empty) in the process environment: for variables
    that belong to other programs and that ``odrun doctor`` reports (proxies)."""
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def debug_enabled() -> bool:
    """ODRUN_DEBUG: show the traceback of an unexpected error instead of one line."""
    return bool(os.environ.get("ODRUN_DEBUG"))


def _config_path(env: Mapping[str, str]) -> tuple[Path, bool]:
    explicit = env.get("ODRUN_CONFIG")
    if explicit:
        return Path(explicit), True
    return platformdirs.user_config_path("odrun") / "config.toml", False


def _read_config_file(env: Mapping[str, str]) -> dict[str, Any]:
    path, explicit = _config_path(env)
    if not path.is_file():
        if explicit:
            raise ConfigError(
                f"config file {path} (ODRUN_CONFIG) does not exist",
                hint="create it or unset ODRUN_CONFIG",
            )
        return {}
    # the parser only when there is a file to parse (start-up: most processes have none)
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # TOMLDecodeError, UnicodeDecodeError: ValueErrors
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown key(s) {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(_KNOWN))}",
        )
    return data


#: bounds of the numeric settings: beyond them sleep() and socket timeouts overflow
MAX_SECONDS = 1e9
MAX_RETRIES = 100
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any) -> Any:
    """Turn a config/env/CLI value into the field's type, or raise ConfigError."""
    where = f"setting {name} (env {FOREIGN_ENV.get(name, ENV_PREFIX + name.upper())})"
    try:
        if name in ("offline", "refresh"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError("expected true/false")
        if name in ("timeout", "retry_backoff", "metadata_ttl", "index_failure_ttl"):
            number = float(value)
            # NaN, inf and 1e300 too: they reach int(), sleep() and socket timeouts
            if not 0 <= number <= MAX_SECONDS:
                raise ValueError(f"must be a number of seconds from 0 to {MAX_SECONDS:g}")
            return number
        if name == "unpack_max_ratio":
            ratio = float(value)
            if not 0 < ratio <= MAX_COUNT:  # NaN and inf too
                raise ValueError("must be a positive number")
            return ratio
        if name in ("retries", "unpack_max_bytes", "unpack_max_members"):
            limit = MAX_RETRIES if name == "retries" else MAX_COUNT
            count = value if isinstance(value, int) else untrusted.count(str(value))
            if count is None or not 0 <= count <= limit:
                raise ValueError(f"must be a whole number from 0 to {limit}")
            return count
        if name in ("streams", "streams_min_size"):
            limit = 64 if name == "streams" else MAX_COUNT
            amount = value if isinstance(value, int) else untrusted.count(str(value))
            low = 1 if name == "streams" else 0
            if amount is None or not low <= amount <= limit:
                raise ValueError(f"must be a whole number from {low} to {limit}")
            return amount
        if name in ("cache_dir", "cvmfs_root"):
            return Path(os.path.expanduser(str(value)))
        if name == "yadage_python":
            return Path(os.path.expanduser(str(value))) if str(value).strip() else None
        if name in FOREIGN_ENV:
            return str(value).strip() or None
        if name == "protocol_map":
            return value if isinstance(value, ProtocolMap) else ProtocolMap.parse(str(value))
        if name in ("portal_url", "hepdata_url"):
            return str(value).strip()
        if name == "cwl_node_image":
            image = str(value).strip()
            if not image or image.startswith("-") or len(image.split()) != 1:
                raise ValueError("must be one image name (docker.io/library/node:alpine)")
            return image
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} has bad value {value!r}: {exc}") from None
    raise ConfigError(f"unknown setting {name!r}")  # pragma: no cover - guarded by _KNOWN
