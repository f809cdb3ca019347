#!/usr/bin/env bash
# Brings up what the integration tests need: Debian's Docker Engine, a local
# registry on loopback with htpasswd auth, and the static busybox binary.
# Idempotent: whatever already runs is left alone. Needs root.
set -euo pipefail

REG_ADDR="${CR_TEST_REGISTRY:-127.0.0.1:5000}"
REG_USER="${CR_TEST_REGISTRY_USER:-cr-test}"
REG_PASS="${CR_TEST_REGISTRY_PASSWORD:-cr-test-password}"
WORK="${CR_TEST_WORK:-/var/lib/cr-agent-test}"
LOGS="${CR_TEST_LOGS:-/var/log/cr-agent-test}"

log() { printf 'dev-env: %s\n' "$*" >&2; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then log "timed out waiting for $what"; return 1; fi
    sleep 0.2
  done
}

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
# the images are FROM scratch: the busybox binary must be the static one
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || need+=(busybox-static)
command -v htpasswd >/dev/null || need+=(apache2-utils)
# install paths and packaging: Debian's pipx, systemd-analyze for the units, debootstrap for the image's base
command -v pipx >/dev/null || need+=(pipx)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v debootstrap >/dev/null || need+=(debootstrap)
# Compose v1 (1.29, Python): tests/integration/test_compose_v1.py runs it for real
command -v docker-compose >/dev/null || need+=(docker-compose)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$WORK/registry/data" "$LOGS"

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >"$LOGS/dockerd.log" 2>&1 &
  wait_for 60 dockerd docker info
fi

if ! python3 -c "import socket,sys; h,p='$REG_ADDR'.rsplit(':',1); socket.create_connection((h,int(p)),1)" 2>/dev/null; then
  log "starting docker-registry on $REG_ADDR"
  htpasswd -Bbc "$WORK/registry/htpasswd" "$REG_USER" "$REG_PASS" 2>/dev/null
  cat >"$WORK/registry/config.yml" <<YML
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
http:
  addr: $REG_ADDR
auth:
  htpasswd:
    realm: cr-agent-test
    path: $WORK/registry/htpasswd
YML
  nohup docker-registry serve "$WORK/registry/config.yml" >>"$LOGS/registry.log" 2>&1 &
  wait_for 30 docker-registry python3 -c "import socket; h,p='$REG_ADDR'.rsplit(':',1); socket.create_connection((h,int(p)),1)"
fi
log "ready: docker $(docker version -f '{{.Server.Version}}'), registry $REG_ADDR (user $REG_USER)"
