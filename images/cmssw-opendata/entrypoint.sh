#!/bin/bash
# Entrypoint of the cmssw-opendata images: set up CMSSW_RELEASE, then run the command.
#   CMSSW_RELEASE  release to set up (set by the image), e.g. CMSSW_5_3_32
#   CMSSW_WORKDIR  where the scram project area lives (default /code)
#   ODRUN_VNC=1    start the base image's VNC server first (ports 5901, noVNC 6080)
# cmsset_default.sh comes from the image (/opt/cms) or from CVMFS (/cvmfs/cms.cern.ch).
set -eo pipefail

die() {
  echo "odrun-cmssw-entrypoint: $*" >&2
  exit 78
}

[[ -n ${CMSSW_RELEASE:-} ]] || die "CMSSW_RELEASE is not set (the image sets it; pass -e CMSSW_RELEASE=...)"
setup=""
for candidate in /opt/cms/cmsset_default.sh /cvmfs/cms.cern.ch/cmsset_default.sh; do
  if [[ -f $candidate ]]; then
    setup=$candidate
    break
  fi
done
[[ -n $setup ]] || die "no cmsset_default.sh: neither /opt/cms (CMS open-data base image) nor" \
  "/cvmfs/cms.cern.ch (bind it: -v /cvmfs/cms.cern.ch:/cvmfs/cms.cern.ch:ro) is here"

# cmsset_default.sh reads unset variables: not under nounset
set +u
# shellcheck disable=SC1090 # chosen at run time
source "$setup"
workdir=${CMSSW_WORKDIR:-/code}
if [[ ! -d $workdir/$CMSSW_RELEASE/src ]]; then
  mkdir -p "$workdir"
  (cd "$workdir" && scramv1 project CMSSW "$CMSSW_RELEASE") >&2 ||
    die "scramv1 project CMSSW $CMSSW_RELEASE failed in $workdir"
fi
cd "$workdir/$CMSSW_RELEASE/src"
eval "$(scramv1 runtime -sh)" || die "cmsenv failed for $CMSSW_RELEASE"
echo "odrun-cmssw-entrypoint: $CMSSW_RELEASE ($SCRAM_ARCH) set up in $CMSSW_BASE" >&2

if [[ ${ODRUN_VNC:-0} == 1 ]]; then
  if command -v start_vnc >/dev/null; then
    start_vnc >&2 || die "start_vnc failed"
  else
    echo "odrun-cmssw-entrypoint: this base image has no start_vnc; VNC not started" >&2
  fi
fi
exec "$@"
