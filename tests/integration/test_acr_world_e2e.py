"""`agent once` as a user runs it against ACR by its real host names: TLS, no endpoint, no region.

The strict fake (tests/support/fake_acr.py, tls=True) answers for cr.<region>.aliyuncs.com; the registry
front answers for every registry host and takes a temporary token only on its own region's hosts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import World, by_container
from tests.support import acr_world, env, images, multiarch
from tests.support.fake_acr import FakeAcr

SH = "registry.cn-shanghai.aliyuncs.com"


class AcrWorld(World):
    def host_ref(self, repo: str = "web", tag: str = "latest", host: str = SH) -> str:
        return f"{host}/{self.ns}/{repo}:{tag}"

    def run_from(self, name: str, ref: str) -> Any:
        """Start a container pulled by tag through the registry front, as a user would."""
        repo, _, tag = ref.rpartition(":")
        self.client.api.pull(repo, tag=tag, auth_config=images.auth_config())
        return self.client.containers.run(ref, name=self.prefix + name, detach=True, command=SLEEP)

    def user_config(self, watches: list[dict[str, Any]]) -> Path:
        lines = ["[agent]", 'interval = "1h"', f'state_dir = "{self.tmp / "state"}"',
                 "[aliyun]", 'timeout = "5s"', "retries = 1"]  # fmt: skip
        for w in watches:
            w = {"min_uptime": "1s", **w, "container": self.prefix + w["container"]}
            lines += ["[[watch]]"] + [f"{k} = {json.dumps(v)}" for k, v in w.items()]
        path = self.tmp / "agent.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(ALIBABA_CLOUD_CA_BUNDLE=acr_world.CA_FILE, **extra)


SLEEP = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[AcrWorld]:
    placement = {f"{prefix}ns/web": "personal:cn-shanghai"}
    with FakeAcr(tls=True, registry=env.REGISTRY, placement=placement) as fake:
        w = AcrWorld(prefix, tmp_path, fake, docker_client)
        try:
            yield w
        finally:
            w.close()


def _digests(w: AcrWorld, name: str) -> list[str]:
    return w.running_digests(name)


def test_a_user_config_updates_over_tls_then_is_up_to_date(world: AcrWorld) -> None:
    """registry.cn-shanghai…: the Shanghai API, a Shanghai token, one update, then up_to_date."""
    world.push_image("one")
    world.run_from("web", world.host_ref())
    new = world.push_image("two")
    cfg = world.user_config([{"container": "web", "image": world.host_ref()}])
    code, report, err = world.once(cfg)
    assert code == 0, err
    assert by_container(report)[world.prefix + "web"]["status"] == "updated", err
    assert new in _digests(world, "web")
    assert set(world.fake.stats()["hosts"]) == {"cr.cn-shanghai.aliyuncs.com"}
    assert not world.fake.front.refused  # the token was right for the host
    code, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "web"]["status"] == "up_to_date", err
    status = world.agent("status", "-c", str(cfg))
    assert "ACR API personal cn-shanghai" in status.stdout, status.stdout + status.stderr


def test_a_refused_token_is_retried_with_the_docker_config_login(world: AcrWorld) -> None:
    world.push_image("one")
    world.run_from("web", world.host_ref())
    new = world.push_image("two")
    world.fake.reject_tokens = True
    config_dir = world.tmp / "docker-config"
    config_dir.mkdir(exist_ok=True)
    import base64

    login = base64.b64encode(f"{env.REGISTRY_USER}:{env.REGISTRY_PASSWORD}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {SH: {"auth": login}}}))
    cfg = world.user_config([{"container": "web", "image": world.host_ref()}])
    code, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "web"]["status"] == "updated", err
    assert "refused the agent's pull credentials" in err and "retrying once with docker's own" in err
    assert new in _digests(world, "web") and world.fake.front.refused[SH] >= 1


def test_multi_arch_index_updates_once_then_is_up_to_date(world: AcrWorld) -> None:
    """A tag on an index of amd64 + arm64 manifests: the agent pulls the index digest docker records."""
    arch = world.client.version()["Arch"]
    world.push_image("one")
    world.run_from("web", world.host_ref())
    world.push_image("two", tag="two")
    made = multiarch.push_index(f"{world.ns}/web", "latest", "two", host_arch=arch)
    cfg = world.user_config([{"container": "web", "image": world.host_ref()}])
    code, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "web"]["status"] == "updated", err
    assert made["index"] in _digests(world, "web")
    code, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "web"]["status"] == "up_to_date", err


def test_when_the_api_reports_a_platform_digest_the_registry_wins(world: AcrWorld) -> None:
    """The API lists the amd64 manifest's digest, the registry the index's: registry trusted, both logged."""
    arch = world.client.version()["Arch"]
    world.push_image("one")
    world.push_image("two", tag="two")
    made = multiarch.push_index(f"{world.ns}/web", "latest", "two", host_arch=arch)
    world.run_from("web", world.host_ref())  # by tag: docker records the index digest
    world.fake.set_tags(f"{world.ns}/web", {"latest": made[arch]})
    cfg = world.user_config([{"container": "web", "image": world.host_ref()}])
    code, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "web"]["status"] == "up_to_date", err
    assert made[arch] in err and made["index"] in err and "trusting the registry" in err


def test_an_image_for_another_platform_fails_with_nothing_touched(world: AcrWorld) -> None:
    world.push_image("one")
    world.run_from("web", world.host_ref())
    before = world.container("web")["Id"]
    world.push_image("two", tag="two")
    multiarch.push_foreign(f"{world.ns}/web", "latest", "two")
    cfg = world.user_config([{"container": "web", "image": world.host_ref()}])
    code, report, err = world.once(cfg)
    result = by_container(report)[world.prefix + "web"]
    assert code != 0 and result["status"] == "failed", err
    assert "arm64" in result["error"] and world.container("web")["Id"] == before
