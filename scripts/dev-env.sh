#!/usr/bin/env bash
# Brings up what the integration tests need: Debian's Docker Engine, a local
# registry on loopback with htpasswd auth, the static busybox binary, and the ACR
# test world (tests/support/acr_world.py): a test CA, /etc/hosts lines sending real
# ACR host names to loopback addresses, and dockerd trusting the CA for them.
# Idempotent: whatever already runs is left alone. Needs root. TEST-ONLY: it reconfigures the machine
# (real ACR names resolve to loopback afterwards), so never run it on a server that pulls from ACR;
# scripts/demo.sh does not run it. Undo (docs/testing.md#undoing-scripts-dev-envsh):
#   dev-env.sh --clean-hosts   removes this script's /etc/hosts lines and exits
#   rm -r /etc/docker/certs.d/{registry,registry-vpc,...}.<region>.aliyuncs.com   (its test CA; list:
#         python3 -m tests.support.acr_world registry-hosts)
#   kill "$(cat /run/cr-agent-test/docker2.pid)"; ip link del crt-docker2   (the second dockerd)
#   pkill -f 'docker-registry serve /var/lib/cr-agent-test'; rm -r /var/lib/cr-agent-test /var/log/cr-agent-test
set -euo pipefail
cd "$(dirname "$0")/.."

REG_ADDR="${CR_TEST_REGISTRY:-127.0.0.1:5000}"
REG_USER="${CR_TEST_REGISTRY_USER:-cr-test}"
REG_PASS="${CR_TEST_REGISTRY_PASSWORD:-cr-test-password}"
WORK="${CR_TEST_WORK:-/var/lib/cr-agent-test}"
LOGS="${CR_TEST_LOGS:-/var/log/cr-agent-test}"

log() { printf 'dev-env: %s\n' "$*" >&2; }

if [[ "${1:-}" == "--clean-hosts" ]]; then
  log "/etc/hosts: $(python3 -m tests.support.acr_world hosts-clean)"
  exit 0
fi

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
command -v openssl >/dev/null || need+=(openssl)
# Compose v1 (1.29, Python): tests/integration/test_compose_v1.py runs it for real
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v ip >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$WORK/registry/data" "$LOGS"

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  setsid nohup dockerd >"$LOGS/dockerd.log" 2>&1 &
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
  setsid nohup docker-registry serve "$WORK/registry/config.yml" >>"$LOGS/registry.log" 2>&1 &
  wait_for 30 docker-registry python3 -c "import socket; h,p='$REG_ADDR'.rsplit(':',1); socket.create_connection((h,int(p)),1)"
fi
# -- the ACR test world: CA, server certificate, /etc/hosts, dockerd's trust ------------------
TLS="$WORK/tls"
SANS=$(python3 -m tests.support.acr_world sans)
mkdir -p "$TLS"
if [[ ! -s "$TLS/ca.crt" ]]; then
  log "creating the test CA in $TLS"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cr-agent test CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null
fi
if [[ "$(cat "$TLS/server.sans" 2>/dev/null)" != "$SANS" || ! -s "$TLS/server.crt" ]]; then
  log "issuing the test server certificate"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=cr-agent test server" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$SANS" >"$TLS/server.ext"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 3650 -extfile "$TLS/server.ext" -out "$TLS/server.crt" 2>/dev/null
  printf '%s' "$SANS" >"$TLS/server.sans"
fi
chmod 0644 "$TLS/ca.crt" "$TLS/server.crt" "$TLS/server.key"
if [[ "$(python3 -m tests.support.acr_world hosts-add)" == changed ]]; then
  log "wrote the ACR test host names to /etc/hosts"
fi
for host in $(python3 -m tests.support.acr_world registry-hosts); do
  mkdir -p "/etc/docker/certs.d/$host"
  cmp -s "$TLS/ca.crt" "/etc/docker/certs.d/$host/ca.crt" || cp "$TLS/ca.crt" "/etc/docker/certs.d/$host/ca.crt"
done

# A second engine for the tests of several engines: its own socket, data root, exec root, pidfile and
# bridge (created here, distinct subnet), no iptables. Never `--bridge=none`: a dockerd started with it
# deletes docker0, the first engine's bridge.
D2_DIR="${CR_TEST_DOCKER2_DIR:-/run/cr-agent-test}"
D2_BRIDGE="${CR_TEST_DOCKER2_BRIDGE:-crt-docker2}"
if ! docker -H "unix://$D2_DIR/docker2.sock" info >/dev/null 2>&1; then
  log "starting a second dockerd on $D2_DIR/docker2.sock (bridge $D2_BRIDGE)"
  mkdir -p "$D2_DIR" "$WORK/docker2"
  if ! ip link show "$D2_BRIDGE" >/dev/null 2>&1; then
    ip link add "$D2_BRIDGE" type bridge
    ip addr add 10.213.0.1/24 dev "$D2_BRIDGE"
    ip link set "$D2_BRIDGE" up
  fi
  setsid nohup dockerd --host "unix://$D2_DIR/docker2.sock" --data-root "$WORK/docker2" \
    --exec-root "$D2_DIR/docker2-exec" --pidfile "$D2_DIR/docker2.pid" \
    --bridge="$D2_BRIDGE" --iptables=false --ip-masq=false >>"$LOGS/dockerd2.log" 2>&1 &
  wait_for 60 "the second dockerd" docker -H "unix://$D2_DIR/docker2.sock" info
fi
log "ready: docker $(docker version -f '{{.Server.Version}}'), registry $REG_ADDR (user $REG_USER)"
