"""Render the odrun appliance's user-data (cloud-init, CernVM contextualization) from appliance/.

The provisioning is one shell script, ``appliance/provision.sh``, that Vagrant
runs directly. For clouds it travels inside a ``#cloud-config`` document
(``write_files`` puts it and its settings on the machine, ``runcmd`` runs it).
For CernVM images the cloud-config becomes one part of a MIME multipart
user-data, next to an amiconfig part (``[amiconfig]``/``[cernvm]``) and a
µCernVM bootloader part (``[ucernvm-begin]``...``[ucernvm-end]``): each agent
reads the part it understands.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from string import Template
from typing import Any

import yaml

from odrun import cvmfs
from odrun._version import __version__
from odrun._yaml import load_yaml
from odrun.errors import ConfigError, UsageError

_HERE = Path(__file__).parent
#: user-data size limits (bytes, as sent): EC2 16 KiB, Nova 64 KiB, GCE metadata 256 KiB
CLOUD_LIMITS = {"ec2": 16 * 1024, "openstack": 65535, "gce": 256 * 1024}
LAUNCH = {
    "openstack": "openstack server create --image IMAGE --flavor FLAVOR --user-data FILE NAME",
    "ec2": "aws ec2 run-instances --image-id AMI --instance-type TYPE --user-data file://FILE",
    "gce": "gcloud compute instances create NAME --image-family IMAGE "
    "--metadata-from-file user-data=FILE",
}
#: CernVM's documented limit for a context
CERNVM_LIMIT = 16 * 1024
PROVISION_PATH = "/usr/local/sbin/odrun-appliance-provision"
SETTINGS_PATH = "/etc/odrun/appliance.env"
_PROXY = re.compile(r"^(DIRECT|auto|[A-Za-z0-9.:/@_%+|;\[\]-]+)$")
#: a pip argument on one line of appliance.env: a URL or path, or ``name[extras] @ URL``
_PIP_SPEC = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*(?:\[[A-Za-z0-9,._-]+\])? @ )?[^\s\"'$`]+$")
PIP_SPEC_EXAMPLE = "git+https://github.com/<org>/odrun@<tag> or a wheel URL"
#: where the appliance image (appliance/build-image.sh) keeps odrun's wheels and the demo
IMAGE_WHEELS = "/usr/share/odrun/wheels"
#: provision.sh's steps that need no network: what a boot of the appliance image runs
IMAGE_STEPS = "cvmfs-config,odrun"
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SSH_KEY = re.compile(r"^(ssh|ecdsa|sk)-[A-Za-z0-9@._-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?$")


def appliance_dir() -> Path:
    """The appliance files: ``odrun/_appliance`` in a wheel, ``appliance/`` in a checkout."""
    for folder in (_HERE / "_appliance", _HERE.parent / "appliance"):
        if (folder / "provision.sh").is_file():
            return folder
    raise FileNotFoundError("the appliance files are missing from this odrun installation")


@dataclass(frozen=True)
class ApplianceSettings:
    """What the appliance is provisioned with (the keys of appliance/appliance.env)."""

    repos: tuple[str, ...] = cvmfs.OPEN_DATA_REPOS
    proxy: str = ""
    quota_mb: int = 4000
    pins: dict[str, str] = field(default_factory=dict)
    #: empty renders a template: provision.sh refuses to install odrun until it is set
    pip_spec: str = ""
    cloud: str = "openstack"
    #: a folder of wheels pip installs odrun from alone, offline (ODRUN_PIP_FIND_LINKS)
    find_links: str = ""
    #: for the prebuilt appliance image: no packages, only provision.sh's offline steps
    image: bool = False
    #: a login user to create (sudo, locked password), with these SSH keys
    user: str = ""
    ssh_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.cloud not in CLOUD_LIMITS:
            raise UsageError(
                f"--cloud {self.cloud!r}: expected one of {', '.join(sorted(CLOUD_LIMITS))}"
            )
        if not self.repos:
            raise UsageError("--cvmfs-repos is empty", hint="name at least one, e.g. cms.cern.ch")
        for repo in (*self.repos, *self.pins):
            cvmfs.check_repo_name(repo)
        if self.proxy and not _PROXY.fullmatch(self.proxy):
            raise UsageError(
                f"--proxy {self.proxy!r} is not a CVMFS proxy list",
                hint='e.g. "http://squid.example.org:3128;DIRECT": | load-balances, ; fails over',
            )
        if not 1000 <= self.quota_mb <= 10_000_000:
            raise UsageError(
                f"--quota-mb {self.quota_mb}: expected 1000 to 10000000 MB of CVMFS cache"
            )
        if self.pip_spec and not _PIP_SPEC.fullmatch(self.pip_spec):
            raise UsageError(
                f"--pip-spec {self.pip_spec!r}: expected one pip requirement without spaces, "
                f"quotes or newlines, e.g. {PIP_SPEC_EXAMPLE}"
            )
        if self.find_links and not re.fullmatch(r"/[A-Za-z0-9._/-]*", self.find_links):
            raise UsageError(f"find-links {self.find_links!r}: expected an absolute folder path")
        if self.user and not _USER.fullmatch(self.user):
            raise UsageError(
                f"--user {self.user!r}: expected a login name (a-z, 0-9, _ and -, 32 at most)"
            )
        for key in self.ssh_keys:
            if not _SSH_KEY.fullmatch(key):
                raise UsageError(
                    f"--ssh-key {key[:40]!r}: expected one public key line, e.g. "
                    "'ssh-ed25519 AAAA... me@host'"
                )
        if self.ssh_keys and not self.user:
            raise UsageError("--ssh-key needs --user (the account the keys log in to)")
        for repo, root_hash in self.pins.items():
            if not re.fullmatch(r"[0-9a-f]{40}(-[a-z0-9]+)?", root_hash):
                raise UsageError(f"pin {repo}={root_hash}: a root hash is 40 hex digits")

    def env_text(self) -> str:
        """The settings file the machine keeps (``/etc/odrun/appliance.env``)."""
        pins = ",".join(f"{repo}={h}" for repo, h in sorted(self.pins.items()))
        lines = [
            "# odrun appliance settings (rendered by odrun appliance user-data)",
            f"ODRUN_CVMFS_REPOS={','.join(self.repos)}",
            f'CVMFS_HTTP_PROXY="{self.proxy}"',
            f"CVMFS_QUOTA_LIMIT={self.quota_mb}",
            f"ODRUN_CVMFS_PINS={pins}",
            *(
                []
                if self.pip_spec
                else [f"# required before launching (odrun is not on PyPI): {PIP_SPEC_EXAMPLE}"]
            ),
            f"ODRUN_PIP_SPEC={self.pip_spec}",
            *([f"ODRUN_PIP_FIND_LINKS={self.find_links}"] if self.find_links else []),
            f"ODRUN_APPLIANCE_CLOUD={self.cloud}",
        ]
        return "\n".join(lines) + "\n"


def pins_from_lock(lock: dict[str, Any]) -> dict[str, str]:
    """``{repo: root_hash}`` for the CVMFS repositories an odrun.lock recorded a hash for."""
    return {
        repo: pin["root_hash"]
        for repo, pin in sorted((lock.get("cvmfs") or {}).items())
        if isinstance(pin, dict) and pin.get("root_hash")
    }


class _Literal(str):
    """A string dumped as a YAML literal block (the script stays readable)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def cloud_config(settings: ApplianceSettings) -> str:
    """The ``#cloud-config`` document: base.yaml plus the settings and the script."""
    folder = appliance_dir()
    doc = load_yaml(folder / "cloud-init" / "base.yaml", "cloud-init base", error=ConfigError)
    if settings.image:
        # everything is installed already and the machine may have no network at all
        doc.pop("package_update", None)
        doc.pop("packages", None)
        doc["runcmd"] = [[PROVISION_PATH, "--only", IMAGE_STEPS]]
    if settings.user:
        account: dict[str, Any] = {
            "name": settings.user,
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": True,
        }
        if settings.ssh_keys:
            account["ssh_authorized_keys"] = list(settings.ssh_keys)
        doc = {"users": ["default", account], **doc}
    script = (folder / "provision.sh").read_text(encoding="utf-8")
    doc["write_files"] = [
        {
            "path": SETTINGS_PATH,
            "permissions": "0644",
            "owner": "root:root",
            "content": _Literal(settings.env_text()),
        },
        {
            "path": PROVISION_PATH,
            "permissions": "0755",
            "owner": "root:root",
            "content": _Literal(script),
        },
    ]
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    image = " image (appliance/build-image.sh)" if settings.image else ""
    head = (
        "#cloud-config\n"
        f"# odrun {__version__} appliance{image} for {settings.cloud}; launch with:\n"
        f"#   {LAUNCH[settings.cloud]}\n"
    )
    return head + body


