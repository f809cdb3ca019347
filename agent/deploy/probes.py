"""HTTP and TCP health probes, run from the agent's host. Never through a proxy."""

from __future__ import annotations

import functools
import socket
from typing import Any

from agent.config import HealthSpec


@functools.cache
def _opener() -> Any:
    import urllib.request  # lazily: `agent once` with nothing to update never probes

    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe(spec: HealthSpec) -> tuple[bool, str]:
    """One probe: (passed, what was seen)."""
    if spec.http:
        return _http(spec.http, spec.expect_status, spec.timeout)
    if spec.tcp:
        return _tcp(spec.tcp, spec.timeout)
    return False, "no probe configured"


def _http(url: str, expect: int, timeout: float) -> tuple[bool, str]:
    import urllib.error

    try:
        with _opener().open(url, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (OSError, ValueError) as e:
        return False, f"GET {url}: {e}"
    return status == expect, f"GET {url}: HTTP {status} (expected {expect})"


def _tcp(address: str, timeout: float) -> tuple[bool, str]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True, f"tcp {address}: connected"
    except OSError as e:
        return False, f"tcp {address}: {e}"
