"""The agent's own container: found from /proc, never replaced from inside; with `self_update = true`
a short-lived helper container replaces it, after the pass, through the same safe replace
(agent/cli/selfupdate.py is its pass)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

_MOUNT_ID = re.compile(r"/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)\s")
_CGROUP_ID = re.compile(r"(?:/docker/|docker-)([0-9a-f]{64})(?:\.scope)?\s*$", re.M)
_SHORT_ID = re.compile(r"^[0-9a-f]{12}$")


def own_container_id(
    proc: Path = Path("/proc/self"), hostname: str | None = None, dockerenv: Path = Path("/.dockerenv")
) -> str | None:
    """The container this process runs in: its full id, or the 12-digit prefix Docker uses as hostname."""
    for name, pattern in (("mountinfo", _MOUNT_ID), ("cgroup", _CGROUP_ID)):
        try:
            m = pattern.search((proc / name).read_text())
        except OSError:
            continue
        if m:
            return m.group(1)
    host = socket.gethostname() if hostname is None else hostname
    return host if dockerenv.exists() and _SHORT_ID.match(host) else None


def agent_command(own_name: str | None) -> str:
    """How the user runs the agent's commands where it runs: `docker exec NAME agent` in a container."""
    return f"docker exec {own_name} agent" if own_name else "agent"


def is_own(container_id: str, own: str | None) -> bool:
    return bool(own) and container_id.startswith(own or "-")


def skip_reason(container: str) -> str:
    return (
        f"{container} is cr-agent's own container and self_update = false: not replaced from inside; "
        "update it from the host (docker compose pull && docker compose up -d), or set self_update = true"
    )
