#!/usr/bin/env bash
# The test command: installs what the tests need (Docker Engine, a local registry, busybox),
# starts it if it is not running, installs the package in .venv and runs every test.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -q`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-env.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
