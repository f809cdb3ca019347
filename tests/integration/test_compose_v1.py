"""Compose v1 (Debian's docker-compose 1.29) for real: `up -d`, an agent update, `up -d` again loses nothing.

Compose v1 hashes the local image id into `com.docker.compose.config-hash` (`Service.config_dict()`), so
its next `up -d` recreates the updated container once, with the same new image (docs/labels.md).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import World, by_container, world_fixture

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="scripts/dev-env.sh installs it"
)

COMPOSE = """\
version: "2.4"
services:
  db:
    image: {db}
    volumes: ["data:/data"]
  web:
    image: {web}
    depends_on: [db]
    volumes: ["data:/data"]
    labels:
      cr-agent.enable: "true"
      cr-agent.source: aliyun
      cr-agent.min_uptime: 1s
    networks:
      net:
        aliases: [shop-web]
networks:
  net: {{}}
volumes:
  data: {{}}
"""


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def compose(world: World, project: Path, *args: str) -> str:
    env = {**world.env(), "COMPOSE_PROJECT_NAME": world.prefix + "shop"}
    done = subprocess.run(
        ["docker-compose", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_compose_v1_up_after_an_agent_update_keeps_image_volume_aliases_and_dependencies(
    world: World,
) -> None:
    world.push_image("db1", repo="db")
    world.push_image("v1")
    project = world.tmp / "shop"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE.format(db=world.image("db"), web=world.image()))
    compose(world, project, "up", "-d")
    web, db = world.prefix + "shop_web_1", world.prefix + "shop_db_1"
    world.client.containers.get(web).exec_run(["sh", "-c", "echo precious > /data/file"])
    db_id = world.client.api.inspect_container(db)["Id"]

    d2 = world.push_image("v2")
    cfg = world.config([], agent='discover = "labels"')
    code, report, err = world.once(cfg)
    assert code == 0, err
    assert by_container(report)[web]["status"] == "updated"
    new_image = world.client.api.inspect_container(web)["Image"]
    assert d2 in world.running_digests("shop_web_1")

    out = compose(world, project, "up", "-d")
    assert "Recreating" in out and "shop_web_1" in out  # v1's hash holds the image id: one recreate
    after: dict[str, Any] = world.client.api.inspect_container(web)
    assert after["Image"] == new_image  # the same new image, not the old one
    assert after["State"]["Running"]
    data = world.client.containers.get(web).exec_run(["cat", "/data/file"]).output
    assert data.strip() == b"precious"
    nets = after["NetworkSettings"]["Networks"]
    assert "shop-web" in nets[world.prefix + "shop_net"]["Aliases"]
    assert world.client.api.inspect_container(db)["Id"] == db_id  # depends_on: db untouched, still first
    assert world.client.api.inspect_container(db)["State"]["Running"]

    out = compose(world, project, "up", "-d")
    assert "Recreating" not in out and "is up-to-date" in out  # quiet from then on
    code, report, err = world.once(cfg)
    assert code == 0 and by_container(report)[web]["status"] == "up_to_date", err
