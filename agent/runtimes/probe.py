"""Read-only looks at an engine for `agent check` and `agent init`: does it answer, what runs there."""

from __future__ import annotations

from pathlib import Path

import docker

from agent.runtimes.engines import API_VERSION, client_for
from agent.runtimes.faults import fault, unless_missing
from agent.runtimes.relabel import IMAGE_LABEL


class Probe:
    """One engine: the local one (DOCKER_HOST, else the default socket) or `host`. Errors are RuntimeFault,
    their cause the transport's own (FileNotFoundError, PermissionError…)."""

    def __init__(self, host: str | None = None, tls_dir: Path | None = None, timeout: int = 10) -> None:
        with fault(f"Docker engine {host}" if host else "the Docker Engine"):
            self.client = (
                client_for(host, tls_dir) if host else docker.from_env(version=API_VERSION, timeout=timeout)
            )

    def version(self) -> str:
        with fault("ask the Docker Engine for its version"):
            return str(self.client.api.version().get("Version", "?"))

    def image_of(self, name: str, service: bool = False) -> tuple[str, list[str]] | None:
        """(the image reference it was created from, its image's RepoDigests), or None when missing."""
        if service:
            svc = unless_missing(f"inspect service {name}", lambda: self.client.api.inspect_service(name))
            if svc is None:
                return None
            image = str(svc["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image") or "")
            return image, [image]
        data = unless_missing(f"inspect container {name}", lambda: self.client.api.inspect_container(name))
        if data is None:
            return None
        config = data.get("Config") or {}
        image = (config.get("Labels") or {}).get(IMAGE_LABEL) or str(config.get("Image") or "")
        info = unless_missing(
            f"inspect image {data['Image']}", lambda: self.client.api.inspect_image(data["Image"])
        )
        return image, list((info or {}).get("RepoDigests") or [])

    def running(self) -> list[tuple[str, str, list[str]]]:
        """(name, the image it follows, RepoDigests) of each running container."""
        with fault("list running containers"):
            listed = self.client.api.containers(filters={"status": "running"})
        out = []
        for c in listed:
            name = next((n.lstrip("/") for n in c.get("Names") or [] if "/" not in n.lstrip("/")), "")
            found = self.image_of(c["Id"]) if name else None
            if found is not None:
                out.append((name, *found))
        return out

    def close(self) -> None:
        self.client.close()
