"""`agent check --online` against the strict fake: every check, and each failure named with its hint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.test_acr_world_e2e import AcrWorld
from tests.support import env
from tests.support.fake_acr import FakeAcr


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[AcrWorld]:
    placement = {f"{prefix}ns/web": "personal:cn-shanghai"}
    with FakeAcr(tls=True, registry=env.REGISTRY, placement=placement) as fake:
        w = AcrWorld(prefix, tmp_path, fake, docker_client)
        w.push_image("one")
        w.run_from("web", w.host_ref())
        try:
            yield w
        finally:
            w.close()


def online(w: AcrWorld, image: str | None = None, **env_extra: str) -> tuple[int, dict[str, Any]]:
    cfg = w.user_config([{"container": "web", "image": image or w.host_ref()}])
    done = w.agent("check", "--online", "--json", "-c", str(cfg), **env_extra)
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError as e:
        raise AssertionError(done.stdout + done.stderr) from e


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (watch,) = report["watches"]
    return {c["name"]: c for c in watch["checks"]}


def test_every_check_passes_on_a_healthy_setup(world: AcrWorld) -> None:
    code, report = online(world)
    got = checks(report)
    assert code == 0 and report["ok"], got
    assert list(got) == [
        "resolve",
        "api",
        "repository",
        "tag",
        "digest",
        "registry login",
        "pull",
        "container",
    ]
    assert report["watches"][0]["resolved"] == {
        "form": "personal", "region": "cn-shanghai", "edition": "personal", "instance": None,
        "endpoint": "https://cr.cn-shanghai.aliyuncs.com", "api": "ACR API personal (2016-06-07)",
    }  # fmt: skip
    human = world.agent("check", "--online", "-c", str(world.tmp / "agent.toml"))
    assert human.returncode == 0 and "all checks passed" in human.stdout


def _fail_with(world: AcrWorld, name: str, *words: str, **kw: Any) -> None:
    code, report = online(world, **kw)
    got = checks(report)
    assert code == 1 and not report["ok"]
    assert not got[name]["ok"], got
    for word in words:
        assert word in got[name]["detail"], got[name]


Setup = Callable[[AcrWorld], dict[str, Any]]


@pytest.mark.parametrize(
    ("setup", "name", "words"),
    [
        (lambda w: {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "wrong-secret"}, "api",
         ("SignatureDoesNotMatch", "AccessKey secret")),
        (lambda w: {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-unknown"}, "api", ("InvalidAccessKeyId", "AccessKey ID")),
        (lambda w: w.fake.inject("status", count=None, status=403, code="NoPrivilege") and {}, "api",
         ("NoPrivilege", "AliyunContainerRegistryReadOnlyAccess", '"cr:PullRepository"')),
        (lambda w: {"image": w.host_ref(repo="missing")}, "repository", ("does not know",)),
        (lambda w: {"image": w.host_ref(tag="nope")}, "tag", ("no tag 'nope'",)),
        (lambda w: w.fake.set_tags(f"{w.ns}/web", {"latest": "sha256:" + "e" * 64}) or {}, "digest",
         ("≠", "trusts the registry")),
        (lambda w: setattr(w.fake, "reject_tokens", True) or {}, "registry login", ("HTTP 401", "refused")),
        (lambda w: setattr(w.fake, "deny_pull_tokens", True) or {}, "pull",
         ("PULL_DENIED", "login works, pull refused", "HTTP 403", '"cr:PullRepository"', '"cr:Get*"')),
        (lambda w: w.fake.inject("status", count=None, status=400, code="USER_NOT_EXIST") and {}, "repository",
         ("USER_NOT_EXIST", "sign in to the Alibaba Cloud console once", "set a registry password")),
        (lambda w: setattr(w.fake, "clock_offset", 3600.0) or {}, "api",
         ("InvalidTimeStamp.Expired", "s behind the API's (its Date header)", "NTP")),
        (lambda w: w.fake.inject("status", count=1, status=400, code="SignatureNonceUsed") and {}, "api",
         ("SignatureNonceUsed", "the local clock is")),
    ],
    ids=["wrong-secret", "unknown-key", "no-privilege", "missing-repo", "missing-tag", "digests-differ",
         "credentials-rejected", "pull-refused", "user-not-exist", "clock-off", "nonce-used"],
)  # fmt: skip
def test_each_failure_is_named(world: AcrWorld, setup: Setup, name: str, words: tuple[str, ...]) -> None:
    extra = setup(world)
    image = extra.pop("image", None)
    _fail_with(world, name, *words, image=image, **extra)
