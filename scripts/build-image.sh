#!/usr/bin/env bash
# Builds the cr-agent image from the root Dockerfile, tagged cr-agent:dev (or $1). Needs root and Docker.
# When debian:bookworm-slim can be neither found nor pulled (no registry, as in CI), it is made here:
# `debootstrap --variant=minbase bookworm` from Debian's mirror, then `docker import`.
# The Python dependencies are built as wheels with the host's pip (configured for its package index;
# containers are not) and installed in the image with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${1:-cr-agent:dev}"
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

# --network host: the build's apt-get reaches the mirror the way the host does
docker build --network host -t "$TAG" . >&2
log "built $TAG"
