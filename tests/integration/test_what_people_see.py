"""What people see while the agent works (issue 21, item 7): step lines, versions, status, commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import World, by_container, world_fixture


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


def oci(version: str, revision: str) -> dict[str, str]:
    return {"org.opencontainers.image.version": version, "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.source": "https://git.example.com/shop/web"}  # fmt: skip


def test_versions_from_oci_labels_and_status_shows_problems_and_exits_1(world: World) -> None:
    from tests.integration.test_cli_e2e import notify_sink

    rev1, rev2 = "1" * 40, "3f2a9c1" + "0" * 33
    world.push_image("v1", labels=oci("v1.4.1", rev1))
    world.run("web")
    d2 = world.push_image("v2", labels=oci("v1.4.2", rev2))
    cfg = world.config(
        [{"container": "web", "image": world.image()}, {"container": "ghost", "image": world.image()}]
    )
    with notify_sink(cfg) as sink:
        code, report, err = world.once(cfg, "--log-json")
        (note,) = [hit.data for hit in sink.wait(1)]
    web = by_container(report)[world.prefix + "web"]
    assert code == 1 and web["status"] == "updated" and web["latest_digest"] == d2, err
    source = "https://git.example.com/shop/web"
    assert web["version"] == {
        "version": "v1.4.2",
        "revision": rev2,
        "source": source,
        "text": "v1.4.2 (3f2a9c1)",
    }
    (updated,) = [x for x in json_lines(err) if x["message"].startswith(f"{world.prefix}web: updated ")]
    assert f"→ {d2} v1.4.2 (3f2a9c1) (stop-first)" in updated["message"]
    assert (
        "v1.4.2 (3f2a9c1)" in note["message"]
        and f"repository: {world.image().rsplit(':', 1)[0]}" in note["message"]
    )

    done = world.agent("status", "-c", str(cfg), "--json")
    assert done.returncode == 1, done.stderr  # the missing container is an entry in error
    got = {c["container"][len(world.prefix) :]: c for c in json.loads(done.stdout)["containers"]}
    assert got["web"]["in_error"] is False and got["web"]["version"]["text"] == "v1.4.2 (3f2a9c1)"
    assert got["ghost"]["in_error"] is True and "not found" in got["ghost"]["problem"]
    check, last = got["web"]["last_check"], got["web"]["last_deploy"]
    assert (
        isinstance(check["time"], float) and check["time_iso"].startswith("20") and "T" in check["time_iso"]
    )
    assert isinstance(last["started"], float) and "T" in last["started_iso"] and "T" in last["finished_iso"]

    world.client.containers.get(world.prefix + "web").stop(timeout=1)
    human = world.agent("status", "-c", str(cfg))
    assert human.returncode == 1 and "[not running]" not in human.stdout
    assert f"problem   container {world.prefix}ghost not found" in human.stdout
    assert "problem   container is stopped (exit code" in human.stdout and "v1.4.2 (3f2a9c1)" in human.stdout
