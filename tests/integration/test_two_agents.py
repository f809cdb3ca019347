"""Issue 20.5: two agents on one engine are told apart, and a failed rollback leaves no pin."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import SLEEPER, World, by_container, world_fixture


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def test_an_agent_that_starts_names_the_other_agent_and_the_entries_once(world: World) -> None:
    world.push_image("v1")
    world.run("app", command=SLEEPER)
    world.run("alone", command=SLEEPER)
    other = world.tmp / "other.toml"  # another agent, its own state_dir, watching app alone
    text = world.config([{"container": "app", "image": world.image()}]).read_text()
    other.write_text(text.replace(str(world.tmp / "state"), str(world.tmp / "state2")))
    cfg = world.config([{"container": "app", "image": world.image()},
                        {"container": "alone", "image": world.image()}])  # fmt: skip
    world.push_image("v2")
    assert world.once(other)[0] == 0  # the other agent replaced app

    code, report, err = world.once(cfg)
    assert code == 0, err
    warned = [line for line in err.splitlines() if "another agent" in line]
    assert len(warned) == 1, err
    assert f"on {socket.gethostname()}" in warned[0] and world.prefix + "app" in warned[0]
    assert world.prefix + "alone" not in warned[0]
    world.push_image("v3")
    code, _, err = world.once(cfg)  # this agent replaces app now: then the other one is told of it
    code, _, err = world.once(other)
    assert code == 0 and err.count("another agent") == 1 and world.prefix + "app" in err, err


def test_a_failed_rollback_leaves_no_pin_and_says_why(world: World) -> None:
    world.push_image("v1")
    world.run("app", command=SLEEPER)
    cfg = world.config([{"container": "app", "image": world.image()}])
    gone = "sha256:" + "0" * 64  # not in the registry: the pull fails
    done = world.agent("rollback", "-c", str(cfg), world.prefix + "app", "--to", gone, "--json")
    assert done.returncode == 1, done.stderr
    (r,) = json.loads(done.stdout)["results"]
    assert r["status"] == "failed" and "pull failed" in r["error"]
    status = json.loads(world.agent("status", "-c", str(cfg), "--json").stdout)
    assert status["containers"][0]["pinned"] is None
    assert "the pin is removed" in done.stderr
    code, report, err = world.once(cfg)
    assert (code, by_container(report)[world.prefix + "app"]["status"]) == (0, "up_to_date"), err
