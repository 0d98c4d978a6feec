#!/bin/bash
# Entrypoint of the cvmfs image: make every repository of CVMFS_REPOSITORIES (comma-separated)
# available under /cvmfs, report each one's revision, then run the command (none: keep the
# mounts up until stopped).
#   bound from the host (-v /cvmfs:/cvmfs:ro,rslave): used as is, nothing is mounted. The
#   host's /cvmfs is autofs: a repository appears in the container only once the host has
#   mounted it (cvmfs_config probe on the host first), and only with rslave propagation
#   for mounts made after the container started;
#   otherwise mounted with FUSE (needs --device /dev/fuse --cap-add SYS_ADMIN).
set -euo pipefail

IFS=, read -r -a repos <<<"${CVMFS_REPOSITORIES:-cms.cern.ch}"
missing=()
for repo in "${repos[@]}"; do
  if [[ -d /cvmfs/$repo && -n $(ls -A "/cvmfs/$repo" 2>/dev/null) ]]; then
    echo "odrun-cvmfs: /cvmfs/$repo is here (bound or mounted)" >&2
  else
    missing+=("$repo")
  fi
done
if ((${#missing[@]})); then
  if [[ ! -e /dev/fuse ]]; then
    echo "odrun-cvmfs: ${missing[*]} not available and /dev/fuse is missing: run with" \
      "--device /dev/fuse --cap-add SYS_ADMIN, or bind the host's CVMFS" \
      "(-v /cvmfs:/cvmfs:ro,rslave after 'cvmfs_config probe ${missing[*]}' on the host:" \
      "autofs mounts a repository only when it is first used)" >&2
    exit 78
  fi
  sudo /usr/local/sbin/odrun-cvmfs-mount "${CVMFS_HTTP_PROXY:-DIRECT}" \
    "${CVMFS_QUOTA_LIMIT:-4000}" "${repos[@]}"
fi
for repo in "${repos[@]}"; do
  revision=$(attr -q -g revision "/cvmfs/$repo" 2>/dev/null || echo "?")
  echo "odrun-cvmfs: /cvmfs/$repo revision $revision" >&2
done

if (($#)); then
  exec "$@"
fi
echo "odrun-cvmfs: serving /cvmfs; stop the container to unmount" >&2
trap 'exit 0' TERM INT
while true; do
  sleep 3600 &
  wait $!
done
