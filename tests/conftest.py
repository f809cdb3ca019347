"""For every test process and what it starts: the credential chain never asks the ECS instance metadata
service (100.100.100.200). The one test that serves that protocol on loopback turns it back on itself."""

from __future__ import annotations

import os

os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
