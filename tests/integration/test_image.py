"""The container image (root Dockerfile, scripts/build-image.sh) run against the test engine as the docs
say: --network host, the docker socket, a config volume, a state volume. It updates a container, and
never replaces its own container from inside: skipped by default, or replaced by a helper container."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import KEY_ID, KEY_SECRET, World, world_fixture
from tests.support import images
from tests.support.receiver import Receiver
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "cr-agent:dev"


@pytest.fixture(scope="module")
def agent_image(docker_client: docker.DockerClient) -> str:
    """Build the image as CI and the docs do (incremental after the first build)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build-image.sh"), IMAGE], capture_output=True,
                          text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return IMAGE


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def push_agent_image(world: World, image: str, label: str) -> tuple[str, str]:
    """The agent's image in the registry (so its own container can be watched), one label apart:
    (digest, local image id)."""
    ref = world.image("agent")
    dockerfile = f"FROM {image}\nLABEL io.cr-agent.test={label}\n".encode()
    world.client.images.build(fileobj=io.BytesIO(dockerfile), tag=ref, rm=True)
    digest = images.push(ref, world.client)
    return digest, world.client.images.get(ref).id


def start_agent(
    world: World, image: str, watches: list[dict[str, object]], self_update: bool, extra: str = ""
) -> str:
    cfg = world.config(watches, extra=extra, agent=f"self_update = {'true' if self_update else 'false'}")
    text = cfg.read_text().replace(f'state_dir = "{world.tmp / "state"}"', 'state_dir = "/var/lib/cr-agent"')
    conf_dir = world.tmp / "etc"
    conf_dir.mkdir()
    (conf_dir / "agent.toml").write_text(text)
    env_file = conf_dir / "env"
    env_file.write_text(
        f"ALIBABA_CLOUD_ACCESS_KEY_ID={KEY_ID}\nALIBABA_CLOUD_ACCESS_KEY_SECRET={KEY_SECRET}\n"
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true\n"
    )
    env_file.chmod(0o600)
    name = world.prefix + "agent"
    subprocess.run([
        "docker", "run", "-d", "--name", name, "--network", "host", "--stop-timeout", "300",
        "--env-file", str(env_file),
        "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{conf_dir}:/etc/cr-agent:ro",
        "-v", f"{world.prefix}state:/var/lib/cr-agent", "-v", "/etc/localtime:/etc/localtime:ro",
        image,
    ], check=True, capture_output=True)  # fmt: skip
    return name


def logs_once_they_say(world: World, name: str, needle: str, timeout: float) -> str:
    def said() -> str | None:
        text = world.client.api.logs(name).decode(errors="replace")
        return text if needle in text else None

    return wait_until(said, timeout, f"{needle!r} in the agent container's log")


def test_image_updates_a_container_and_skips_its_own(world: World, agent_image: str) -> None:
    _, v1 = push_agent_image(world, agent_image, "v1")
    agent_v2, _ = push_agent_image(world, agent_image, "v2")
    world.push_image("v1")
    world.run("web")
    d2 = world.push_image("v2")
    sink = Receiver()  # on loopback: the agent container shares the host's network
    try:
        notify = f'[notify]\nurls = ["{sink.url("json")}"]\nlanguage = "en"\non = ["updated"]'
        name = start_agent(world, v1, [{"container": "web", "image": world.image()},
                                       {"container": "agent", "image": world.image("agent")}],
                           self_update=False, extra=notify)  # fmt: skip
        assert wait_until(
            lambda: d2 in world.running_digests("web"), 120, "web updated by the agent container"
        )
        text = logs_once_they_say(world, name, "pass done", 60)
        assert "is cr-agent's own container and self_update = false" in text
        assert agent_v2 not in world.running_digests("agent")
        assert world.container("agent")["State"]["Running"]
        assert KEY_SECRET not in text
        (notice,) = [hit.data for hit in sink.wait(1, timeout=60)]
    finally:
        sink.close()
    # the undo command as it is typed where the agent runs: through `docker exec` into its container
    assert f"docker exec {name} agent rollback {world.prefix}web" in notice["message"], notice


def test_self_update_replaces_the_agent_through_a_helper_container(world: World, agent_image: str) -> None:
    _, v1 = push_agent_image(world, agent_image, "v1")
    agent_v2, _ = push_agent_image(world, agent_image, "v2")
    name = start_agent(world, v1, [{"container": "agent", "image": world.image("agent")}], self_update=True)
    old_id = world.container("agent")["Id"]

    def replaced() -> bool:
        c = world.container("agent")
        return c["Id"] != old_id and c["State"]["Running"] and agent_v2 in world.running_digests("agent")

    wait_until(replaced, 180, "the helper replacing the agent's container with the new image")
    wait_until(lambda: world.containers() == [name], 120, "the helper and the old agent gone")
    new = world.container("agent")
    assert new["HostConfig"]["NetworkMode"] == "host"
    assert f"{world.prefix}state" in {m.get("Name") for m in new["Mounts"]}
    text = logs_once_they_say(world, name, "up to date", 120)  # the new agent, on its first pass
    assert KEY_SECRET not in text