def _template(name: str, values: dict[str, str]) -> str:
    """A CernVM template from appliance/cernvm/, lines with an empty value dropped."""
    text = Template((appliance_dir() / "cernvm" / name).read_text(encoding="utf-8"))
    lines = text.substitute(values).splitlines()
    return "\n".join(line for line in lines if not re.fullmatch(r"[A-Za-z_]+=", line)) + "\n"


def cernvm_parts(settings: ApplianceSettings) -> tuple[str, str]:
    """The amiconfig and µCernVM contexts."""
    values = {"repositories": ",".join(settings.repos), "proxy": settings.proxy}
    return _template("amiconfig.ini", values), _template("ucernvm.ini", values)


def user_data(settings: ApplianceSettings, *, cernvm: bool = False) -> str:
    """The user-data to give the cloud: a cloud-config, or with ``cernvm`` a MIME multipart."""
    config = cloud_config(settings)
    if not cernvm:
        text = config
        limit = CLOUD_LIMITS[settings.cloud]
    else:
        amiconfig, ucernvm = cernvm_parts(settings)
        parts = [
            ("ucernvm", ucernvm, "ucernvm.txt"),
            ("amiconfig-user-data", amiconfig, "amiconfig.txt"),
            ("cloud-config", config, "cloud-config.yaml"),
        ]
        # a boundary from the content: the same settings render the same bytes
        digest = hashlib.sha256("".join(p[1] for p in parts).encode()).hexdigest()[:24]
        message = MIMEMultipart(boundary=f"==odrun-appliance-{digest}==")
        for subtype, body, filename in parts:
            # 7bit, not base64: the µCernVM bootloader greps the raw user-data for its block
            part = MIMEText(body, subtype, "us-ascii")
            part.add_header("Content-Disposition", "attachment", filename=filename)
            message.attach(part)
        text = message.as_string()
        limit = min(CLOUD_LIMITS[settings.cloud], CERNVM_LIMIT)
    size = len(text.encode("utf-8"))
    if size > limit:
        raise UsageError(
            f"the user-data is {size} bytes, over the {limit}-byte limit of "
            f"{'CernVM contexts' if cernvm and limit == CERNVM_LIMIT else settings.cloud}",
            hint="name fewer repositories, or host provision.sh and fetch it from a small "
            "cloud-config",
        )
    return text
