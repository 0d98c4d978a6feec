#!/usr/bin/env bash
# Provision an odrun analysis machine: CVMFS (client profile "single"), podman, odrun.
# One script for every way of starting the appliance: Vagrant runs it as the shell
# provisioner, cloud-init (OpenStack, EC2, GCE, CernVM) writes it to
# /usr/local/sbin/odrun-appliance-provision and runs it once.
#
# Settings: environment variables, else /etc/odrun/appliance.env (KEY=VALUE lines),
# else the defaults below (the same as appliance/appliance.env).
#   ODRUN_CVMFS_REPOS   repositories to mount and probe (comma-separated)
#   CVMFS_HTTP_PROXY    squid proxies in CVMFS notation ("http://squid:3128;DIRECT");
#                       empty: client profile "single" (direct, fine for a few machines)
#   CVMFS_QUOTA_LIMIT   local CVMFS cache size in MB (warned about when over the free space)
#   ODRUN_CVMFS_PINS    repo=ROOT_HASH,... mounts those snapshots (from an odrun.lock)
#   ODRUN_PIP_SPEC      what pip installs as odrun (required: a path, a wheel URL or
#                       git+https://github.com/<org>/odrun@<tag>; odrun is not on PyPI yet)
#   ODRUN_PIP_FIND_LINKS  a folder of wheels: pip installs from it alone (--no-index), with
#                       no network (the appliance image has /usr/share/odrun/wheels)
#   ODRUN_APPLIANCE_ROOT  write configuration under this folder instead of / (tests)
#
# Usage: provision.sh [--only STEP[,STEP...]]
# Steps, in order: packages cvmfs-install cvmfs-config cvmfs-probe odrun doctor
# Sourcing the script defines its functions without running anything (tests).
set -euo pipefail

STEPS_ALL="packages cvmfs-install cvmfs-config cvmfs-probe odrun doctor"
CONFIG_FILE="/etc/odrun/appliance.env"
# a fixed release package, checked by sha256 (the same as images/cvmfs/Containerfile)
CVMFS_DEB="https://ecsft.cern.ch/dist/cvmfs/cvmfs-release/cvmfs-release_4.3-1_all.deb"
CVMFS_DEB_SHA256="7fa925c8a7d312c486fac6acb4ceff546dec235f83f0de4c836cab8a09842279"
CVMFS_RPM="https://cvmrepo.s3.cern.ch/cvmrepo/yum/cvmfs-release-latest.noarch.rpm"
ODRUN_APPLIANCE_ROOT="${ODRUN_APPLIANCE_ROOT:-}"
KNOWN_KEYS="ODRUN_CVMFS_REPOS CVMFS_HTTP_PROXY CVMFS_QUOTA_LIMIT ODRUN_CVMFS_PINS ODRUN_PIP_SPEC ODRUN_PIP_FIND_LINKS ODRUN_APPLIANCE_CLOUD"

