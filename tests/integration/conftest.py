"""Fixtures for tests against the real Docker Engine and the local registry.

Everything a test creates carries its unique name prefix, so concurrent runs on one dockerd never collide.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from agent.runtimes.docker import DockerRuntime
from tests.support.purge import purge
from tests.support.world import DEV_ENV, ensure_services

__all__ = ["DEV_ENV", "purge"]  # test_engines.py runs dev-env.sh itself

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session", autouse=True)
def dev_env() -> None:
    """Start dockerd and the registry when they are down; a failed set-up errors the tests."""
    ensure_services()


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


@pytest.fixture(scope="session")
def swarm(docker_client: docker.DockerClient) -> Iterator[docker.DockerClient]:
    """The test engine as a single-node Swarm manager; it leaves the swarm afterwards only if it joined here."""
    state = docker_client.info()["Swarm"]["LocalNodeState"]
    joined = state != "active"
    if joined:
        docker_client.swarm.init(advertise_addr="127.0.0.1")
    yield docker_client
    if joined:
        docker_client.swarm.leave(force=True)
