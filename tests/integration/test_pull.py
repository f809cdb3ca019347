"""Pulls from a registry that stalls or crawls (issue 9 item 10), on the real engine.

The registry is the shared one, behind our own loopback proxy (tests/support/tcpproxy.py) that freezes or
slows what flows back: never stop the shared registry itself.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import World, by_container, world_fixture
from tests.support import env, images
from tests.support.tcpproxy import TcpProxy
from tests.support.wait import wait_until

BIG = 32_000_000  # bytes of random data in v2's own layer
SLACK = 45.0  # generous: a busy shared 2-core host; without the watchdog the pull never ends at all


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    host, port = env.REGISTRY.rsplit(":", 1)
    with TcpProxy((host, int(port))) as p:
        yield p


def _set_up(world: World, proxy: TcpProxy, agent: str) -> tuple[Path, str, str]:
    """`app` runs v1 pulled through the proxy; v2 (a large new layer) is pushed and not on the host.

    Returns the config watching the proxy's name for the image, the container id and v1's image id.
    """
    world.push_image("v1", repo="big")
    via_proxy = f"127.0.0.1:{proxy.port}/{world.ns}/big:latest"
    world.client.images.pull(via_proxy, auth_config=images.auth_config())
    app = world.client.containers.run(via_proxy, name=world.prefix + "app", detach=True)
    with tempfile.TemporaryDirectory(prefix="crt-build-") as ctx:
        Path(ctx, "Dockerfile").write_text(f"FROM {via_proxy}\nRUN head -c {BIG} /dev/urandom > /big\n")
        world.client.images.build(path=ctx, tag=world.image("big"), rm=True, forcerm=True, pull=False)
    images.push(world.image("big"), world.client)
    world.client.api.remove_image(world.image("big"), force=True)  # as if CI built it: its layer is not here
    auth = (
        f'[registry_auth."127.0.0.1:{proxy.port}"]\nusername = "{env.REGISTRY_USER}"\npassword_env = "REG_PW"'
    )
    cfg = world.config(
        [{"container": "app", "image": via_proxy, "source": "registry"}], extra=auth, agent=agent
    )
    return cfg, app.id, app.image.id


def _unchanged(world: World, app_id: str, v1: str) -> None:
    c = world.container("app")
    assert (c["Id"], c["Image"], c["State"]["Running"]) == (app_id, v1, True)
    assert world.containers() == [world.prefix + "app"]


def test_a_registry_frozen_mid_pull_fails_the_entry_changes_nothing_and_frees_the_lock(
    world: World, proxy: TcpProxy
) -> None:
    cfg, app_id, v1 = _set_up(world, proxy, 'pull_stall = "3s"')
    proxy.freeze_after(2_000_000)  # like `kill -STOP` of the registry 2 MB into v2's layer
    started = time.monotonic()
    daemon = world.spawn("run", "-c", str(cfg), REG_PW=env.REGISTRY_PASSWORD)
    wait_until(lambda: "pass done" in world.log_of(daemon), 3 + SLACK, "the pass to end despite the stall")
    assert proxy.frozen.is_set()
    assert time.monotonic() - started < 3 + SLACK
    log = world.log_of(daemon)
    assert "no progress for pull_stall 3s" in log and "nothing changed" in log, log
    _unchanged(world, app_id, v1)
    fd = os.open(world.tmp / "state" / "agent.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the daemon still runs, but holds no lock
    finally:
        os.close(fd)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0


def test_a_crawling_pull_ends_at_pull_timeout_with_progress_logged(world: World, proxy: TcpProxy) -> None:
    cfg, app_id, v1 = _set_up(world, proxy, 'pull_timeout = "8s"\npull_stall = "4s"')
    proxy.throttle(1_000_000)  # bytes keep coming, 1 MB/s: 32 s for v2's layer
    started = time.monotonic()
    code, report, err = world.once(cfg, REG_PW=env.REGISTRY_PASSWORD)
    assert time.monotonic() - started < 8 + SLACK
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "failed", err
    assert "not done within pull_timeout 8s" in r["error"], r
    assert "pulling 127.0.0.1:" in err and " MB of " in err, err  # progress, every 5 s
    _unchanged(world, app_id, v1)
