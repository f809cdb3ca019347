"""Remove what a test or a benchmark created on the shared Docker Engine: everything named with its prefix."""

from __future__ import annotations

import contextlib
import re

import docker
from docker.errors import DockerException

_ANON = re.compile(r"^[0-9a-f]{64}$")


def purge(client: docker.DockerClient, prefix: str) -> None:
    """Remove containers (forced), their anonymous volumes, networks, volumes and image refs named `prefix`*."""
    api = client.api
    anonymous: set[str] = set()
    for c in api.containers(all=True, filters={"name": prefix}):
        if not any(n.lstrip("/").startswith(prefix) for n in c["Names"]):
            continue
        anonymous.update(m["Name"] for m in c.get("Mounts") or [] if _ANON.match(m.get("Name") or ""))
        _quietly(api.remove_container, c["Id"], force=True, v=False)
    for net in api.networks(names=[prefix]):
        if net["Name"].startswith(prefix):
            _quietly(api.remove_network, net["Id"])
    volumes = api.volumes(filters={"name": prefix}).get("Volumes") or []
    anonymous.update(v["Name"] for v in volumes if v["Name"].startswith(prefix))
    for name in anonymous:
        _quietly(api.remove_volume, name, force=True)
    # By reference, never by id: a cached build can share its id with another run's image.
    for image in api.images():
        for ref in (image.get("RepoTags") or []) + (image.get("RepoDigests") or []):
            if f"/{prefix}" in ref:
                _quietly(api.remove_image, ref)


def _quietly(fn: object, *args: object, **kwargs: object) -> None:
    with contextlib.suppress(DockerException):
        fn(*args, **kwargs)  # type: ignore[operator]
