"""Typed settings with one precedence: CLI > ODRUN_* environment > config file > defaults.

The config file is TOML (``$ODRUN_CONFIG``, default ``<user config dir>/odrun/config.toml``)
with the same keys as the :class:`Settings` fields, e.g.::

    portal_url = "https://opendata.cern.ch"
    cache_dir = "/scratch/odrun-cache"
    protocol_map = "root://eospublic.cern.ch=https://eospublic.cern.ch"
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
from .urls import DEFAULT_PROTOCOL_MAP, ProtocolMap

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

DEFAULT_PORTAL = "https://opendata.cern.ch"
ENV_PREFIX = "ODRUN_"


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
    #: seconds a cached metadata response counts as fresh
    metadata_ttl: float = 7 * 24 * 3600.0
    protocol_map: ProtocolMap = field(
        default_factory=lambda: ProtocolMap.parse(DEFAULT_PROTOCOL_MAP)
    )
    #: unpacking a record's code archive stops past this many bytes written (10 GiB)
    unpack_max_bytes: int = 10 * 1024**3
    #: ... or when the bytes written exceed this many times the archive's size
    unpack_max_ratio: float = 200.0
    #: ... or past this many members
    unpack_max_members: int = 100_000

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
            raw = env.get(ENV_PREFIX + f.name.upper())
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
    where = f"setting {name} (env {ENV_PREFIX}{name.upper()})"
    try:
        if name in ("offline", "refresh"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError("expected true/false")
        if name in ("timeout", "retry_backoff", "metadata_ttl"):
            number = float(value)
            # NaN, inf and 1e300 too: they reach int(), sleep() and socket timeouts
            if not 0 <= number <= MAX_SECONDS:
                raise ValueError(f"must be a number of seconds from 0 to {MAX_SECONDS:g}")
            return number
        if name == "unpack_max_ratio":
            ratio = float(value)
            if not ratio > 0:
                raise ValueError("must be positive")
            return ratio
        if name in ("retries", "unpack_max_bytes", "unpack_max_members"):
            count = int(value)
            # the unpack limits are byte and member counts: 50 GB must be sayable
            top = MAX_RETRIES if name == "retries" else untrusted.MAX_COUNT
            if not 0 <= count <= top:
                raise ValueError(f"must be from 0 to {top}")
            return count
        if name == "cache_dir":
            return Path(os.path.expanduser(str(value)))
        if name == "protocol_map":
            return value if isinstance(value, ProtocolMap) else ProtocolMap.parse(str(value))
        if name == "portal_url":
            return str(value).strip()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} has bad value {value!r}: {exc}") from None
    raise ConfigError(f"unknown setting {name!r}")  # pragma: no cover - guarded by _KNOWN
