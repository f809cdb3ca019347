"""Label discovery end to end: `agent once` on the real engine, images in the local registry, the fake ACR."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import World, by_container, world_fixture

ON = {"cr-agent.enable": "true", "cr-agent.source": "aliyun", "cr-agent.min_uptime": "1s"}


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def mine(world: World, report: dict) -> dict[str, dict]:
    """Results for this test's containers only: the engine is shared."""
    return {k[len(world.prefix) :]: v for k, v in by_container(report).items() if k.startswith(world.prefix)}


def test_labelled_container_is_updated_unlabelled_not_and_labels_survive(world: World) -> None:
    d1 = world.push_image("v1")
    world.run("on", labels=ON)
    world.run("off")
    cfg = world.config([], agent='discover = "labels"')
    d2 = world.push_image("v2")

    code, report, err = world.once(cfg)
    got = mine(world, report)
    assert code == 0, err
    assert set(got) == {"on"}
    assert (got["on"]["status"], got["on"]["current_digest"], got["on"]["latest_digest"]) == (
        "updated",
        d1,
        d2,
    )
    assert d2 in world.running_digests("on") and d1 in world.running_digests("off")
    labels = world.container("on")["Config"]["Labels"]
    assert {k: labels[k] for k in ON} == ON  # kept by the replacement
    assert labels["cr-agent.image"] == world.image()  # the tag it follows, now that it runs an image id

    code, report, err = world.once(cfg)
    assert code == 0, err
    assert mine(world, report)["on"]["status"] == "up_to_date"


def test_a_bad_label_fails_only_its_own_container(world: World) -> None:
    world.push_image("v1")
    world.run("good", labels=ON)
    world.run("bad", labels={**ON, "cr-agent.strategy": "sideways"})
    d2 = world.push_image("v2")
    cfg = world.config([], agent='discover = "labels"')

    code, report, _ = world.once(cfg)
    got = mine(world, report)
    assert code == 1
    assert got["good"]["status"] == "updated" and d2 in world.running_digests("good")
    assert got["bad"]["status"] == "failed"
    assert got["bad"]["error"].startswith("label cr-agent.strategy: must be 'stop-first' or 'start-first'")
    assert d2 not in world.running_digests("bad")


def test_labels_and_a_watch_entry_resolve_and_status_says_where_settings_came_from(world: World) -> None:
    world.push_image("v1")
    world.run("both", labels={**ON, "cr-agent.strategy": "bogus"})  # the [[watch]] entry wins
    world.run("labelled", labels={**ON, "cr-agent.mode": "notify"})
    d2 = world.push_image("v2")
    cfg = world.config([{"container": "both", "image": world.image()}], agent='discover = "labels"')

    code, report, err = world.once(cfg)
    got = mine(world, report)
    assert code == 0, err
    assert got["both"]["status"] == "updated" and d2 in world.running_digests("both")
    assert got["labelled"]["status"] == "would_update"  # cr-agent.mode = notify: monitor only

    done = world.agent("status", "-c", str(cfg), "--json")
    assert done.returncode in (0, 1) and done.stdout, done.stderr  # 1: another test's labelled entry in error
    status = {c["container"][len(world.prefix) :]: c for c in json.loads(done.stdout)["containers"]
              if c["container"].startswith(world.prefix)}  # fmt: skip
    assert not status["both"]["in_error"] and not status["labelled"]["in_error"]
    assert status["both"]["origin"] == "config" and status["both"]["settings"]["strategy"] == "default"
    assert status["labelled"]["origin"] == "labels"
    assert status["labelled"]["settings"]["mode"] == "label cr-agent.mode"
    assert status["labelled"]["settings"]["image"] == "container"

    check = world.agent("check", "-c", str(cfg))
    assert check.returncode == 0, check.stderr
    assert f"{world.prefix}labelled ← {world.image()} (labels:" in check.stdout
    assert "mode from label cr-agent.mode" in check.stdout


WT = "com.centurylinklabs.watchtower"


def test_watchtower_labels_are_followed_and_check_says_what_to_set_when_discovery_is_off(
    world: World,
) -> None:
    world.push_image("v1")
    more = {"cr-agent.source": "aliyun", "cr-agent.min_uptime": "1s"}  # the fake ACR answers; quick gate
    world.run("wt", labels={f"{WT}.enable": "true", **more})
    world.run("wt-watch", labels={f"{WT}.enable": "true", f"{WT}.monitor-only": "true", **more})
    world.run("wt-off", labels={f"{WT}.enable": "false", **more})
    d2 = world.push_image("v2")

    check = world.agent("check", "-c", str(world.config([{"container": "wt", "image": world.image()}])))
    assert check.returncode == 0, check.stderr
    assert "Watchtower labels" in check.stdout and 'discover = "labels"' in check.stdout

    code, report, err = world.once(world.config([], agent='discover = "labels"'))
    got = mine(world, report)
    assert code == 0, err
    assert set(got) == {"wt", "wt-watch"}
    assert got["wt"]["status"] == "updated" and d2 in world.running_digests("wt")
    assert got["wt-watch"]["status"] == "would_update"  # monitor-only → mode = "notify"
    assert d2 not in world.running_digests("wt-watch") and d2 not in world.running_digests("wt-off")
