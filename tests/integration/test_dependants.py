"""`network_mode: container:<parent>`: after the parent is replaced, the child runs in its new namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import World, by_container, world_fixture


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def interfaces(world: World, name: str) -> list[str]:
    out = world.client.containers.get(world.prefix + name).exec_run(["ls", "/sys/class/net"]).output
    return sorted(out.decode().split())


def test_a_child_in_the_parents_network_namespace_is_recreated_after_the_parent(world: World) -> None:
    world.push_image("v1")
    world.push_image("s1", repo="side")
    world.run("parent")
    parent_id = world.container("parent")["Id"]
    world.run("child", repo="side", network_mode=f"container:{parent_id}", environment={"KEEP": "me"})
    world.run("bystander", repo="side", labels={"com.docker.compose.depends_on": "parent:service_started"})
    bystander_id = world.container("bystander")["Id"]
    assert "eth0" in interfaces(world, "child")
    world.push_image("v2")
    cfg = world.config([{"container": "parent", "image": world.image()}])

    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "parent"]
    assert code == 0, err
    assert r["status"] == "updated"
    assert r["dependants"] == [{"container": world.prefix + "child", "outcome": "restarted", "error": None}]
    new_parent = world.container("parent")["Id"]
    child = world.container("child")
    assert child["HostConfig"]["NetworkMode"] == f"container:{new_parent}"
    assert child["State"]["Running"] and "KEEP=me" in child["Config"]["Env"]
    assert "eth0" in interfaces(world, "child")  # it has a network again
    assert world.container("bystander")["Id"] == bystander_id  # depends_on alone: left alone
    assert world.containers() == sorted(world.prefix + n for n in ("bystander", "child", "parent"))
