"""Starts the short-lived helper container that replaces the agent's own container (self_update)."""

from __future__ import annotations

import docker
from docker.errors import NotFound

from agent.model import HELPER_SUFFIX
from agent.runtimes.faults import fault


def start_self_update_helper(
    own_id: str, target: str, config_path: str, client: docker.DockerClient | None = None
) -> str:
    """Run `agent self-update TARGET` in a container like ours (image, env, mounts, network); return its name."""
    client = client or docker.from_env()
    name = target + HELPER_SUFFIX
    with fault(f"inspect own container {own_id[:12]}"):
        own = client.api.inspect_container(own_id)
    with fault(f"remove the old helper {name}"):
        try:
            old = client.api.inspect_container(name)
            if old["State"]["Running"]:
                return name  # one is already at work
            client.api.remove_container(name, force=True)
        except NotFound:
            pass
    with fault(f"start the helper {name}"):
        client.containers.run(
            own["Image"], entrypoint=["agent"], command=["self-update", target, "-c", config_path],
            name=name, detach=True, auto_remove=True, environment=own["Config"].get("Env") or [],
            volumes_from=[own_id], network_mode=own["HostConfig"].get("NetworkMode") or None,
            labels={"io.cr-agent.self-update": target},
        )  # fmt: skip
    return name
