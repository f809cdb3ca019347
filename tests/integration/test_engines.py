"""Several engines from one agent: a second dockerd started by scripts/dev-env.sh on its own socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def worker(engine2: docker.DockerClient, swarm: docker.DockerClient) -> Iterator[docker.DockerClient]:
    """The second engine joined to the test swarm as a drained worker (no task of anyone's lands on it);
    it leaves again, and its node is removed, so both engines end as they were found."""
    if engine2.info()["Swarm"]["LocalNodeState"] != "inactive":
        pytest.skip("the second engine is already in a swarm: not touching it")
    port = _free_port()
    token = swarm.swarm.attrs["JoinTokens"]["Worker"]
    request = {"ListenAddr": f"127.0.0.1:{port}", "AdvertiseAddr": f"127.0.0.1:{port}",
               "RemoteAddrs": ["127.0.0.1:2377"], "JoinToken": token, "Availability": "drain"}  # fmt: skip
    engine2.api._raise_for_status(engine2.api._post_json(engine2.api._url("/swarm/join"), data=request))
    node = engine2.info()["Swarm"]["NodeID"]
    try:
        yield engine2
    finally:
        engine2.swarm.leave(force=True)
        swarm.api.remove_node(node, force=True)


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def run_on(client: docker.DockerClient, w: World, name: str, **kw: Any) -> None:
    ref = w.image()
    client.images.pull(ref, auth_config=images.auth_config())
    client.containers.run(ref, name=w.prefix + name, detach=True, command=SLEEPER, network_mode="none", **kw)


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


def test_on_a_real_worker_service_entries_fail_clearly_and_containers_are_updated(
    world: World, worker: docker.DockerClient
) -> None:
    assert (worker.info()["Swarm"]["LocalNodeState"], worker.info()["Swarm"]["ControlAvailable"]) == (
        "active",
        False,
    )
    world.push_image("v1")
    run_on(worker, world, "there")
    run_on(worker, world, "labelled", labels={"cr-agent.enable": "true", "cr-agent.source": "aliyun"})
    new = world.push_image("v2")
    cfg = world.config([
        {"container": "there", "image": world.image(), "docker_host": HOST2},
        {"service": "svc", "image": world.image(), "docker_host": HOST2},
    ])  # fmt: skip
    rc, report, err = world.once(cfg)
    r = by_container(report)
    assert (rc, r[world.prefix + "there"]["status"]) == (1, "updated"), err
    assert new in digest_on(worker, world, "there")
    svc = r[world.prefix + "svc"]
    assert (svc["status"], "not a Swarm manager" in (svc["error"] or "")) == ("failed", True), svc

    # the agent on the worker itself, with labels: its containers are found, services skipped quietly
    labels = world.config([], agent='discover = "labels"')
    rc, report, err = world.once(labels, DOCKER_HOST=HOST2)
    mine = {k: v for k, v in by_container(report).items() if k.startswith(world.prefix)}
    assert (rc, {k: v["status"] for k, v in mine.items()}) == (0, {world.prefix + "labelled": "updated"}), err
    assert "Swarm" not in err and new in digest_on(worker, world, "labelled")
