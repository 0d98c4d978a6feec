#!/bin/bash
# Mount CVMFS repositories under /cvmfs (run as root through the image's one sudo rule).
#   odrun-cvmfs-mount PROXY QUOTA_MB REPO...
# Writes the settings into /etc/cvmfs/default.local first (each argument checked: this runs
# as root for an unprivileged caller). Repositories already mounted or bound in are left alone.
set -euo pipefail

valid='^[a-z0-9][a-z0-9.-]*\.[a-z]+$'
if (($# < 3)); then
  echo "usage: odrun-cvmfs-mount PROXY QUOTA_MB REPO..." >&2
  exit 2
fi
proxy=$1
quota=$2
shift 2
[[ $proxy =~ ^[A-Za-z0-9:/.\;\|_@%=-]+$ ]] || {
  echo "odrun-cvmfs-mount: CVMFS_HTTP_PROXY '$proxy' is not a proxy list (e.g. DIRECT or http://squid:3128)" >&2
  exit 2
}
[[ $quota =~ ^[0-9]+$ ]] || {
  echo "odrun-cvmfs-mount: CVMFS_QUOTA_LIMIT '$quota' is not a number of MB" >&2
  exit 2
}
for repo in "$@"; do
  [[ $repo =~ $valid ]] || {
    echo "odrun-cvmfs-mount: '$repo' is not a repository name (e.g. cms.cern.ch)" >&2
    exit 2
  }
done

conf=/etc/cvmfs/default.local
{
  grep -v -E '^CVMFS_(REPOSITORIES|HTTP_PROXY|QUOTA_LIMIT)=' "$conf" || true
  echo "CVMFS_REPOSITORIES=$(
    IFS=,
    echo "$*"
  )"
  echo "CVMFS_HTTP_PROXY=\"$proxy\""
  echo "CVMFS_QUOTA_LIMIT=$quota"
} >"$conf.new"
mv "$conf.new" "$conf"

for repo in "$@"; do
  target=/cvmfs/$repo
  mkdir -p "$target"
  if mountpoint -q "$target" || [[ -n $(ls -A "$target") ]]; then
    continue
  fi
  mount -t cvmfs "$repo" "$target"
done
