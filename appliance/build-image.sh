#!/usr/bin/env bash
# shellcheck disable=SC2016  # mmdebstrap hooks: sh -c strings run with $1 = the root filesystem
# Build the odrun appliance image: a Debian 12 disk with the cloud kernel, cloud-init, podman,
# odrun (a wheel built from this checkout, its dependencies from pinned wheels) and the
# offline provisioning of provision.sh applied (CVMFS client configuration and mount points,
# /etc/odrun/appliance.env, the demo analysis with its mirror). The network steps of
# provision.sh (apt, the CVMFS client from CERN, probing) are left to the first boot.
#
# Usage: appliance/build-image.sh [--print-dir] [--force]
#   prints the image folder, /var/tmp/odrun-appliance-<inputs hash>/ (ODRUN_APPLIANCE_CACHE
#   instead of /var/tmp), holding disk.qcow2, vmlinuz, initrd.img and manifest.json. An image
#   whose folder exists is reused: the hash covers this script, appliance/ (provision.sh,
#   appliance.env, image/), odrun's sources and the demo, so CI builds only when they change.
#   --print-dir prints the folder without building; --force rebuilds.
# Settings: ODRUN_DEBIAN_MIRROR (default http://deb.debian.org/debian; for a bit-for-bit
#   package set use http://snapshot.debian.org/archive/debian/$DEBIAN_SNAPSHOT/),
#   ODRUN_IMAGE_SIZE (default 3G), ODRUN_APPLIANCE_KEEP (images kept in the cache, default 2).
# Needs root, mmdebstrap, mkfs.ext4 (e2fsprogs), qemu-img (qemu-utils), python3 with pip, and
# the network to deb.debian.org and PyPI (the guest it makes needs no network at all).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
# the snapshot date of images/catalog.yaml (the same Debian as the container images)
DEBIAN_SNAPSHOT="$(sed -n 's/.*DEBIAN_SNAPSHOT: "\([0-9TZ]*\)".*/\1/p' "$REPO/images/catalog.yaml" | head -n1)"
MIRROR="${ODRUN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SIZE="${ODRUN_IMAGE_SIZE:-3G}"
CACHE="${ODRUN_APPLIANCE_CACHE:-/var/tmp}"
SHARE=/usr/share/odrun
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml")"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# sha256 of every input, in a fixed order: the name of the cached image
inputs_hash() {
  (
    cd "$REPO"
    {
      printf 'mirror %s\nsize %s\nsnapshot %s\n' "$MIRROR" "$SIZE" "$DEBIAN_SNAPSHOT"
      find appliance odrun specs workflows/dimuon-demo workflows/mirror pyproject.toml README.md \
        images/catalog.yaml images/catalog.lock.json -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path 'workflows/dimuon-demo/.odrun/*' \
        -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    } | sha256sum | cut -c1-16
  )
}

force=0
print_dir=0
while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --print-dir) print_dir=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (usage: build-image.sh [--print-dir] [--force])" ;;
  esac
  shift
done

OUT="$CACHE/odrun-appliance-$(inputs_hash)"
if ((print_dir)); then echo "$OUT"; exit 0; fi
if [[ -f "$OUT/manifest.json" && $force -eq 0 ]]; then
  log "reusing $OUT (its inputs are unchanged)"
  echo "$OUT"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || die "run as root (mmdebstrap, chroot)"
for tool in mmdebstrap mkfs.ext4 qemu-img python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mmdebstrap e2fsprogs qemu-utils)"
done
[[ -n "$DEBIAN_SNAPSHOT" ]] || die "no DEBIAN_SNAPSHOT in images/catalog.yaml"

start=$SECONDS
WORK="$(mktemp -d "$CACHE/odrun-appliance-build.XXXXXX")"
# --one-file-system: never into a mount mmdebstrap may have left in the root filesystem
trap 'rm -rf --one-file-system "$WORK"' EXIT
# one time for every file the build writes: the snapshot date
s="$DEBIAN_SNAPSHOT"
SOURCE_DATE_EPOCH="$(date -u -d "${s:0:4}-${s:4:2}-${s:6:2} ${s:9:2}:${s:11:2}:${s:13:2}" +%s)"
export SOURCE_DATE_EPOCH

log "wheels: odrun from $REPO, dependencies from appliance/image/requirements.txt"
mkdir -p "$WORK/wheels"
# the odrun wheel from a clean copy of the sources (no caches, no run folders)
mkdir -p "$WORK/src"
(cd "$REPO" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude=.odrun \
  pyproject.toml README.md odrun specs appliance images/catalog.yaml images/catalog.lock.json) \
  | tar -C "$WORK/src" -xf -
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$WORK/wheels" "$WORK/src" >&2
python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
  --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$WORK/wheels" -r "$HERE/image/requirements.txt" >&2 2>/dev/null \
  || die "pip download of appliance/image/requirements.txt failed (PyPI unreachable?)"

mapfile -t packages < <(grep -v '^[[:space:]]*\(#\|$\)' "$HERE/image/packages.txt")
include="$(IFS=,; echo "${packages[*]}")"
repos="$(sed -n 's/^ODRUN_CVMFS_REPOS=//p' "$HERE/appliance.env")"

