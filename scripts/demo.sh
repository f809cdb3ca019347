#!/usr/bin/env bash
# Install cr-agent into .venv and watch it update a real container, with no Alibaba Cloud account:
# a registry on loopback stands in for ACR's registry and tests/support/fake_acr.py for the ACR API.
# It changes nothing system-wide: no /etc/hosts, no certificates, no second Docker engine, no packages,
# except Docker itself when it is missing (it says so first; that needs root). Everything it starts
# (registry, container, images, temporary directory) is removed at the end, unless --keep.
#   scripts/demo.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
  echo "demo: Docker is not installed. Installing Debian's docker.io with apt-get now:"
  echo "demo: that is the one system-wide change this demo makes (remove it with: apt-get purge docker.io)."
  if [ "$(id -u)" != 0 ]; then echo "demo: run as root to install Docker, or install it yourself" >&2; exit 1; fi
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
  if ! docker info >/dev/null 2>&1; then
    echo "demo: starting the Docker just installed (systemctl start docker, else dockerd in the background)"
    systemctl start docker 2>/dev/null || (setsid nohup dockerd >/var/log/dockerd.log 2>&1 &)
    for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  fi
fi
if ! docker info >/dev/null 2>&1; then
  echo "demo: Docker does not answer: start it (systemctl start docker), or run the demo as root" >&2
  echo "demo: or as a user of the docker group; DOCKER_HOST names another socket" >&2
  exit 1
fi
if [ ! -x .venv/bin/agent ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -e .
fi
exec .venv/bin/python -m scripts.demo "$@"