log() { printf 'odrun-appliance: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# KEY=VALUE lines of a file set the keys the environment does not set already.
load_config() {
  local file="$1" line key value
  [[ -r "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]] || die "$file: not KEY=VALUE: $line"
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    value="${value#\"}"; value="${value%\"}"
    [[ " $KNOWN_KEYS " == *" $key "* ]] || die "$file: unknown setting $key (known: $KNOWN_KEYS)"
    if [[ -z "${!key+set}" ]]; then
      printf -v "$key" '%s' "$value"
      export "${key?}"
    fi
  done < "$file"
}

set_defaults() {
  : "${ODRUN_CVMFS_REPOS:=cms.cern.ch,cms-opendata-conddb.cern.ch,sft.cern.ch}"
  : "${CVMFS_HTTP_PROXY:=}"
  : "${CVMFS_QUOTA_LIMIT:=4000}"
  : "${ODRUN_CVMFS_PINS:=}"
  : "${ODRUN_PIP_SPEC:=}"
  : "${ODRUN_PIP_FIND_LINKS:=}"
  [[ "$CVMFS_QUOTA_LIMIT" =~ ^[0-9]+$ ]] || die "CVMFS_QUOTA_LIMIT must be a number of MB, not '$CVMFS_QUOTA_LIMIT'"
  local repo
  for repo in ${ODRUN_CVMFS_REPOS//,/ }; do
    check_repo_name ODRUN_CVMFS_REPOS "$repo"
  done
}

# A fully qualified repository name (the rule of odrun/cvmfs.py check_repo_name):
# dot-separated labels of a-z, 0-9 and inner dashes; never a path.
check_repo_name() {
  [[ "$2" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$ ]] \
    || die "$1: '$2' is not a repository name like cms.cern.ch"
}

repos() { printf '%s\n' "${ODRUN_CVMFS_REPOS//,/ }"; }

# Write a file atomically (temp file, then rename): never a half-written config.
write_file() {
  local path="$1" tmp
  mkdir -p "$(dirname "$path")"
  tmp="$(mktemp "$path.XXXXXX")"
  cat > "$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$path"
}

os_family() {
  local id="" id_like=""
  # shellcheck disable=SC1091
  [[ -r /etc/os-release ]] && { id="$(. /etc/os-release && echo "${ID:-}")"; id_like="$(. /etc/os-release && echo "${ID_LIKE:-}")"; }
  case " $id $id_like " in
    *" debian "*|*" ubuntu "*) echo debian ;;
    *" rhel "*|*" fedora "*|*" centos "*|*" almalinux "*|*" rocky "*) echo rhel ;;
    *) die "unsupported operating system '$id' (supported: Debian/Ubuntu, AlmaLinux/RHEL 9)" ;;
  esac
}

step_packages() {
  case "$(os_family)" in
    debian)
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends ca-certificates curl attr podman uidmap \
        slirp4netns fuse-overlayfs python3 python3-venv python3-pip xrootd-client >/dev/null ;;
    rhel)
      # EL9's python3 is 3.9; odrun needs 3.10 or newer (AppStream has python3.11)
      dnf install -y -q ca-certificates curl attr podman python3.11 python3.11-pip >/dev/null ;;
  esac
}

# The newest python3 on PATH that is 3.10 or newer (odrun's minimum), printed; dies if none.
pick_python() {
  local py
  for py in python3.13 python3.12 python3.11 python3.10 python3; do
    command -v "$py" >/dev/null || continue
    if "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  die "odrun needs Python >= 3.10 and this machine has $(python3 --version 2>&1 || echo 'no python3'): install python3.11 (EL9: dnf install python3.11 python3.11-pip; CernVM 4/EL7 is not supported)"
}

step_cvmfs_install() {
  if command -v cvmfs_config >/dev/null; then
    log "CVMFS client already installed (CernVM?): $(command -v cvmfs_config)"
    return 0
  fi
  case "$(os_family)" in
    debian)
      local deb
      deb="$(mktemp --suffix=.deb)"
      curl -fsSL --retry 3 -o "$deb" "$CVMFS_DEB"
      echo "$CVMFS_DEB_SHA256  $deb" | sha256sum -c --quiet - \
        || die "$CVMFS_DEB does not have the expected sha256 $CVMFS_DEB_SHA256"
      dpkg -i "$deb" >/dev/null
      rm -f "$deb"
      apt-get update -qq
      apt-get install -y -qq cvmfs >/dev/null ;;
    rhel)
      dnf install -y -q "$CVMFS_RPM" >/dev/null
      dnf install -y -q cvmfs >/dev/null ;;
  esac
}

