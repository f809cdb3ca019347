"""Where the test services live. scripts/dev-env.sh starts them with the same defaults."""

from __future__ import annotations

import os

REGISTRY = os.environ.get("CR_TEST_REGISTRY", "127.0.0.1:5000")
REGISTRY_USER = os.environ.get("CR_TEST_REGISTRY_USER", "cr-test")
REGISTRY_PASSWORD = os.environ.get("CR_TEST_REGISTRY_PASSWORD", "cr-test-password")
REGISTRY_LOG = os.path.join(os.environ.get("CR_TEST_LOGS", "/var/log/cr-agent-test"), "registry.log")
