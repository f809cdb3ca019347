#!/usr/bin/env bash
# Install cr-agent into .venv and watch it update a real container, with no Alibaba Cloud account:
# a local registry stands in for ACR's registry and tests/support/fake_acr.py for the ACR API.
# Needs root (it installs and starts Docker if missing). Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-env.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/python -m scripts.demo "$@"
