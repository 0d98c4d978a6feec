#!/usr/bin/env bash
# Smoke test of the cvmfs image (runs on the host, drives the container):
#   images/cvmfs/smoke.sh IMAGE
# With a host /cvmfs/cms.cern.ch: bind mode (-v /cvmfs:/cvmfs:ro). Otherwise FUSE mode
# (--device /dev/fuse --cap-add SYS_ADMIN, needs CERN's stratum servers or a proxy:
# CVMFS_HTTP_PROXY). Either way the open-data repositories must list and report a revision.
set -euo pipefail

runtime=${CONTAINER_RUNTIME:-podman}
image=${1:?usage: smoke.sh IMAGE}
repos=cms.cern.ch,cms-opendata-conddb.cern.ch

if [[ -n $(ls -A /cvmfs/cms.cern.ch 2>/dev/null) ]]; then
  mode=(--volume /cvmfs:/cvmfs:ro)
else
  mode=(--device /dev/fuse --cap-add SYS_ADMIN --env "CVMFS_HTTP_PROXY=${CVMFS_HTTP_PROXY:-DIRECT}")
fi
# shellcheck disable=SC2016 # expanded in the container
"$runtime" run --rm "${mode[@]}" --env CVMFS_REPOSITORIES="$repos" "$image" \
  bash -c 'test "$(id -u)" != 0 && ls /cvmfs/cms.cern.ch/cmsset_default.sh && ls -d /cvmfs/cms-opendata-conddb.cern.ch/*'
echo "smoke: ok" >&2
