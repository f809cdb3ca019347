"""Several engines from one agent: a second dockerd started by scripts/dev-env.sh on its own socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import SLEEPER, World, by_container, world_fixture
from tests.integration.conftest import DEV_ENV, purge
from tests.support import images
from tests.support.wait import wait_until

RUN = Path(os.environ.get("CR_TEST_DOCKER2_DIR", "/run/cr-agent-test"))
HOST2 = f"unix://{RUN / 'docker2.sock'}"


def _answers(_client: docker.DockerClient | None = None) -> bool:
    """The second engine answers /_ping: one raw request on its socket, always closed (docker-py's pool
    keeps a socket open when the engine is gone)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(RUN / "docker2.sock"))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def _start_engine2() -> docker.DockerClient:
    client = docker.DockerClient(base_url=HOST2, version="1.41", timeout=120)
    if not _answers(client):
        client.close()  # its pool may hold a socket to the engine that went away
        done = subprocess.run(["bash", str(DEV_ENV)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        client = docker.DockerClient(base_url=HOST2, version="1.41", timeout=120)
    return client


@pytest.fixture
def engine2(prefix: str) -> Iterator[docker.DockerClient]:
    client = _start_engine2()
    yield client
    client.close()
    client = _start_engine2()  # a test may have stopped it
    try:
        purge(client, prefix)
    finally:
        client.close()


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def run_on(client: docker.DockerClient, w: World, name: str) -> None:
    ref = w.image()
    client.images.pull(ref, auth_config=images.auth_config())
    client.containers.run(ref, name=w.prefix + name, detach=True, command=SLEEPER, network_mode="none")


def digest_on(client: docker.DockerClient, w: World, name: str) -> list[str]:
    image = client.api.inspect_image(client.api.inspect_container(w.prefix + name)["Image"])
    return [d.split("@", 1)[1] for d in image.get("RepoDigests") or []]


def test_one_agent_updates_a_container_on_each_engine_and_a_down_engine_fails_only_its_entry(
    world: World, engine2: docker.DockerClient
) -> None:
    world.push_image("v1")
    world.run("here", command=SLEEPER)
    run_on(engine2, world, "there")
    new = world.push_image("v2")
    cfg = world.config([
        {"container": "here", "image": world.image()},
        {"container": "there", "image": world.image(), "docker_host": HOST2},
        {"service": "svc", "image": world.image(), "docker_host": HOST2},
    ])  # fmt: skip
    rc, report, err = world.once(cfg)
    r = by_container(report)
    assert r[world.prefix + "here"]["status"] == "updated", err
    assert r[world.prefix + "there"]["status"] == "updated", err
    assert new in digest_on(engine2, world, "there") and new in world.running_digests("here")
    assert (
        not world.containers() or world.prefix + "there" not in world.containers()
    )  # not on the first engine
    svc = r[world.prefix + "svc"]
    assert (svc["status"], "not a Swarm manager" in (svc["error"] or "")) == ("failed", True), svc

    os.kill(int((RUN / "docker2.pid").read_text()), signal.SIGTERM)
    wait_until(lambda: not _answers(engine2), 60, "the second engine to stop")
    newer = world.push_image("v3")
    rc, report, err = world.once(cfg)
    r = by_container(report)
    assert rc == 1
    assert (r[world.prefix + "here"]["status"], r[world.prefix + "here"]["latest_digest"]) == (
        "updated",
        newer,
    ), err
    assert r[world.prefix + "there"]["status"] == "failed" and HOST2.split("//")[1] in err + str(
        r[world.prefix + "there"]["error"]
    )
