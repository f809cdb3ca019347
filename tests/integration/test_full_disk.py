"""Issue 20.3: a state_dir that fills up during a replacement; every entry still gets its result.

state_dir is a small tmpfs; the agent is paused at `health_wait` while the test fills it.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import SLEEPER, World, by_container, world_fixture
from tests.integration.test_safety import paused_once, resume
from tests.support.receiver import Receiver


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


@pytest.fixture
def small_state(world: World) -> Iterator[Path]:
    where = world.tmp / "state"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(where: Path, leave: int = 0) -> Path:
    """Write a file until the filesystem is full (or only `leave` bytes are free)."""
    filler = where / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                free = __import__("shutil").disk_usage(where).free
                if free <= leave:
                    break
                f.write(b"\0" * min(4096, max(free - leave, 1)))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


def test_a_state_dir_that_fills_during_the_gate_reports_the_entry_and_restores(
    world: World, small_state: Path
) -> None:
    world.push_image("v1")
    world.run("app", command=SLEEPER)
    world.run("other", command=SLEEPER)
    old = world.container("app")["Id"]
    sink = Receiver()
    cfg = world.config([{"container": "app", "image": world.image()},
                        {"container": "other", "image": world.image(), "mode": "notify"}],
                       extra=f'[notify]\nurls = ["{sink.url("json")}"]\non = ["failed"]')  # fmt: skip
    world.push_image("v2")
    p, where = paused_once(world, cfg, "health_wait")
    filler = fill(small_state)
    try:
        code, report, err = resume(p, where)
    finally:
        sink.close()
    assert f"{world.prefix}app: state_dir is full" in err, err  # the log
    assert any("state_dir is full" in h.text for h in sink.hits), err  # the notification
    r = by_container(report)
    assert code == 1 and set(r) == {world.prefix + "app", world.prefix + "other"}, err
    app = r[world.prefix + "app"]
    assert app["status"] == "failed" and app["error"].startswith("state_dir is full: "), app
    assert "the old container was restored" in app["error"]
    assert world.container("app")["Id"] == old and world.container("app")["State"]["Running"]
    assert [n for n in world.containers()] == sorted(world.prefix + n for n in ("app", "other"))

    code, report, err = world.once(cfg)  # still full: no replacement is started
    app = by_container(report)[world.prefix + "app"]
    assert app["status"] == "skipped" and "free" in app["error"] and "state_dir" in app["error"], err
    assert world.container("app")["Id"] == old

    filler.unlink()
    code, report, err = world.once(cfg)
    assert (code, by_container(report)[world.prefix + "app"]["status"]) == (0, "updated"), err
