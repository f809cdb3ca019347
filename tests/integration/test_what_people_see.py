"""What people see while the agent works (issue 21, item 7): step lines, versions, status, commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import World, world_fixture


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_a_replacement_logs_each_slow_step_at_info(world: World) -> None:
    world.push_image("v1")
    world.run("first").remove(force=True)  # pulls it the way a user would
    api = world.client.api  # docker-py's run() has no stop_timeout
    c = api.create_container(world.image(), name=world.prefix + "web", stop_signal="SIGKILL", stop_timeout=7)
    api.start(c["Id"])
    d2 = world.push_image("v2")
    cfg = world.config([{"container": "web", "image": world.image(), "min_uptime": "1s"}])

    done = world.agent("once", "-c", str(cfg), "--log-json")
    assert done.returncode == 0, done.stderr
    name = world.prefix + "web"
    lines = [x for x in json_lines(done.stderr) if x["level"] == "INFO" and x.get("container") == name]
    said = [
        (x.get("step") or x["event"], x["message"])
        for x in lines
        if x["event"] == "pull.start" or x.get("step")
    ]
    assert [s for s, _ in said] == ["pull.start", "old_stopped", "health_wait", "old_removed"], said
    assert said[0][1] == f"{name}: pulling {world.image().rsplit(':', 1)[0]}@{d2}"
    assert said[1][1] == f"{name}: stopping the old container (stop timeout 7s)"
    assert said[2][1].startswith(f"{name}: waiting for the new container to prove itself (")
    assert said[2][1].endswith("up to 120s")
    assert said[3][1].startswith(f"{name}: healthy; removing the old container ")
