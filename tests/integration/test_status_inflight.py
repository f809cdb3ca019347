"""Issue 20.6: `agent status` between an interrupted health gate and the pass that recovers it.

The agent dies at `health_wait` (as when dockerd restarts under it, or the agent is SIGKILLed): the new,
unproven container runs under the name and the journal holds the step.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import SLEEPER, World, world_fixture

KILL_AT = "tests.support.kill_at"


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def status(world: World, cfg: Path) -> dict[str, Any]:
    done = world.agent("status", "-c", str(cfg), "--json")
    assert done.returncode == 0, done.stderr
    (c,) = json.loads(done.stdout)["containers"]
    return dict(c)


def test_status_shows_an_interrupted_gate_in_flight_and_history_keeps_every_attempt(world: World) -> None:
    old = world.push_image("v1")
    world.run("app", command=SLEEPER)
    cfg = world.config([{"container": "app", "image": world.image()}])
    new = world.push_image("v2")
    done = world.agent("health_wait", "once", "-c", str(cfg), module=KILL_AT)
    assert done.returncode == -signal.SIGKILL, done.stderr

    c = status(world, cfg)
    assert c["running_digest"] == new and c["running_unproven"] is True, c
    assert "health_wait" in c["in_flight"] and "will be recovered on the next pass" in c["in_flight"], c
    assert [(h["outcome"], h["to_digest"]) for h in c["history"]] == [("in_flight", new)]
    human = world.agent("status", "-c", str(cfg)).stdout
    assert "unproven" in human and "will be recovered on the next pass" in human, human

    assert world.once(cfg)[0] == 0  # recovery undoes the attempt, then the pass updates again
    c = status(world, cfg)
    assert (c["in_flight"], c["running_unproven"], c["running_digest"]) == (None, False, new)
    assert [(h["outcome"], h["from_digest"], h["to_digest"]) for h in c["history"]] == [
        ("updated", old, new), ("interrupted", old, new)
    ]  # fmt: skip
