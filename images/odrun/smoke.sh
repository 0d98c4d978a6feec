#!/usr/bin/env bash
# Smoke test of the odrun runtime image (runs on the host, drives the container):
#   images/odrun/smoke.sh IMAGE [TARGET]
# Always: odrun, xrdcp, the XRootD Python bindings and Snakemake work, as a non-root user,
# with no network. With TARGET (a record reference): inside the container (--network=host,
# the portal and storage may be on loopback) `odrun fetch TARGET` then
# `odrun verify-files`; ODRUN_PORTAL_URL and ODRUN_PROTOCOL_MAP are passed in, PROTOCOL
# (default auto) chooses the transport, SMOKE_DEST (a host folder) receives the files: the
# container runs as the folder's owner (--user UID:GID, what the README's
# --user "$(id -u):$(id -g)" does for your own folder). Prints the fetch report (JSON) on stdout; exit 0 only if all passed.
set -euo pipefail

runtime=${CONTAINER_RUNTIME:-podman}
image=${1:?usage: smoke.sh IMAGE [TARGET]}
target=${2:-}

say() { echo "smoke: $*" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}

in_image() { "$runtime" run --rm --network=none --entrypoint /bin/bash "$image" -c "$1"; }

version=$("$runtime" run --rm --network=none "$image" --version) || fail "odrun --version"
[[ $version == odrun* ]] || fail "odrun --version printed '$version'"
say "$version"
uid=$(in_image 'id -u') || fail "id -u"
[[ $uid != 0 ]] || fail "the image runs as root"
say "runs as uid $uid"
in_image 'xrdcp --version' >&2 || fail "xrdcp is missing"
in_image 'python3 -c "from XRootD import client; print(\"XRootD bindings\", client.__name__)"' >&2 ||
  fail "the XRootD Python bindings do not import"
in_image 'snakemake --version' >&2 || fail "snakemake is missing"

if [[ -n $target ]]; then
  mounts=()
  if [[ -n ${SMOKE_DEST:-} ]]; then
    mounts=(--volume "$SMOKE_DEST:/data" --user "$(stat -c %u:%g "$SMOKE_DEST")")
  fi
  say "fetching $target inside the container (protocol ${PROTOCOL:-auto})"
  # shellcheck disable=SC2016 # expanded by the container's shell
  "$runtime" run --rm --network=host "${mounts[@]}" \
    --env ODRUN_PORTAL_URL="${ODRUN_PORTAL_URL:-}" \
    --env ODRUN_PROTOCOL_MAP="${ODRUN_PROTOCOL_MAP:-}" \
    --env TARGET="$target" --env PROTOCOL="${PROTOCOL:-auto}" \
    --entrypoint /bin/bash "$image" -c '
      set -euo pipefail
      [[ -n $ODRUN_PORTAL_URL ]] || unset ODRUN_PORTAL_URL
      [[ -n $ODRUN_PROTOCOL_MAP ]] || unset ODRUN_PROTOCOL_MAP
      dest=/data/$TARGET
      [[ -w /data ]] || dest=$HOME/fetched/$TARGET
      odrun fetch "$TARGET" --dest "$dest" --protocol "$PROTOCOL" --json
      odrun verify-files "$dest" "$TARGET" >&2' || fail "fetch and verify of $target"
  say "fetched and verified $target"
fi
say "ok"
