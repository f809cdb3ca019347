"""`network_mode: container:<parent>`: after the parent is replaced, the child runs in its new namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import SLEEPER, World, by_container, world_fixture
from tests.integration.test_engines import HOST2, engine2, run_on

__all__ = ["engine2"]  # the second engine's fixture


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


def test_dependants_are_found_and_recreated_on_the_entrys_own_engine_only(
    world: World, engine2: docker.DockerClient
) -> None:
    """Issue 19: a `docker_host` entry's dependants live on that engine; the local engine is not asked."""
    world.push_image("v1")
    run_on(engine2, world, "parent")
    parent_id = engine2.api.inspect_container(world.prefix + "parent")["Id"]
    ref = world.image()
    engine2.containers.run(ref, name=world.prefix + "child", detach=True, command=SLEEPER,
                           network_mode=f"container:{parent_id}")  # fmt: skip
    world.run("parent", command=SLEEPER)  # the same names on the local engine
    world.run("child", command=SLEEPER, network_mode=f"container:{world.container('parent')['Id']}")
    local = {n: world.container(n)["Id"] for n in ("parent", "child")}
    world.push_image("v2")
    cfg = world.config([{"container": "parent", "image": world.image(), "docker_host": HOST2}])

    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "parent"]
    assert (code, r["status"]) == (0, "updated"), err
    assert r["dependants"] == [{"container": world.prefix + "child", "outcome": "restarted", "error": None}]
    new_parent = engine2.api.inspect_container(world.prefix + "parent")["Id"]
    child = engine2.api.inspect_container(world.prefix + "child")
    assert child["HostConfig"]["NetworkMode"] == f"container:{new_parent}" and child["State"]["Running"]
    assert {n: world.container(n)["Id"] for n in ("parent", "child")} == local  # the local pair untouched