log "root filesystem: Debian bookworm from $MIRROR (snapshot date $DEBIAN_SNAPSHOT), ${#packages[@]} packages"
mmdebstrap --variant=apt --components=main --include="$include" \
  --aptopt='Acquire::Retries "3"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=most > "$1/etc/initramfs-tools/conf.d/odrun"' \
  --customize-hook="mkdir -p \"\$1$SHARE\" && cp -a '$WORK/wheels' \"\$1$SHARE/wheels\"" \
  --customize-hook="tar -C '$REPO' -cf - --exclude=.odrun --exclude=__pycache__ workflows/dimuon-demo workflows/mirror | tar -C \"\$1$SHARE\" -xf -" \
  --customize-hook="cp -a '$HERE/image/rootfs/.' \"\$1/\"" \
  --customize-hook="install -D -m 0644 '$HERE/appliance.env' \"\$1/etc/odrun/appliance.env\"" \
  --customize-hook="install -D -m 0755 '$HERE/provision.sh' \"\$1/usr/local/sbin/odrun-appliance-provision\"" \
  --customize-hook="ODRUN_APPLIANCE_ROOT=\"\$1\" ODRUN_CVMFS_REPOS='$repos' bash '$HERE/provision.sh' --only cvmfs-config" \
  --customize-hook="for r in ${repos//,/ }; do mkdir -p \"\$1/cvmfs/\$r\"; done" \
  --customize-hook='chroot "$1" python3 -m venv /opt/odrun' \
  --customize-hook="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH chroot \"\$1\" /opt/odrun/bin/python -m pip install --quiet --no-index --find-links $SHARE/wheels odrun==$VERSION" \
  --customize-hook="sed -i 's|^ODRUN_PIP_SPEC=\$|ODRUN_PIP_SPEC=odrun==$VERSION|; s|^ODRUN_PIP_FIND_LINKS=\$|ODRUN_PIP_FIND_LINKS=$SHARE/wheels|' \"\$1/etc/odrun/appliance.env\"" \
  --customize-hook='ln -sf /opt/odrun/bin/odrun "$1/usr/local/bin/odrun"' \
  --customize-hook='echo odrun-appliance > "$1/etc/hostname"' \
  --customize-hook='printf "LABEL=odrun-root / ext4 defaults,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
  --customize-hook='chroot "$1" systemctl enable odrun-appliance-selftest.service' \
  --customize-hook='chroot "$1" dpkg-query -W -f="\${Package}\t\${Version}\t\${Architecture}\n" > "$1/usr/share/odrun/packages.tsv"' \
  --customize-hook="cp -L \"\$1/vmlinuz\" '$WORK/vmlinuz' && cp -L \"\$1/initrd.img\" '$WORK/initrd.img'" \
  --customize-hook='rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*.bin "$1/var/log/"*.log' \
  bookworm "$WORK/rootfs" "$MIRROR" >&2

log "disk: ext4 (mkfs.ext4 -d), $SIZE, qcow2"
# a fixed UUID and hash seed: the same files give the same filesystem layout
mkfs.ext4 -q -F -L odrun-root -U 6f6e7275-6e00-4000-8000-617070000001 \
  -E hash_seed=6f6e7275-6e00-4000-8000-617070000002,root_owner=0:0 \
  -d "$WORK/rootfs" "$WORK/disk.raw" "$SIZE"
qemu-img convert -q -O qcow2 "$WORK/disk.raw" "$WORK/disk.qcow2"
rm -f "$WORK/disk.raw"
cp "$WORK/rootfs$SHARE/packages.tsv" "$WORK/packages.tsv"

python3 - "$WORK" "$DEBIAN_SNAPSHOT" "$MIRROR" "$((SECONDS - start))" <<'PY'
import hashlib, json, pathlib, sys
work, snapshot, mirror, seconds = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
packages = {}
for line in (work / "packages.tsv").read_text().splitlines():
    name, version, arch = line.split("\t")
    packages[name] = version
wheels = {p.name: sha(p) for p in sorted((work / "wheels").glob("*.whl"))}
manifest = {
    "image": "odrun-appliance",
    "debian": "bookworm",
    "debian_snapshot": snapshot,
    "mirror": mirror,
    "boot": {"kernel": "vmlinuz", "initrd": "initrd.img", "append": "root=LABEL=odrun-root rw console=ttyS0"},
    "files": {name: {"sha256": sha(work / name), "size": (work / name).stat().st_size}
              for name in ("disk.qcow2", "vmlinuz", "initrd.img")},
    "wheels": wheels,
    "packages": packages,
    "build_seconds": seconds,
}
(work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
PY

mkdir -p "$WORK/out"
mv "$WORK/disk.qcow2" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/manifest.json" "$WORK/out/"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
log "built $OUT in $((SECONDS - start)) s"
# keep the newest ODRUN_APPLIANCE_KEEP (default 2) images: each is ~650 MB
find "$CACHE" -maxdepth 1 -type d -regextype posix-extended -regex '.*/odrun-appliance-[0-9a-f]{16}' \
  -printf '%T@ %p\n' | sort -rn | tail -n +$((${ODRUN_APPLIANCE_KEEP:-2} + 1)) | cut -d' ' -f2- \
  | while read -r old; do log "removing the older image $old"; rm -rf --one-file-system "$old"; done
echo "$OUT"
