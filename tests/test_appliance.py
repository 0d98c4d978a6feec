"""The appliance: Vagrantfile, provision.sh, and the user-data `odrun appliance user-data`
renders, checked with the real tools (vagrant, cloud-init, shellcheck) and by running the
provisioning script's configuration step for real under a scratch root."""

from __future__ import annotations

import configparser
import email
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from odrun.appliance import PROVISION_PATH, SETTINGS_PATH, ApplianceSettings, user_data

REPO = Path(__file__).resolve().parent.parent
APPLIANCE = REPO / "appliance"
ROOT_HASH = "0123456789abcdef0123456789abcdef01234567"
PIP = "git+https://github.com/example/odrun@v0.1.0"


def need(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} is not installed (tests/run installs it)")
    return exe


def run(*argv: str, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def schema_ok(path: Path) -> subprocess.CompletedProcess[str]:
    return run(need("cloud-init"), "schema", "--config-file", str(path))


def test_shellcheck_clean() -> None:
    scripts = sorted(APPLIANCE.rglob("*.sh"))
    # and the scripts the appliance image carries (no .sh: they are commands there)
    scripts += [
        p
        for p in sorted((APPLIANCE / "image" / "rootfs").rglob("*"))
        if p.is_file() and p.read_bytes().startswith(b"#!/usr/bin/env bash")
    ]
    assert APPLIANCE / "build-image.sh" in scripts
    assert any(p.name == "odrun-appliance-selftest" for p in scripts)
    done = run(need("shellcheck"), "--severity=style", *map(str, scripts))
    assert done.returncode == 0, done.stdout + done.stderr


def copy_project(dest: Path) -> Path:
    shutil.copy(REPO / "Vagrantfile", dest / "Vagrantfile")
    shutil.copytree(APPLIANCE, dest / "appliance")
    return dest


def test_vagrant_validate(tmp_path: Path) -> None:
    vagrant = need("vagrant")
    env = {**os.environ, "VAGRANT_HOME": str(tmp_path / "vagrant-home")}
    good = copy_project(tmp_path)
    ok = run(vagrant, "validate", "--ignore-provider", cwd=good, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "validated successfully" in ok.stdout
    # with the settings vagrant users give, too
    env_set = {**env, "ODRUN_BOX": "almalinux/9", "CVMFS_QUOTA_LIMIT": "50000"}
    assert run(vagrant, "validate", "--ignore-provider", cwd=good, env=env_set).returncode == 0
    # the check can fail: a provisioner whose file is missing
    (good / "appliance" / "appliance.env").unlink()
    broken = run(vagrant, "validate", "--ignore-provider", cwd=good, env=env)
    assert broken.returncode != 0
    assert "appliance.env" in broken.stdout + broken.stderr


def test_checked_in_cloud_configs_are_valid_and_current() -> None:
    configs = sorted((APPLIANCE / "cloud-init").glob("*.yaml"))
    assert {p.name for p in configs} >= {"base.yaml", "user-data.yaml"}
    for path in configs:
        done = schema_ok(path)
        assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"
    # the rendered defaults shipped for people without odrun are what odrun renders now
    assert (APPLIANCE / "cloud-init" / "user-data.yaml").read_text() == user_data(
        ApplianceSettings()
    ), "run: odrun appliance user-data -o appliance/cloud-init/user-data.yaml"
    cernvm = (APPLIANCE / "cloud-init" / "user-data-cernvm.txt").read_text()
    assert cernvm == user_data(ApplianceSettings(), cernvm=True), (
        "run: odrun appliance user-data --cernvm -o appliance/cloud-init/user-data-cernvm.txt"
    )


def test_cloud_init_schema_rejects_invalid_user_data(tmp_path: Path) -> None:
    """The negative control of the cloud-init checks: the rendered user-data, broken in
    one place each time, is rejected, naming the place."""
    good = tmp_path / "good.yaml"
    good.write_text(user_data(ApplianceSettings()))
    assert schema_ok(good).returncode == 0, schema_ok(good).stdout
    for key, value in (("runcmd", 42), ("write_files", {"path": "/etc/x"})):
        doc = yaml.safe_load(good.read_text())
        doc[key] = value
        bad = tmp_path / f"bad-{key}.yaml"
        bad.write_text("#cloud-config\n" + yaml.safe_dump(doc))
        done = schema_ok(bad)
        assert done.returncode != 0, f"cloud-init accepted {key}: {value!r}"
        assert key in done.stdout + done.stderr
    broken = tmp_path / "not-yaml.yaml"
    broken.write_text(good.read_text().replace("runcmd:", "runcmd: [", 1))
    assert schema_ok(broken).returncode != 0


@pytest.mark.parametrize("cloud", ["openstack", "ec2", "gce"])
def test_rendered_cloud_config(odrun, tmp_path: Path, cloud: str) -> None:
    out = tmp_path / "user-data.yaml"
    result = odrun(
        "appliance", "user-data", "--pip-spec", PIP, "--cloud", cloud,
        "--cvmfs-repos", "cms.cern.ch,sft.cern.ch",
        "--proxy", "http://127.0.0.1:3128;DIRECT", "--quota-mb", "8000", "-o", str(out),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "launch with" in result.err
    text = out.read_text()
    assert text.startswith("#cloud-config\n")
    assert schema_ok(out).returncode == 0, schema_ok(out).stdout
    doc = yaml.safe_load(text)
    files = {f["path"]: f for f in doc["write_files"]}
    assert files[PROVISION_PATH]["content"] == (APPLIANCE / "provision.sh").read_text()
    assert files[PROVISION_PATH]["permissions"] == "0755"
    assert doc["runcmd"] == [[PROVISION_PATH]]
    settings = files[SETTINGS_PATH]["content"]
    assert "ODRUN_CVMFS_REPOS=cms.cern.ch,sft.cern.ch\n" in settings
    assert f"ODRUN_APPLIANCE_CLOUD={cloud}\n" in settings
    assert f"ODRUN_PIP_SPEC={PIP}\n" in settings
    # stdout without -o: the same document
    again = odrun("appliance", "user-data", "--pip-spec", PIP, "--cloud", cloud,
                  "--cvmfs-repos", "cms.cern.ch",
                  "--cvmfs-repos", "sft.cern.ch", "--proxy", "http://127.0.0.1:3128;DIRECT",
                  "--quota-mb", "8000")  # fmt: skip
    assert again.out == text


def provision_under(root: Path, cloud_config: str) -> subprocess.CompletedProcess[str]:
    """Lay the cloud-config's write_files under ``root``, then run its script's config step."""
    doc = yaml.safe_load(cloud_config)
    for entry in doc["write_files"]:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(entry["content"])
        path.chmod(int(entry["permissions"], 8))
    script = root / PROVISION_PATH.lstrip("/")
    env = {"PATH": os.environ["PATH"], "ODRUN_APPLIANCE_ROOT": str(root)}
    return run(str(script), "--only", "cvmfs-config", env=env)


def test_rendered_provisioning_configures_cvmfs(odrun, tmp_path: Path) -> None:
    lock = tmp_path / "odrun.lock"
    lock.write_text(json.dumps({"cvmfs": {
        "cms.cern.ch": {"revision": "123", "root_hash": ROOT_HASH},
        "sft.cern.ch": {"revision": None, "root_hash": None},
    }}))  # fmt: skip
    result = odrun(
        "appliance", "user-data", "--pip-spec", PIP, "--cvmfs-repos", "cms-opendata-conddb.cern.ch",
        "--proxy", "http://127.0.0.1:3128|http://127.0.0.2:3128;DIRECT", "--quota-mb", "12000",
        "--pin-from", str(lock),
    )  # fmt: skip
    assert result.code == 0, result.err
    root = tmp_path / "root"
    done = provision_under(root, result.out)
    assert done.returncode == 0, done.stderr
    local = (root / "etc/cvmfs/default.local").read_text().splitlines()
    assert "CVMFS_REPOSITORIES=cms-opendata-conddb.cern.ch,cms.cern.ch" in local
    assert "CVMFS_CLIENT_PROFILE=single" in local
    assert 'CVMFS_HTTP_PROXY="http://127.0.0.1:3128|http://127.0.0.2:3128;DIRECT"' in local
    assert "CVMFS_QUOTA_LIMIT=12000" in local
    pin = (root / "etc/cvmfs/config.d/cms.cern.ch.local").read_text()
    assert f"CVMFS_ROOT_HASH={ROOT_HASH}\n" in pin
    assert not (root / "etc/cvmfs/config.d/sft.cern.ch.local").exists()


def test_provision_settings_precedence_and_errors(tmp_path: Path) -> None:
    script = str(APPLIANCE / "provision.sh")
    (tmp_path / "etc/odrun").mkdir(parents=True)
    shutil.copy(APPLIANCE / "appliance.env", tmp_path / "etc/odrun/appliance.env")
    env = {"PATH": os.environ["PATH"], "ODRUN_APPLIANCE_ROOT": str(tmp_path)}
    done = run(script, "--only", "cvmfs-config", env={**env, "CVMFS_QUOTA_LIMIT": "777"})
    assert done.returncode == 0, done.stderr
    local = (tmp_path / "etc/cvmfs/default.local").read_text()
    assert "CVMFS_QUOTA_LIMIT=777\n" in local  # the environment wins over the file
    assert "CVMFS_REPOSITORIES=cms.cern.ch,cms-opendata-conddb.cern.ch,sft.cern.ch\n" in local
    assert "CVMFS_HTTP_PROXY" not in local  # empty: profile single alone
    bad = run(script, "--only", "cvmfs-config", env={**env, "CVMFS_QUOTA_LIMIT": "lots"})
    assert bad.returncode != 0
    assert "CVMFS_QUOTA_LIMIT must be a number of MB" in bad.stderr
    bad = run(script, "--only", "cvmfs-config", env={**env, "ODRUN_CVMFS_PINS": "cms.cern.ch=xyz"})
    assert bad.returncode != 0
    assert "ODRUN_CVMFS_PINS" in bad.stderr
    # a pinned repository name is a name, never a path under config.d/
    pin = f"../../evil.cern.ch={ROOT_HASH}"
    bad = run(script, "--only", "cvmfs-config", env={**env, "ODRUN_CVMFS_PINS": pin})
    assert bad.returncode != 0
    assert "is not a repository name" in bad.stderr
    assert not list(tmp_path.rglob("evil*"))
    # installing odrun needs an explicit ODRUN_PIP_SPEC: refused before any step runs
    bad = run(script, "--only", "cvmfs-config,odrun", env=env)
    assert bad.returncode != 0
    assert "ODRUN_PIP_SPEC is not set" in bad.stderr
    assert "step cvmfs-config" not in bad.stderr
    (tmp_path / "etc/odrun/appliance.env").write_text("SOMETHING=1\n")
    bad = run(script, "--only", "cvmfs-config", env=env)
    assert bad.returncode != 0
    assert "unknown setting SOMETHING" in bad.stderr
    assert run(script, "--only", "nonsense", env=env).returncode != 0


def test_cernvm_multipart(odrun, tmp_path: Path) -> None:
    result = odrun("appliance", "user-data", "--pip-spec", PIP, "--cernvm", "--cloud", "ec2",
                   "--proxy", "http://127.0.0.1:3128;DIRECT")  # fmt: skip
    assert result.code == 0, result.err
    message = email.message_from_string(result.out)
    assert message.is_multipart()
    parts = {p.get_content_type(): p for p in message.get_payload()}
    assert set(parts) == {"text/ucernvm", "text/amiconfig-user-data", "text/cloud-config"}
    for part in parts.values():
        assert part["Content-Transfer-Encoding"] == "7bit"  # readable by the bootloader's grep
    ucernvm = parts["text/ucernvm"].get_payload()
    lines = ucernvm.strip().splitlines()
    assert lines[0] == "[ucernvm-begin]"
    assert lines[-1] == "[ucernvm-end]"
    assert "cvmfs_http_proxy=http://127.0.0.1:3128;DIRECT" in lines
    assert "[ucernvm-begin]" in result.out  # in the raw user-data, as the bootloader reads it
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(parts["text/amiconfig-user-data"].get_payload())
    assert ini["amiconfig"]["plugins"] == "cernvm"
    assert ini["cernvm"]["repositories"] == "cms.cern.ch,cms-opendata-conddb.cern.ch,sft.cern.ch"
    assert ini["cernvm"]["proxy"] == "http://127.0.0.1:3128;DIRECT"
    config = tmp_path / "cloud-config.yaml"
    config.write_text(parts["text/cloud-config"].get_payload())
    done = schema_ok(config)
    assert done.returncode == 0, done.stdout + done.stderr
    # no proxy: the proxy lines are left out, not left empty
    plain = odrun("appliance", "user-data", "--pip-spec", PIP, "--cernvm").out
    assert "cvmfs_http_proxy=" not in plain
    assert "\nproxy=" not in plain


def test_bad_options_and_size_limits(odrun, tmp_path: Path) -> None:
    cases = {
        ("--cvmfs-repos", "CMS"): "not a fully qualified repository name",
        ("--proxy", "http://x y"): "is not a CVMFS proxy list",
        ("--quota-mb", "10"): "--quota-mb 10",
        ("--cloud", "azure"): "azure",
    }
    for args, message in cases.items():
        result = odrun(
            "appliance", "user-data", "--pip-spec", PIP, *args, "-o", str(tmp_path / "ud")
        )
        assert result.code == 2, (args, result.err)
        assert message in result.err
    assert not (tmp_path / "ud").exists()  # nothing half-written
    many = ",".join(f"repository-number-{n}.example.org" for n in range(400))
    big = odrun(
        "appliance", "user-data", "--pip-spec", PIP, "--cloud", "ec2", "--cvmfs-repos", many
    )
    assert big.code == 2
    assert "over the 16384-byte limit of ec2" in big.err
    assert odrun("appliance", "user-data", "--pip-spec", PIP, "--cloud", "gce",
                 "--cvmfs-repos", many).code == 0  # fmt: skip
    not_a_lock = tmp_path / "odrun.lock"
    not_a_lock.write_text("[]")
    bad = odrun("appliance", "user-data", "--pip-spec", PIP, "--pin-from", str(not_a_lock))
    assert bad.code == 2
    assert "not an odrun.lock" in bad.err


def test_pip_spec_required_and_checked(odrun, tmp_path: Path) -> None:
    out = tmp_path / "ud.yaml"
    missing = odrun("appliance", "user-data", "-o", str(out))
    assert missing.code == 2
    assert "--pip-spec is required" in missing.err
    assert "git+https://github.com/<org>/odrun@<tag>" in missing.err
    assert len(missing.err.strip().splitlines()) == 1
    for bad in ("odrun\nEVIL=1", "a b c", 'x"y', " git+https://x/y"):
        result = odrun("appliance", "user-data", "--pip-spec", bad, "-o", str(out))
        assert result.code == 2, (bad, result.err)
        assert "--pip-spec" in result.err
    assert not out.exists()
    named = "odrun[xrootd,fast] @ git+https://github.com/example/odrun@v0.1.0"
    good = odrun("appliance", "user-data", "--pip-spec", named)
    assert good.code == 0, good.err
    doc = yaml.safe_load(good.out)
    env = next(f["content"] for f in doc["write_files"] if f["path"] == SETTINGS_PATH)
    assert f"ODRUN_PIP_SPEC={named}\n" in env


def test_output_errors_are_typed_and_writes_atomic(odrun, tmp_path: Path) -> None:
    missing = odrun("appliance", "user-data", "--pip-spec", PIP, "-o", str(tmp_path / "no/ud"))
    assert missing.code == 2, missing.err
    assert f"the folder {tmp_path / 'no'} does not exist" in missing.err
    assert not (tmp_path / "no").exists()  # not created behind the user's back
    proc = odrun("appliance", "user-data", "--pip-spec", PIP, "-o", "/proc/odrun-user-data")
    assert proc.code == 8, proc.err
    assert "cannot write" in proc.err
    assert "bug" not in proc.err
    out = tmp_path / "ud.yaml"
    out.write_text("old")
    assert odrun("appliance", "user-data", "--pip-spec", PIP, "-o", str(out)).code == 0
    assert out.read_text().startswith("#cloud-config")
    assert [p.name for p in tmp_path.iterdir()] == ["ud.yaml"]  # no temp file left


def fake_python(folder: Path, name: str, version: tuple[int, int]) -> None:
    """A ``name`` on PATH that answers odrun's version check as Python ``version`` would."""
    exe = folder / name
    exe.write_text(
        "#!/bin/sh\n"
        f'exec {shutil.which("python3")} -c "import sys; sys.exit({version} < (3, 10))"\n'
    )
    exe.chmod(0o755)


def pick_python(path: Path) -> subprocess.CompletedProcess[str]:
    script = APPLIANCE / "provision.sh"
    bash = need("bash")  # PATH is only the fake pythons: the machine's own stay out of view
    return run(bash, "-c", f'source "{script}"; pick_python', env={"PATH": str(path)})


def test_provision_picks_a_python_of_at_least_3_10(tmp_path: Path) -> None:
    el9 = tmp_path / "el9"
    el9.mkdir()
    fake_python(el9, "python3", (3, 9))  # EL9's system python
    old = pick_python(el9)
    assert old.returncode != 0
    assert "odrun needs Python >= 3.10" in old.stderr
    assert "python3.11" in old.stderr
    fake_python(el9, "python3.11", (3, 11))  # after dnf install python3.11
    chosen = pick_python(el9)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == str(el9 / "python3.11")
    debian = tmp_path / "debian"
    debian.mkdir()
    fake_python(debian, "python3", (3, 11))
    assert pick_python(debian).stdout.strip() == str(debian / "python3")


def test_provision_warns_when_the_quota_exceeds_free_space(tmp_path: Path) -> None:
    script = str(APPLIANCE / "provision.sh")
    env = {"PATH": os.environ["PATH"], "ODRUN_APPLIANCE_ROOT": str(tmp_path)}
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    big = run(
        script, "--only", "cvmfs-config", env={**env, "CVMFS_QUOTA_LIMIT": str(free_mb + 10**6)}
    )
    assert big.returncode == 0, big.stderr
    assert "warning: CVMFS_QUOTA_LIMIT" in big.stderr
    assert "free on" in big.stderr
    small = run(script, "--only", "cvmfs-config", env={**env, "CVMFS_QUOTA_LIMIT": "1"})
    assert small.returncode == 0, small.stderr
    assert "warning" not in small.stderr


def test_cernvm_context_read_the_way_ucernvm_reads_it(odrun, tmp_path: Path) -> None:
    # the µCernVM bootloader has no MIME parser: it cuts its block out of the raw user-data
    # with sed and reads key=value lines; the block must hold exactly the bootloader settings
    ctx = tmp_path / "ctx"
    result = odrun("appliance", "user-data", "--pip-spec", PIP, "--cernvm",
                   "--proxy", "http://127.0.0.1:3128;DIRECT", "-o", str(ctx))  # fmt: skip
    assert result.code == 0, result.err
    block = run("sed", "-n", r"/^\[ucernvm-begin\]/,/^\[ucernvm-end\]/p", str(tmp_path / "ctx"))
    lines = block.stdout.splitlines()
    assert lines == [
        "[ucernvm-begin]",
        "resize_rootfs=on",
        "cvmfs_http_proxy=http://127.0.0.1:3128;DIRECT",
        "[ucernvm-end]",
    ], lines
    # amiconfig reads INI sections from its part; the cloud-config part is YAML cloud-init reads
    message = email.message_from_bytes((tmp_path / "ctx").read_bytes())
    parts = {p.get_content_type(): p.get_payload() for p in message.get_payload()}
    ini = configparser.ConfigParser(interpolation=None, strict=True)
    ini.read_string(parts["text/amiconfig-user-data"])
    assert ini.sections() == ["amiconfig", "cernvm"]
    doc = yaml.safe_load(parts["text/cloud-config"])
    assert {f["path"] for f in doc["write_files"]} == {SETTINGS_PATH, PROVISION_PATH}
    # the ucernvm block appears once: a second block would be read as well
    assert (tmp_path / "ctx").read_text().count("[ucernvm-begin]") == 1


def test_the_image_pins_every_runtime_dependency_of_odrun() -> None:
    """The appliance installs odrun offline from pinned wheels: a dependency added to
    pyproject.toml but not pinned in appliance/image/requirements.txt breaks odrun in the VM
    (jinja2 and pathspec did)."""
    import re

    import tomllib

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pinned = {
        re.split(r"[=<>~!]", line)[0].strip().lower().replace("_", "-")
        for line in (root / "appliance/image/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    needed = {
        re.split(r"[=<>~!;\[ ]", dep)[0].strip().lower().replace("_", "-")
        for dep in project["dependencies"]
        if "python_version < " not in dep
    }
    assert needed - pinned == set()
