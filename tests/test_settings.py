from __future__ import annotations

from pathlib import Path

import pytest

from odrun.errors import ConfigError
from odrun.settings import DEFAULT_PORTAL, Settings
from odrun.urls import ProtocolMap


def test_defaults() -> None:
    s = Settings.load(environ={})
    assert s.portal_url == DEFAULT_PORTAL
    assert s.protocol_map.to_http("root://eospublic.cern.ch//eos/opendata/a") == (
        "https://eospublic.cern.ch//eos/opendata/a"
    )


def test_precedence_cli_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('portal_url = "https://from-file"\ntimeout = 7\nretries = 9\n')
    env = {
        "ODRUN_CONFIG": str(config),
        "ODRUN_PORTAL_URL": "https://from-env",
        "ODRUN_TIMEOUT": "3",
    }
    s = Settings.load({"portal_url": "https://from-cli", "offline": None}, environ=env)
    assert s.portal_url == "https://from-cli"
    assert s.timeout == 3.0
    assert s.retries == 9
    assert s.offline is False
    assert Settings.load(environ=env).portal_url == "https://from-env"


def test_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("portal_url = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(environ={"ODRUN_CONFIG": str(bad)})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("portl = 'x'\n")
    with pytest.raises(ConfigError, match="unknown key"):
        Settings.load(environ={"ODRUN_CONFIG": str(unknown)})
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(environ={"ODRUN_CONFIG": str(tmp_path / "none.toml")})


@pytest.mark.parametrize(
    ("name", "value"), [("ODRUN_RETRIES", "-1"), ("ODRUN_OFFLINE", "maybe"), ("ODRUN_TIMEOUT", "x")]
)
def test_bad_env_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.load(environ={name: value})


def test_protocol_map() -> None:
    pmap = ProtocolMap.parse(
        "root://127.0.0.1:1094=http://127.0.0.1:8094, root://a.ch=https://a.ch/"
    )
    assert pmap.to_http("root://127.0.0.1:1094//data/f") == "http://127.0.0.1:8094//data/f"
    assert pmap.to_root("https://a.ch//eos/x") == "root://a.ch//eos/x"
    assert pmap.rewrite("root://other.ch//x", "https") == "root://other.ch//x"
    assert pmap.to_http("root://127.0.0.1:10940//data/f") is None
    with pytest.raises(ConfigError, match="ROOT_PREFIX=HTTP_PREFIX"):
        ProtocolMap.parse("https://a=root://b")
