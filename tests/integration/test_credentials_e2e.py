"""Credentials as users have them, end to end: the agent as a subprocess, the real SDK, the fake ACR
refusing expired and unknown temporary keys, loopback servers for the credentials URI and ECS metadata."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import KEY_ID, KEY_SECRET, World, world_fixture
from tests.support.sts_server import StsServer
from tests.support.wait import wait_until

NO_STATIC_KEY = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""}


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def chain_env(world: World, **extra: str) -> dict[str, str]:
    """No key in the config or the environment; HOME is the test's own (no one's aliyun CLI profile)."""
    home = world.tmp / "home"
    home.mkdir(exist_ok=True)
    return {**NO_STATIC_KEY, "HOME": str(home), **extra}


def passes(log: str) -> list[str]:
    return re.findall(r"pass done: .*", log)


@pytest.mark.parametrize(
    ("ttl", "rotate_before", "skew"),
    [(6, 4, 0),  # the provider renews each key well before it expires
     (3, 0, 1000)],  # the provider believes each key good for ~17 min: the API's "expired" says otherwise
    ids=["renewed-before-expiry", "expired-answer-renews"],
)  # fmt: skip
def test_run_spans_several_key_rotations_and_deploys_a_push_made_after_the_first_key_expired(
    world: World, ttl: float, rotate_before: float, skew: float
) -> None:
    world.push_image("v1")
    world.run("app")
    cfg = world.config([{"container": "app", "image": world.image()}], agent="")
    cfg.write_text(cfg.read_text().replace('interval = "1h"', 'interval = "1s"'))
    with StsServer(world.fake, ttl=ttl, rotate_before=rotate_before, skew=skew) as sts:
        env = chain_env(world, ALIBABA_CLOUD_CREDENTIALS_URI=sts.url + "/credentials")
        p = world.spawn("run", "-c", str(cfg), **env)
        wait_until(lambda: "pass done" in world.log_of(p), 30, "the first pass at start")
        first_expiry = sts.issued[0][3]
        wait_until(
            lambda: time.time() > first_expiry + 1 and len(sts.issued) >= 3, 30, "the first key to expire"
        )
        d2 = world.push_image("v2")
        wait_until(lambda: "updated=1" in world.log_of(p), 60, "the daemon to deploy v2 with a later key")
        assert d2 in world.running_digests("app")
        seen = len(sts.issued)
        wait_until(lambda: len(sts.issued) > seen + 1, 30, "two more rotations")
        p.terminate()
        assert p.wait(30) == 0, world.log_of(p)
        log = world.log_of(p)
        issued = list(sts.issued)
    used = {k for k in world.fake.stats()["keys"] if k.startswith("STS.")}
    assert len(used) >= 5, (used, log[-3000:])
    assert set(world.fake.stats()["keys"]) == used  # never the static test key
    assert all(" failed=0 " in line for line in passes(log)), passes(log)
    assert "ACR credentials: credentials URI http://127.0.0.1:" in log and ", temporary, expires " in log
    renewed_on_answer = "the security token expired; retrying with fresh credentials" in log
    assert renewed_on_answer is bool(skew), log[-3000:]
    for _, secret, token, _ in issued:
        assert secret not in log and token not in log


def online(world: World, module: str = "agent", **env: str) -> tuple[dict[str, Any], str]:
    world.fake.set_tags(f"{world.ns}/web", {"latest": "sha256:" + "a" * 64})  # the API knows the repository
    cfg = world.config([{"container": "app", "image": world.image()}])
    done = world.agent("check", "--online", "--json", "-c", str(cfg), module=module, **env)
    try:
        report = json.loads(done.stdout)
    except ValueError as e:
        raise AssertionError(done.stdout + done.stderr) from e
    return report, done.stdout + done.stderr


def api_ok(report: dict[str, Any]) -> bool:
    """The ACR API answered with the chain's key (not the registry fallback for keyless images)."""
    (watch,) = report["watches"]
    return any(
        c["name"] == "api" and c["detail"] == "the API answers with these credentials"
        for c in watch["checks"]
    )


