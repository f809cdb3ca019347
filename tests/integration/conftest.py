"""Fixtures for tests against the real Docker Engine and the local registry.

Everything a test creates carries its unique name prefix, so concurrent runs on one dockerd never collide.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import DockerException

from agent.runtimes.docker import DockerRuntime
from tests.support import acr_world, env

HERE = Path(__file__).parent
DEV_ENV = HERE.parent.parent / "scripts" / "dev-env.sh"
_ANON = re.compile(r"^[0-9a-f]{64}$")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.docker)


def _acr_world_up() -> bool:
    """The test CA and the /etc/hosts lines of scripts/dev-env.sh (tests/support/acr_world.py)."""
    try:
        resolved = socket.gethostbyname(acr_world.api_host(acr_world.REGIONS[0]))
    except OSError:
        return False
    return resolved == acr_world.API_IP and Path(acr_world.CA_FILE).is_file()


def _services_up() -> bool:
    if not _acr_world_up():
        return False
    docker_ok = subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    host, port = env.REGISTRY.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return docker_ok


@pytest.fixture(scope="session", autouse=True)
def dev_env() -> None:
    """Start dockerd and the registry when they are down; a failed set-up errors the tests."""
    if _services_up():
        return
    done = subprocess.run(["bash", str(DEV_ENV)], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not _services_up():
        raise RuntimeError(f"scripts/dev-env.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def docker_client(dev_env: None) -> Iterator[docker.DockerClient]:
    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture
def runtime(docker_client: docker.DockerClient) -> DockerRuntime:
    return DockerRuntime(docker_client)


def new_prefix() -> str:
    return f"crt-{secrets.token_hex(4)}-"


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


@pytest.fixture
def prefix(docker_client: docker.DockerClient) -> Iterator[str]:
    """A unique name prefix; whatever carries it is removed after the test."""
    value = new_prefix()
    yield value
    purge(docker_client, value)


@pytest.fixture(scope="module")
def module_prefix(docker_client: docker.DockerClient) -> Iterator[str]:
    value = new_prefix()
    yield value
    purge(docker_client, value)
