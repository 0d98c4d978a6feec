#!/usr/bin/env bash
# Smoke test of a cmssw-opendata image (runs on the host, drives the container):
#   images/cmssw-opendata/smoke.sh IMAGE [RELEASE]
# The entrypoint sets up the release (cmsRun and edmDumpEventContent on PATH, CMSSW_BASE
# named after it), as a non-root user, with no network.
set -euo pipefail

runtime=${CONTAINER_RUNTIME:-podman}
image=${1:?usage: smoke.sh IMAGE [RELEASE]}
release=${2:-}

uid=$("$runtime" run --rm --network=none "$image" id -u)
if [[ $uid == 0 ]]; then
  echo "smoke: FAIL: the image runs as root" >&2
  exit 1
fi
# shellcheck disable=SC2016 # expanded in the container
out=$("$runtime" run --rm --network=none "$image" bash -c \
  'command -v cmsRun && command -v edmDumpEventContent && echo "base=$CMSSW_BASE release=$CMSSW_RELEASE"')
echo "$out" >&2
if [[ -n $release && $out != *"release=$release"* ]]; then
  echo "smoke: FAIL: expected $release" >&2
  exit 1
fi
[[ $out == *"base=/code/"* ]] || {
  echo "smoke: FAIL: no project area under /code" >&2
  exit 1
}
echo "smoke: ok" >&2