step_cvmfs_config() {
  local etc="$ODRUN_APPLIANCE_ROOT/etc/cvmfs"
  {
    echo "# written by odrun's appliance/provision.sh"
    echo "CVMFS_REPOSITORIES=$ODRUN_CVMFS_REPOS"
    echo "CVMFS_CLIENT_PROFILE=single"
    [[ -n "$CVMFS_HTTP_PROXY" ]] && echo "CVMFS_HTTP_PROXY=\"$CVMFS_HTTP_PROXY\""
    echo "CVMFS_QUOTA_LIMIT=$CVMFS_QUOTA_LIMIT"
  } | write_file "$etc/default.local"
  local pin repo hash
  for pin in ${ODRUN_CVMFS_PINS//,/ }; do
    repo="${pin%%=*}"
    hash="${pin#*=}"
    [[ "$pin" == *=* && "$hash" =~ ^[0-9a-f]{40}(-[a-z0-9]+)?$ ]] || die "ODRUN_CVMFS_PINS: '$pin' is not repo=ROOT_HASH (40 hex digits)"
    check_repo_name ODRUN_CVMFS_PINS "$repo"
    printf '# pinned by odrun: mounts this snapshot, no updates\nCVMFS_ROOT_HASH=%s\n' "$hash" \
      | write_file "$etc/config.d/$repo.local"
  done
  warn_quota "$ODRUN_APPLIANCE_ROOT/var/lib/cvmfs"
  log "wrote $etc/default.local (repositories $ODRUN_CVMFS_REPOS, quota ${CVMFS_QUOTA_LIMIT} MB, proxy ${CVMFS_HTTP_PROXY:-profile single})"
}

# Warn when the CVMFS cache quota is more than the free space where the cache lives
# (CVMFS_CACHE_BASE, /var/lib/cvmfs): a full disk breaks the machine, not just CVMFS.
warn_quota() {
  local dir="$1" free_mb
  while [[ ! -d "$dir" && "$dir" == */* ]]; do dir="${dir%/*}"; done
  free_mb="$(df -Pm "${dir:-/}" 2>/dev/null | awk 'NR == 2 {print $4}')" || return 0
  [[ "$free_mb" =~ ^[0-9]+$ ]] || return 0
  if ((CVMFS_QUOTA_LIMIT > free_mb)); then
    log "warning: CVMFS_QUOTA_LIMIT=${CVMFS_QUOTA_LIMIT} MB is more than the ${free_mb} MB free on ${dir:-/}: lower it or grow the disk"
  fi
}

step_cvmfs_probe() {
  cvmfs_config setup
  local try
  for try in 1 2 3; do
    # shellcheck disable=SC2046
    if cvmfs_config probe $(repos); then
      return 0
    fi
    log "cvmfs_config probe failed (try $try of 3); restarting autofs"
    systemctl restart autofs || true
    sleep $((try * 5))
  done
  die "CVMFS repositories not reachable: check CVMFS_HTTP_PROXY and the network (cvmfs_config chksetup)"
}

step_odrun() {
  local venv=/opt/odrun py
  py="$(pick_python)"
  # a venv left by an older provisioning with a too old python is made again
  if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    rm -rf "$venv"
    "$py" -m venv "$venv"
  fi
  local pip_args=(--quiet --disable-pip-version-check)
  if [[ -n "$ODRUN_PIP_FIND_LINKS" ]]; then
    # offline: the wheels on the machine, nothing else (the appliance image)
    pip_args+=(--no-index --find-links "$ODRUN_PIP_FIND_LINKS")
  else
    "$venv/bin/python" -m pip install "${pip_args[@]}" --upgrade pip
  fi
  "$venv/bin/python" -m pip install "${pip_args[@]}" "$ODRUN_PIP_SPEC" \
    || die "pip cannot install ODRUN_PIP_SPEC='$ODRUN_PIP_SPEC': set it to a wheel URL, a path or git+https://github.com/<org>/odrun@<tag> (odrun appliance user-data --pip-spec)"
  ln -sf "$venv/bin/odrun" /usr/local/bin/odrun
  log "installed $(/usr/local/bin/odrun --version)"
}

step_doctor() {
  local args=() repo
  for repo in $(repos); do args+=(--cvmfs "$repo"); done
  /usr/local/bin/odrun doctor "${args[@]}"
}

main() {
  local only="$STEPS_ALL"
  while (($#)); do
    case "$1" in
      --only) [[ $# -ge 2 ]] || die "--only needs STEP[,STEP...]"; only="${2//,/ }"; shift 2 ;;
      -h|--help) sed -n '2,20p' "$0"; return 0 ;;
      *) die "unknown argument $1 (usage: provision.sh [--only STEP[,STEP...]])" ;;
    esac
  done
  load_config "$ODRUN_APPLIANCE_ROOT$CONFIG_FILE"
  set_defaults
  local step
  for step in $only; do
    [[ " $STEPS_ALL " == *" $step "* ]] || die "unknown step $step (steps: $STEPS_ALL)"
  done
  if [[ " $only " == *" odrun "* && -z "$ODRUN_PIP_SPEC" ]]; then
    die "ODRUN_PIP_SPEC is not set (odrun is not on PyPI yet): set it in $CONFIG_FILE to a wheel URL or git+https://github.com/<org>/odrun@<tag> (odrun appliance user-data --pip-spec)"
  fi
  for step in $STEPS_ALL; do
    [[ " $only " == *" $step "* ]] || continue
    log "step $step"
    "step_${step//-/_}"
  done
  log "done"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