def test_check_online_names_the_credentials_uri_temporary_and_when_it_expires(world: World) -> None:
    with StsServer(world.fake, ttl=1800) as sts:
        report, out = online(
            world, **chain_env(world, ALIBABA_CLOUD_CREDENTIALS_URI=sts.url + "/credentials")
        )
        (key_id, secret, token, expiry) = sts.issued[-1]
    expires = time.strftime("%H:%M", time.localtime(expiry))
    assert report["credentials"]["ok"], report
    detail = report["credentials"]["detail"]
    assert detail.startswith(f"credentials URI {sts.url}/credentials, temporary, expires {expires}"), detail
    assert api_ok(report), report
    assert secret not in out and token not in out


def test_check_online_names_the_ecs_ram_role_served_by_the_metadata_protocol(world: World) -> None:
    """IMDSv2 on loopback: the token PUT, the role name, the role's keys. The library is pointed at it
    (tests/support/ecs_agent.py); HTTP_PROXY points there too, so nothing can reach 100.100.100.200."""
    with StsServer(world.fake, ttl=1800, role="my-role") as sts:
        port = sts.url.rsplit(":", 1)[1]
        env = chain_env(world, ALIBABA_CLOUD_ECS_METADATA_DISABLED="false", CR_TEST_ECS_METADATA=f"127.0.0.1:{port}",
                        HTTP_PROXY=sts.url, http_proxy=sts.url, NO_PROXY="", no_proxy="")  # fmt: skip
        report, out = online(world, module="tests.support.ecs_agent", **env)
        requests = list(sts.requests)
        (_, secret, token, expiry) = sts.issued[-1]
    assert report["credentials"]["ok"], (report, out[-3000:])
    expires = time.strftime("%H:%M", time.localtime(expiry))
    assert report["credentials"]["detail"].startswith(f"ECS RAM role `my-role`, temporary, expires {expires}")
    assert api_ok(report), report
    paths = [(m, re.sub(r"^http://[^/]+", "", path)) for m, path in requests]
    assert paths[:3] == [("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/ram/security-credentials/"),
                         ("PUT", "/latest/api/token")], paths  # fmt: skip
    assert ("GET", "/latest/meta-data/ram/security-credentials/my-role") in paths
    assert all("100.100.100.200" not in path for _, path in requests), requests
    assert secret not in out and token not in out


def test_check_online_names_the_aliyun_cli_profile_chosen_by_alibaba_cloud_profile(world: World) -> None:
    key_id, secret, token, _ = world.fake.issue_sts(1800)
    env = chain_env(world, ALIBABA_CLOUD_PROFILE="ci")
    cli = Path(env["HOME"]) / ".aliyun"
    cli.mkdir()
    (cli / "config.json").write_text(json.dumps({"current": "default", "profiles": [
        {"name": "default", "mode": "AK", "access_key_id": "LTAI-not-this-one", "access_key_secret": "nope-nope"},
        {"name": "ci", "mode": "StsToken", "access_key_id": key_id, "access_key_secret": secret, "sts_token": token,
         "region_id": "cn-hangzhou"}]}))  # fmt: skip
    report, out = online(world, **env)
    detail = report["credentials"]["detail"]
    assert report["credentials"]["ok"] and detail.startswith(
        f"aliyun CLI profile `ci` ({cli}/config.json, mode StsToken), temporary"
    ), detail
    assert api_ok(report), report
    assert secret not in out and token not in out


def test_check_online_names_the_credentials_file(world: World) -> None:
    env = chain_env(world)
    ini = Path(env["HOME"]) / ".alibabacloud" / "credentials.ini"
    ini.parent.mkdir()
    ini.write_text(
        f"[default]\ntype = access_key\naccess_key_id = {KEY_ID}\naccess_key_secret = {KEY_SECRET}\n"
    )
    report, out = online(world, **env)
    assert report["credentials"] == {"name": "credentials", "ok": True,
                                     "detail": f"credentials file {ini} [default], AccessKey {KEY_ID}"}, report  # fmt: skip
    assert api_ok(report), report
    assert KEY_SECRET not in out


def test_check_online_without_any_credentials_says_so(world: World) -> None:
    """No source at all is no failure in itself (public images need none); a private image then fails."""
    report, _ = online(world, **chain_env(world))
    creds = report["credentials"]
    assert creds["ok"] and creds["detail"].startswith("none: no Alibaba Cloud credentials"), creds
    assert "docs/acr.md#credentials" in creds["detail"]
    assert "the ECS RAM role is off: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true" in creds["detail"]
    assert not report["ok"] and not api_ok(report)  # the test registry wants a login the agent has not got
    assert world.fake.stats()["total"] == 0
