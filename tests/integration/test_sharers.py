"""Issue 20.1: containers that share a namespace, volumes or a link with an updated one keep working.

`--ipc container:X`, `--pid container:X`, `--volumes-from X` and `--link X` sharers are recreated after X,
pointing at the new X, keeping their image reference; `--rm` ones make the update skip; a rollback
(a failed gate, or `agent rollback`) takes them along.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import World, by_container, world_fixture

CRASH = ["sh", "-c", "exit 3"]


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def start_x_and_sharers(world: World) -> dict[str, str]:
    """X (shareable IPC, an anonymous volume holding data) and one sharer of each kind; their ids."""
    world.push_image("v1", volumes=["/anon"])
    world.push_image("s1", repo="side")
    world.run("x", ipc_mode="shareable")
    x = world.container("x")["Id"]
    world.client.containers.get(x).exec_run(["sh", "-c", "echo kept > /anon/f"])
    for name, kw in (("ipc", {"ipc_mode": f"container:{x}"}), ("pid", {"pid_mode": f"container:{x}"}),
                     ("vols", {"volumes_from": [x]}), ("link", {"links": {world.prefix + "x": "db"}})):  # fmt: skip
        world.run(name, repo="side", **kw)
    return {n: world.container(n)["Id"] for n in ("x", "ipc", "pid", "vols", "link")}


def assert_sharers_follow(world: World, before: dict[str, str]) -> None:
    x = world.container("x")["Id"]
    got = {n: world.container(n) for n in ("ipc", "pid", "vols", "link")}
    assert all(c["Id"] != before[n] and c["State"]["Running"] for n, c in got.items()), got
    assert all(c["Config"]["Image"] == world.image("side") for c in got.values())  # not a bare sha256 id
    assert got["ipc"]["HostConfig"]["IpcMode"] == f"container:{x}"
    assert got["pid"]["HostConfig"]["PidMode"] == f"container:{x}"
    assert got["vols"]["HostConfig"]["VolumesFrom"] == [x]
    assert got["link"]["HostConfig"]["Links"] == [f"/{world.prefix}x:/{world.prefix}link/db"]
    sh = world.client.containers.get
    assert sh(got["vols"]["Id"]).exec_run(["cat", "/anon/f"]).output.decode().strip() == "kept"
    assert "3600" in sh(got["pid"]["Id"]).exec_run(["ps"]).output.decode()  # it sees X's processes
    ip = world.container("x")["NetworkSettings"]["IPAddress"]
    assert ip in sh(got["link"]["Id"]).exec_run(["cat", "/etc/hosts"]).output.decode()
    for n in got:  # and each survives a restart: nothing points at a removed container
        sh(world.prefix + n).restart(timeout=1)
        assert world.container(n)["State"]["Running"], n


def test_every_kind_of_sharer_follows_an_update_and_an_agent_rollback(world: World) -> None:
    before = start_x_and_sharers(world)
    world.push_image("v2", volumes=["/anon"])
    cfg = world.config([{"container": "x", "image": world.image()}])

    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "x"]
    assert (code, r["status"]) == (0, "updated"), err
    assert {d["container"]: d["outcome"] for d in r["dependants"]} == {
        world.prefix + n: "restarted" for n in ("ipc", "link", "pid", "vols")
    }
    assert_sharers_follow(world, before)

    now = {n: world.container(n)["Id"] for n in before}
    done = world.agent("rollback", world.prefix + "x", "-c", str(cfg))
    assert done.returncode == 0, done.stderr
    assert_sharers_follow(world, now)
    assert [n for n in world.containers() if "/" not in n] == sorted(world.prefix + n for n in before)


def test_a_sharer_started_with_rm_makes_the_update_skip_and_names_it(world: World) -> None:
    world.push_image("v1")
    world.run("x")
    x = world.container("x")["Id"]
    world.run("side", pid_mode=f"container:{x}", auto_remove=True)
    world.push_image("v2")
    code, report, err = world.once(world.config([{"container": "x", "image": world.image()}]))
    r = by_container(report)[world.prefix + "x"]
    assert (code, r["status"]) == (0, "skipped"), err
    assert world.prefix + "side" in r["error"] and "--rm" in r["error"]
    assert world.container("x")["Id"] == x and world.container("side")["State"]["Running"]


def test_a_failed_gate_restores_x_and_starts_its_pid_sharer_again(world: World) -> None:
    world.push_image("v1")
    world.run("x")
    x = world.container("x")["Id"]
    world.run("side", pid_mode=f"container:{x}")
    side = world.container("side")["Id"]
    world.push_image("v2-crash", cmd=CRASH)
    code, report, err = world.once(world.config([{"container": "x", "image": world.image()}]))
    r = by_container(report)[world.prefix + "x"]
    assert (code, r["status"]) == (1, "rolled_back"), err
    assert r["dependants"] == [{"container": world.prefix + "side", "outcome": "restarted", "error": None}]
    assert world.container("x")["Id"] == x
    c: dict[str, Any] = world.container("side")
    assert (c["Id"], c["State"]["Running"]) == (side, True)


def test_a_sharer_that_is_itself_watched_is_updated_in_the_same_pass(world: World) -> None:
    world.push_image("v1")
    world.push_image("s1", repo="side")
    world.run("x", ipc_mode="shareable")
    world.run("side", repo="side", ipc_mode=f"container:{world.container('x')['Id']}")
    world.push_image("v2")
    new_side = world.push_image("s2", repo="side")
    cfg = world.config([{"container": "x", "image": world.image()},
                        {"container": "side", "image": world.image("side")}])  # fmt: skip
    code, report, err = world.once(cfg)
    r = by_container(report)
    assert (code, r[world.prefix + "x"]["status"], r[world.prefix + "side"]["status"]) == (
        0, "updated", "updated"
    ), err  # fmt: skip
    assert "another actor" not in err
    side = world.container("side")
    assert side["HostConfig"]["IpcMode"] == f"container:{world.container('x')['Id']}"
    assert new_side in world.running_digests("side") and side["State"]["Running"]


def test_a_kill_after_the_commit_point_still_brings_the_sharers_along(world: World) -> None:
    world.push_image("v1")
    world.push_image("s1", repo="side")
    world.run("x", ipc_mode="shareable")
    world.run("side", repo="side", ipc_mode=f"container:{world.container('x')['Id']}")
    world.push_image("v2")
    cfg = world.config([{"container": "x", "image": world.image()}])
    done = world.agent("old_removed", "once", "-c", str(cfg), module="tests.support.kill_at")
    assert done.returncode == -9, done.stderr

    code, report, err = world.once(cfg)  # recovery finishes x, and its sharers
    assert code == 0, err
    side = world.container("side")
    assert side["HostConfig"]["IpcMode"] == f"container:{world.container('x')['Id']}", err
    assert side["State"]["Running"] and side["Config"]["Image"] == world.image("side")
    assert [n for n in world.containers() if "/" not in n] == [world.prefix + "side", world.prefix + "x"]


def test_start_first_sharers_follow_once_the_new_container_is_proven(world: World) -> None:
    world.push_image("v1")
    world.run("x")
    world.run("side", pid_mode=f"container:{world.container('x')['Id']}")
    world.push_image("v2")
    cfg = world.config([{"container": "x", "image": world.image(), "strategy": "start-first"}])
    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "x"]
    assert (code, r["status"], r["strategy"]) == (0, "updated", "start-first"), err
    side = world.container("side")
    assert (
        side["HostConfig"]["PidMode"] == f"container:{world.container('x')['Id']}"
        and side["State"]["Running"]
    )
