#!/usr/bin/env bash
# Build one image of images/catalog.yaml FROM its digest-pinned base (images/catalog.lock.json).
#
#   images/build.sh NAME [podman build options...]
#   images/build.sh odrun
#   images/build.sh cmssw-opendata-5_3_32 --build-arg WITH_VNC=1
#   images/build.sh odrun --build-arg BASE=localhost/my/debian:bookworm --network=host
#
# Extra options go to `podman build` (CONTAINER_RUNTIME=docker for docker); a
# `--build-arg BASE=...` of your own replaces the locked base. The odrun image gets the
# odrun wheel built from this checkout in its build context. The catalog's tag is added
# unless you give --tag yourself.
#
# OCI provenance labels come from git: org.opencontainers.image.revision (HEAD, "-dirty"
# with local changes), .created (SOURCE_DATE_EPOCH if set, else HEAD's commit time: the same
# sources give the same label), .source (ODRUN_SOURCE_URL, else the origin remote as https)
# and .documentation (the image's README at that revision).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
runtime=${CONTAINER_RUNTIME:-podman}
if (($# < 1)); then
  echo "usage: images/build.sh NAME [podman build options...]" >&2
  exit 2
fi
name=$1
shift

# path, tag, base_ref and build args of NAME, one per line, from the lock
if ! info=$(python3 - "$here/catalog.lock.json" "$name" <<'PY'
import json, sys
lock = json.load(open(sys.argv[1]))["images"]
entry = lock.get(sys.argv[2])
if entry is None:
    sys.exit(f"images/build.sh: no image {sys.argv[2]!r} in the catalog; known: {', '.join(sorted(lock))}")
print(entry["path"])
print(entry["tag"])
print(entry["base_ref"] or "")
for key, value in sorted(entry["build_args"].items()):
    print(f"{key}={value}")
PY
); then
  exit 2
fi
mapfile -t lines <<<"$info"
path=${lines[0]}
tag=${lines[1]}
base_ref=${lines[2]}
args=()
for arg in "${lines[@]:3}"; do
  args+=(--build-arg "$arg")
done

own_base=false
own_tag=false
for opt in "$@"; do
  case $opt in
    BASE=* | --build-arg=BASE=*) own_base=true ;;
    -t | --tag | -t=* | --tag=*) own_tag=true ;;
  esac
done
$own_tag || args+=(--tag "$tag")
if ! $own_base; then
  if [[ -z $base_ref ]]; then
    echo "images/build.sh: the base of $name is not pinned in images/catalog.lock.json yet:" \
      "run 'python3 images/lock.py --resolve' (needs the registry) or pass" \
      "--build-arg BASE=IMAGE@sha256:..." >&2
    exit 2
  fi
  args+=(--build-arg "BASE=$base_ref")
fi

# provenance labels from git
source_url=${ODRUN_SOURCE_URL:-}
revision=unknown
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  revision=$(git -C "$repo" rev-parse HEAD)
  [[ -z $(git -C "$repo" status --porcelain -- "$path" 2>/dev/null) ]] || revision+=-dirty
  created=$(TZ=UTC git -C "$repo" log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd)
  if [[ -z $source_url ]] && origin=$(git -C "$repo" remote get-url origin 2>/dev/null); then
    origin=${origin%.git}
    [[ $origin =~ ^git@([^:]+):(.+)$ ]] && origin="https://${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
    # a clone of a local checkout has a path as its origin: not a URL to publish
    [[ $origin == *://* ]] && source_url=$origin
  fi
fi
if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
  created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
fi
if [[ -z $source_url ]]; then
  source_url="file://$repo"
  echo "images/build.sh: no origin remote: org.opencontainers.image.source is $source_url" \
    "(set ODRUN_SOURCE_URL=https://... for published images)" >&2
fi
if [[ $source_url == file://* ]]; then
  documentation="$source_url/$path/README.md"
else
  documentation="$source_url/blob/${revision%-dirty}/$path/README.md"
fi
args+=(--build-arg "SOURCE_URL=$source_url" --build-arg "REVISION=$revision"
  --build-arg "CREATED=$created" --build-arg "DOCUMENTATION_URL=$documentation")

context=$(mktemp -d "${TMPDIR:-/tmp}/odrun-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
cp -R "$repo/$path/." "$context/"
if [[ $name == odrun ]]; then
  python3 -m pip wheel --quiet --no-deps --wheel-dir "$context/wheels" "$repo" >&2
  wheels=("$context"/wheels/odrun-*.whl)
  wheel=$(basename "${wheels[0]}")
  version=${wheel#odrun-}
  args+=(--build-arg "ODRUN_WHEEL=$wheel" --build-arg "ODRUN_VERSION=${version%%-*}")
fi
"$runtime" build -f "$context/Containerfile" "${args[@]}" "$@" "$context"
