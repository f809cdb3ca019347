"""Signatures through ACR's host names (TLS, the registry front that takes only a temporary token):
`agent check --online` shows whether the running and latest digests are signed, and `agent once` reads
the signature with the pull's own credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import by_container
from tests.integration.test_acr_world_e2e import AcrWorld
from tests.support import env
from tests.support.cosign_signer import Signer
from tests.support.fake_acr import FakeAcr


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[AcrWorld]:
    with FakeAcr(
        tls=True, registry=env.REGISTRY, placement={f"{prefix}ns/web": "personal:cn-shanghai"}
    ) as fake:
        w = AcrWorld(prefix, tmp_path, fake, docker_client)
        try:
            yield w
        finally:
            w.close()


def test_check_online_and_once_read_signatures_through_acr(world: AcrWorld) -> None:
    signer = Signer()
    key = signer.write_public(world.tmp / "cosign.pub")
    repo = f"{world.ns}/web"
    d1 = world.push_image("one")
    world.run_from("web", world.host_ref())
    cfg = world.user_config([{"container": "web", "image": world.host_ref(), "public_keys": [str(key)]}])

    def online() -> tuple[int, dict[str, object]]:
        done = world.agent("check", "--online", "--json", "-c", str(cfg))
        (watch,) = json.loads(done.stdout)["watches"]
        return done.returncode, {c["name"]: c for c in watch["checks"]}["signatures"]

    code, check = online()
    assert code == 1 and not check["ok"], check
    assert f"running {d1[:19]} unsigned: no signature" in str(check["detail"])
    assert f"latest {d1[:19]} unsigned: no signature" in str(check["detail"])

    signer.push(repo, d1, reference=world.host_ref().rsplit(":", 1)[0])  # as CI signs the ACR digest
    code, check = online()
    assert code == 0 and check["ok"], check
    assert check["detail"] == f"running {d1[:19]} signed ✔; latest {d1[:19]} signed ✔"

    d2 = world.push_image("two")
    signer.push(
        repo, d2, reference=world.host_ref(host="registry-vpc.cn-shanghai.aliyuncs.com").rsplit(":", 1)[0]
    )
    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "web"]
    assert code == 0 and (r["status"], r["signature"]) == ("updated", "verified"), err
    assert not world.fake.front.refused  # the signature was read with the temporary token
    status = world.agent("status", "-c", str(cfg), "--json")
    (c,) = json.loads(status.stdout)["containers"]
    assert c["signature"] == {"running": "signed", "latest": "signed"}, c
    assert "signed ✔" in world.agent("status", "-c", str(cfg)).stdout


def test_a_multi_arch_tag_needs_the_signature_of_its_index(world: AcrWorld) -> None:
    """The agent deploys by the index digest the tag points to; a signature of one platform's manifest
    does not sign the index."""
    from tests.support import multiarch

    signer = Signer()
    key = signer.write_public(world.tmp / "cosign.pub")
    repo, arch = f"{world.ns}/web", world.client.version()["Arch"]
    world.push_image("one")
    world.run_from("web", world.host_ref())
    world.push_image("two", tag="two")
    made = multiarch.push_index(repo, "latest", "two", host_arch=arch)
    signer.push(repo, made[arch])  # the platform manifest only
    cfg = world.user_config([{"container": "web", "image": world.host_ref(), "public_keys": [str(key)]}])
    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "web"]
    assert (r["status"], r["signature"], r["latest_digest"]) == ("skipped", "unsigned", made["index"]), err
    signer.push(repo, made["index"])
    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "web"]
    assert (r["status"], r["signature"]) == ("updated", "verified"), err
