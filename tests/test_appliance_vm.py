"""The appliance for real: the image appliance/build-image.sh makes, booted under QEMU with no
network, contextualised by `odrun appliance user-data --image` (NoCloud seed), checked from the
results disk its self-test writes; and the pieces of that check, each able to fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from odrun import __version__
from odrun.appliance_vm import DEMO_OUTPUTS, BootResult, assess, compare_outputs

REPO = Path(__file__).resolve().parent.parent
VM_TOOLS = ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "cloud-localds", "mkfs.ext4")


def cloud_config(text: str) -> dict:  # type: ignore[type-arg]
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def settings_file(doc: dict) -> str:  # type: ignore[type-arg]
    (entry,) = [f for f in doc["write_files"] if f["path"] == "/etc/odrun/appliance.env"]
    return str(entry["content"])


def test_image_user_data_needs_no_network(odrun, tmp_path: Path) -> None:
    result = odrun("appliance", "user-data", "--image", "--user", "alice", "--quota-mb", "2000")
    assert result.code == 0, result.err
    doc = cloud_config(result.out)
    # nothing to install and nothing to fetch: the image has it all, the guest has no network
    assert "packages" not in doc
    assert "package_update" not in doc
    assert doc["runcmd"] == [
        ["/usr/local/sbin/odrun-appliance-provision", "--only", "cvmfs-config,odrun"]
    ]
    env = settings_file(doc).splitlines()
    assert f"ODRUN_PIP_SPEC=odrun=={__version__}" in env  # the version requested, pinned
    assert "ODRUN_PIP_FIND_LINKS=/usr/share/odrun/wheels" in env
    assert "CVMFS_QUOTA_LIMIT=2000" in env
    (user,) = [u for u in doc["users"] if isinstance(u, dict)]
    assert user["name"] == "alice"
    assert user["lock_passwd"] is True
    assert "default" in doc["users"]
    path = tmp_path / "user-data"
    path.write_text(result.out)
    cloud_init = shutil.which("cloud-init")
    if cloud_init is None:
        pytest.skip("cloud-init is not installed (tests/run installs it)")
    done = subprocess.run([cloud_init, "schema", "--config-file", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # without --image the provisioning still installs packages from the network
    online = cloud_config(odrun("appliance", "user-data", "--pip-spec", "odrun==0.1.0").out)
    assert online["package_update"] is True
    assert "ODRUN_PIP_FIND_LINKS" not in settings_file(online)


def test_user_and_ssh_key_options_are_checked(odrun) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq2 me@host"
    ok = odrun("appliance", "user-data", "--image", "--user", "bob", "--ssh-key", key)
    assert ok.code == 0, ok.err
    (user,) = [u for u in cloud_config(ok.out)["users"] if isinstance(u, dict)]
    assert user["ssh_authorized_keys"] == [key]
    for argv, needle in [
        (["--user", "Bad User"], "--user 'Bad User'"),
        (["--user", "bob", "--ssh-key", "not a key\nrunCmd: x"], "--ssh-key"),
        (["--ssh-key", key], "--ssh-key needs --user"),
        # a trailing newline would smuggle a second line into the user-data
        (["--user", "bob\n"], "--user 'bob\\n'"),
        (["--user", "bob", "--ssh-key", key + "\n"], "--ssh-key"),
    ]:
        bad = odrun("appliance", "user-data", "--image", *argv)
        assert bad.code == 2, (argv, bad.out)
        assert needle in bad.err
        assert "Traceback" not in bad.err


def fake_results(root: Path, **override: str) -> BootResult:
    files = {
        "cloud-init-status.json": json.dumps({"status": "done", "errors": []}),
        "passwd": "root:x:0:0::/root:/bin/bash\nodrun:x:1000:1000::/home/odrun:/bin/bash\n",
        "etc/cvmfs/default.local": "CVMFS_REPOSITORIES=cms.cern.ch\nCVMFS_QUOTA_LIMIT=4000\n",
        "odrun-version": f"odrun, version {__version__}\n",
        "doctor.json": json.dumps(
            {"checks": [{"area": "cvmfs", "name": "cms.cern.ch", "status": "warn"}]}
        ),
        "doctor.rc": "0\n",
        "run.rc": "0\n",
        **{f"outputs/{name}": name for name in DEMO_OUTPUTS},
    }
    files.update(override)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return BootResult(root, root / "console.log", 1.0, True)


def test_assess_fails_each_check_it_makes(tmp_path: Path) -> None:
    host = tmp_path / "host"
    for name in DEMO_OUTPUTS:
        (host / name).parent.mkdir(parents=True, exist_ok=True)
        (host / name).write_text(name)
    kwargs = {"user": "odrun", "quota_mb": 4000, "repos": ("cms.cern.ch",), "version": __version__}
    good = assess(fake_results(tmp_path / "good"), host_outputs=host, **kwargs)  # type: ignore[arg-type]
    assert [f.name for f in good if not f.ok] == [], good
    assert {f.name for f in good} == {"cloud-init", "user", "cvmfs-config", "odrun-version",
                                      "doctor", "demo-run", "same-answer"}  # fmt: skip
    bad_cases = {
        "cloud-init": {"cloud-init-status.json": json.dumps({"status": "error", "errors": ["x"]})},
        "user": {"passwd": "root:x:0:0::/root:/bin/bash\n"},
        "cvmfs-config": {"etc/cvmfs/default.local": "CVMFS_QUOTA_LIMIT=8000\n"},
        "odrun-version": {"odrun-version": "odrun, version 0.0.9\n"},
        "doctor": {"doctor.rc": "8\n"},
        "demo-run": {"run.rc": "10\n"},
        "same-answer": {"outputs/results/fit.json": '{"mass": 91.0}'},
    }
    for i, (name, override) in enumerate(bad_cases.items()):
        found = assess(fake_results(tmp_path / f"bad{i}", **override), host_outputs=host, **kwargs)  # type: ignore[arg-type]
        assert [f.name for f in found if not f.ok] == [name], (name, found)
    # a missing output is a difference, not a crash
    (host / DEMO_OUTPUTS[1]).unlink()
    assert compare_outputs(tmp_path / "good" / "outputs", host) == [
        f"{DEMO_OUTPUTS[1]}: guest "
        + __import__("hashlib").sha256(DEMO_OUTPUTS[1].encode()).hexdigest()
        + " != host missing"
    ]


def vm_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "building the appliance image needs root"
    missing = [t for t in VM_TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing (tests/run installs them)"
    return None


@pytest.mark.timeout(2700)
def test_the_appliance_boots_and_gives_the_same_answer(tmp_path: Path) -> None:
    """`odrun appliance test`: build or reuse the image, boot it under QEMU (TCG, no network,
    1.5 GB), contextualise it with odrun's user-data, and check everything from the results
    disk, the demo's outputs byte for byte against a host run. The build (~5 min cold) is
    cached by the hash of its inputs; the boot takes 3-6 minutes under software emulation."""
    reason = vm_unavailable()
    if reason:
        pytest.skip(reason)
    done = subprocess.run(
        [sys.executable, "-m", "odrun", "appliance", "test", "--json", "--workdir", str(tmp_path),
         "--timeout", "1200"],
        capture_output=True, text=True, timeout=2600, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    report = json.loads(done.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert not failed, (failed, (tmp_path / "vm" / "console.log").read_text()[-3000:])
    assert done.returncode == 0, done.stderr
    names = {c["name"] for c in report["checks"]}
    assert names >= {"cloud-init", "user", "cvmfs-config", "odrun-version", "doctor", "demo-run",
                     "same-answer"}  # fmt: skip
    # doctor reports the CVMFS repositories as missing (offline), without failing
    doctor = json.loads((tmp_path / "vm" / "results" / "doctor.json").read_text())
    cvmfs = {c["name"]: c["status"] for c in doctor["checks"] if c["area"] == "cvmfs"}
    assert cvmfs.get("cms.cern.ch") == "warn", cvmfs
    # the guest had no network: no address but loopback
    addresses = (tmp_path / "vm" / "results" / "ip-addr").read_text()
    assert "inet " not in addresses.replace("inet 127.0.0.1/8", ""), addresses
    print(json.dumps(report["seconds"]))


def test_results_from_the_guest_stay_in_their_folder(tmp_path: Path) -> None:
    import io
    import tarfile

    from odrun.appliance_vm import extract_results

    disk = tmp_path / "results.img"
    with tarfile.open(disk, "w") as tar:
        for name, data in [("./doctor.json", b"{}"), ("../escape.txt", b"x"), ("/etc/evil", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with disk.open("ab") as handle:  # the rest of the disk: zeros after the archive
        handle.write(b"\0" * 65536)
    dest = tmp_path / "results"
    dest.mkdir()
    with tarfile.open(disk, "r:") as tar:
        extract_results(tar, dest)
    assert (dest / "doctor.json").read_bytes() == b"{}"
    assert not (tmp_path / "escape.txt").exists()
    assert not (dest / "link").exists()
    assert not Path("/etc/evil").exists()
    assert sorted(p.name for p in dest.rglob("*")) == ["doctor.json"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--proxy", "http://squid.example.org:3128\n"),
        ("--pip-spec", "odrun==0.1.0\n"),
        ("--user", "alice\n"),
    ],
)
def test_a_trailing_newline_is_refused_in_every_setting(odrun, option: str, value: str) -> None:
    # every value lands on one line of appliance.env or the cloud-config: no line breaks at all
    result = odrun("appliance", "user-data", "--image", option, value)
    assert result.code == 2, result.out[-300:]
    assert option in result.err
    assert "Traceback" not in result.err


def test_a_repository_name_with_a_trailing_newline_is_refused() -> None:
    from odrun import cvmfs
    from odrun.appliance import ApplianceSettings
    from odrun.errors import UsageError

    with pytest.raises(UsageError, match="not a fully qualified repository name"):
        cvmfs.check_repo_name("cms.cern.ch\n")
    with pytest.raises(UsageError):
        ApplianceSettings(repos=("cms.cern.ch\n",))
