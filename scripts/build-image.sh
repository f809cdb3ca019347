#!/usr/bin/env bash
# Builds the cr-agent image from the root Dockerfile. Needs root (or the docker group) and Docker.
#   scripts/build-image.sh [TAG]     TAG defaults to cr-agent:dev, e.g. scripts/build-image.sh cr-agent:1.0
# It uses Docker's classic builder, which every Docker version has (BuildKit needs the separate buildx
# plugin); Docker 23 and later print "DEPRECATED: The legacy builder is deprecated" for it: harmless.
# When debian:bookworm-slim can be neither found nor pulled (no registry, as in CI), it is made here:
# `debootstrap --variant=minbase bookworm` from Debian's mirror, then `docker import`.
# The Python dependencies are built as wheels with the host's pip (configured for its package index;
# containers are not) and installed in the image with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
DEFAULT_TAG=cr-agent:dev
case "${1:-}" in
  -h|--help) sed -n '2,5s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
if (($# > 1)); then echo "usage: scripts/build-image.sh [TAG]   (default $DEFAULT_TAG)" >&2; exit 2; fi
TAG="${1:-$DEFAULT_TAG}"
# name[:tag], lower-case name components (docker's reference grammar, without a digest)
if ! [[ "$TAG" =~ ^[a-z0-9]+([._-]+[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$ ]]; then
  echo "build-image: not a valid image tag: '$TAG' (e.g. cr-agent:dev, registry.example.com/ops/cr-agent:1.0)" >&2
  exit 2
fi
BASE=debian:bookworm-slim
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WHEELS=build/wheels

log() { printf 'build-image: %s\n' "$*" >&2; }

if ! docker image inspect "$BASE" >/dev/null 2>&1 && ! docker pull -q "$BASE" >/dev/null 2>&1; then
  log "cannot pull $BASE: making it with debootstrap --variant=minbase bookworm"
  if ! command -v debootstrap >/dev/null; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  fi
  rootfs="$(mktemp -d)"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
    tail -20 "$rootfs.log" >&2; exit 1; }
  rm -rf "$rootfs".log "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' -m "debootstrap --variant=minbase bookworm" - "$BASE" >/dev/null
  log "imported $BASE ($(docker image inspect -f '{{.Size}}' "$BASE" | awk '{printf "%d MB", $1/1e6}'))"
fi

# wheels for the image's Python (bookworm: 3.11), built by a host Python of the same minor version
rm -rf "$WHEELS"
py="$(command -v python3.11 || true)"
if [ -n "$py" ]; then
  venv="$(mktemp -d)"
  "$py" -m venv "$venv"
  "$venv/bin/pip" wheel -q --disable-pip-version-check -w "$WHEELS" . 2>&1 | grep -v '^WARNING: Location' >&2 || true
  rm -rf "$venv"
  ls "$WHEELS"/cr_agent-*.whl >/dev/null || { log "building the wheels failed"; exit 1; }
  log "built $(ls "$WHEELS" | wc -l) wheels with $("$py" --version)"
else
  log "no python3.11 on the host: pip in the image installs from PyPI"
fi

# --network host: the build's apt-get reaches the mirror the way the host does. The classic builder,
# named so (DOCKER_BUILDKIT=0): it needs no buildx plugin; Docker 23+ may print a DEPRECATED notice.
log "building $TAG with Docker's classic builder (a DEPRECATED notice from Docker 23+ is harmless)"
DOCKER_BUILDKIT=0 docker build --network host -t "$TAG" . >&2
log "built $TAG"
