"""Images the ACR API cannot answer for: a vendor's public image on its own enterprise instance, no AccessKey,
crpi repositories the API does not know, and a stale API behind the registry (issue 18, items 4 and 5).

The strict fake here does not list the acme instance of cn-shanghai: it stands for another account's,
whose registry (the TLS front) serves `<ns>/pub` to anyone and `<ns>/priv` only with a login.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from agent.config import AliyunSettings
from agent.errors import RegistryError
from agent.model import RepoKey
from agent.registries.acr import AcrRegistry, load_sources
from agent.registries.acr_public import ROUTES_FILE, NeitherAnswers
from tests.integration.agentenv import by_container
from tests.integration.test_acr_world_e2e import AcrWorld
from tests.support import acr_world, env
from tests.support.fake_acr import DEFAULT_KEYS, FakeAcr

KEY, SECRET = next(iter(DEFAULT_KEYS.items()))
ACME_SH, BETA_SH, ACME_BJ = acr_world.INSTANCES
VENDOR = acr_world.instance_hosts(ACME_SH)[0]  # acme-registry.cn-shanghai.cr.aliyuncs.com
CRPI = acr_world.crpi_hosts()[0]
KEYLESS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "",
           "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}  # fmt: skip


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[AcrWorld]:
    others = {i: v for i, v in acr_world.INSTANCES.items() if i != ACME_SH}  # acme-sh: another account's
    with FakeAcr(tls=True, registry=env.REGISTRY, enterprise=others) as fake:
        w = AcrWorld(prefix, tmp_path, fake, docker_client)
        fake.public_repos.add(f"{w.ns}/pub")
        try:
            yield w
        finally:
            w.close()


def registry(w: AcrWorld, **kw: object) -> AcrRegistry:
    settings = AliyunSettings(
        access_key_id=KEY, access_key_secret=SECRET, ca_file=acr_world.CA_FILE, retries=0
    )
    return AcrRegistry(settings, state_dir=w.tmp / "state", **kw)  # type: ignore[arg-type]


def _public_update(w: AcrWorld, **env_extra: str) -> tuple[Path, str]:
    """A container of the vendor's public image, a new push, one `agent once`: the container is updated."""
    w.push_image("one", repo="pub")
    w.run_from("web", w.host_ref(repo="pub", host=VENDOR))
    new = w.push_image("two", repo="pub")
    cfg = w.user_config([{"container": "web", "image": w.host_ref(repo="pub", host=VENDOR)}])
    code, report, err = w.once(cfg, **env_extra)
    assert code == 0 and by_container(report)[w.prefix + "web"]["status"] == "updated", err
    assert new in w.running_digests("web")
    return cfg, err


def test_a_public_image_is_followed_with_no_credentials_at_all(world: AcrWorld) -> None:
    cfg, err = _public_update(world, **KEYLESS)
    assert world.fake.stats()["total"] == 0  # no API request: there is no key to sign one
    status = world.agent("status", "-c", str(cfg), **KEYLESS)
    assert "registry HEAD (no AccessKey)" in status.stdout, status.stdout + status.stderr
    check = world.agent("check", "-c", str(cfg), **KEYLESS)
    assert (
        check.returncode == 0
        and check.stdout.count("ACR credentials:") == 1
        and "ACR credentials: none (no key given" in check.stdout
        and "images on ACR hosts are followed through the registry" in check.stdout
    ), check.stdout + check.stderr
    code, report = _online(world, cfg, **KEYLESS)
    assert code == 0, report


def test_a_public_image_of_an_instance_not_in_the_account_is_followed_and_remembered(world: AcrWorld) -> None:
    cfg, err = _public_update(world)
    assert "INSTANCE_NOT_FOUND" in err and "asking the registry" in err
    routes = json.loads((world.tmp / "state" / ROUTES_FILE).read_text())
    assert routes[VENDOR]["code"] == "INSTANCE_NOT_FOUND"  # per host: the whole instance is someone else's
    status = world.agent("status", "-c", str(cfg))
    assert "registry HEAD (not in this account: INSTANCE_NOT_FOUND)" in status.stdout, status.stdout
    check = world.agent("check", "-c", str(cfg))
    assert f"{VENDOR}: followed through the registry (the ACR API said INSTANCE_NOT_FOUND" in check.stdout
    world.fake.reset_stats()
    code, report, err = world.once(cfg)  # remembered: the API is not asked again today
    assert by_container(report)[world.prefix + "web"]["status"] == "up_to_date", err
    assert world.fake.stats()["total"] == 0, world.fake.stats()
    code, report = _online(world, cfg)  # check --online asks again, and renews the choice
    assert code == 0, report
    assert world.fake.stats()["actions"].get("ListInstance", 0) >= 1


def test_the_remembered_choice_is_asked_again_after_a_day(world: AcrWorld) -> None:
    repo = RepoKey(VENDOR, world.ns, "pub")
    digest = world.push_image("one", repo="pub")
    acr = registry(world)
    assert acr.latest(repo, ["latest"]) == {"latest": digest}
    assert world.fake.stats()["actions"] == {"ListInstance": 1}
    assert acr.credentials(VENDOR) is None  # no token for another account's instance
    acr.close()
    path = world.tmp / "state" / ROUTES_FILE
    routes = json.loads(path.read_text())
    routes[VENDOR]["asked"] -= 25 * 3600
    path.write_text(json.dumps(routes))
    again = registry(world)
    assert again.latest(repo, ["latest"]) == {"latest": digest}
    assert world.fake.stats()["actions"] == {"ListInstance": 2}
    assert [t for t, _ in again.tags(repo)] == ["latest"]  # tag patterns: the registry's tag list
    assert world.fake.stats()["actions"] == {"ListInstance": 2}  # asked a moment ago: remembered
    again.close()


def test_a_private_image_neither_can_read_fails_naming_both_answers(world: AcrWorld) -> None:
    world.push_image("one", repo="priv")
    acr = registry(world)
    with pytest.raises(NeitherAnswers) as err:
        acr.latest(RepoKey(VENDOR, world.ns, "priv"), ["latest"])
    text = str(err.value)
    assert "INSTANCE_NOT_FOUND" in text and "no enterprise instance in cn-shanghai serves" in text
    assert "the registry cannot either" in text and "HTTP 401" in text and "[registry_auth]" in text
    assert not (world.tmp / "state" / ROUTES_FILE).exists()  # nothing answered: nothing remembered
    acr.close()


@pytest.mark.parametrize("code", ["REPO_NOT_EXIST", "NAMESPACE_NOT_EXIST", "REPO_NOT_FOUND"])
def test_crpi_falls_back_on_every_not_in_this_account_answer(world: AcrWorld, code: str) -> None:
    digest = world.push_image("one", repo="pub")
    world.fake.placement[f"{world.ns}/pub"] = "personal:cn-hangzhou"  # the API would know it...
    world.fake.inject("status", count=None, status=404, code=code, action="GetRepoTags")  # ...but says not
    acr = registry(world)
    repo = RepoKey(CRPI, world.ns, "pub")
    assert acr.latest(repo, ["latest"]) == {"latest": digest}
    assert load_sources(world.tmp / "state")[str(repo)] == f"registry HEAD (not in this account: {code})"
    assert str(repo) in json.loads((world.tmp / "state" / ROUTES_FILE).read_text())  # per repository
    acr.close()


def test_an_unrelated_error_fails_only_its_entry(world: AcrWorld) -> None:
    """NoPrivilege is not "not in this account": that entry fails (not the registry's guess), the next one works."""
    digest = world.push_image("one", repo="pub")
    world.fake.placement[f"{world.ns}/pub"] = "crpi"
    world.fake.inject("status", count=1, status=403, code="NoPrivilege", action="GetRepoTags")
    acr = registry(world)
    with pytest.raises(RegistryError) as err:
        acr.latest(RepoKey(CRPI, world.ns, "pub"), ["latest"])
    assert err.value.code == "NoPrivilege" and not isinstance(err.value, NeitherAnswers)
    assert acr.latest(RepoKey(CRPI, world.ns, "pub"), ["latest"]) == {"latest": digest}
    acr.close()


def test_the_cross_check_cache_never_hides_a_new_push(world: AcrWorld) -> None:
    """The API keeps reporting an old repository's digest (an old instance's); the registry's tag moves on."""
    old = "sha256:" + "0" * 64
    world.fake.set_tags(f"{world.ns}/web", {"latest": old[7:]})
    world.fake.placement[f"{world.ns}/web"] = "personal:cn-shanghai"
    first = world.push_image("one")
    repo = RepoKey("registry.cn-shanghai.aliyuncs.com", world.ns, "web")
    acr = registry(world)
    assert acr.latest(repo, ["latest"]) == {"latest": old}
    assert acr.confirm(repo, "latest", old) == first
    second = world.push_image("two")
    assert acr.confirm(repo, "latest", old) == second  # the registry wins; no cached pair hides it
    acr.close()


def test_a_stale_api_does_not_hide_a_push_from_agent_once(world: AcrWorld) -> None:
    world.fake.placement[f"{world.ns}/web"] = "personal:cn-shanghai"
    world.fake.set_tags(f"{world.ns}/web", {"latest": "0" * 64})
    world.push_image("one")
    world.run_from("web", world.host_ref())
    cfg = world.user_config([{"container": "web", "image": world.host_ref()}])
    code, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "web"]["status"] == "up_to_date", err
    new = world.push_image("two")
    code, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "web"]["status"] == "updated", err
    assert new in world.running_digests("web")


def _online(w: AcrWorld, cfg: Path, **env_extra: str) -> tuple[int, dict[str, object]]:
    done = w.agent("check", "--online", "--json", "-c", str(cfg), **env_extra)
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError as e:
        raise AssertionError(done.stdout + done.stderr) from e


def test_the_region_less_alias_is_followed_through_the_registry(world: AcrWorld) -> None:
    """registry.aliyuncs.com (kubeadm's mirror) names no region: no API is asked, the registry answers."""
    world.push_image("one", repo="pub")
    world.run_from("web", world.host_ref(repo="pub", host=acr_world.ALIAS))
    new = world.push_image("two", repo="pub")
    cfg = world.user_config(
        [{"container": "web", "image": world.host_ref(repo="pub", host=acr_world.ALIAS + ".")}]
    )
    code, report, err = world.once(cfg)
    assert code == 0 and by_container(report)[world.prefix + "web"]["status"] == "updated", err
    assert new in world.running_digests("web") and world.fake.stats()["total"] == 0
    status = world.agent("status", "-c", str(cfg))
    assert "registry HEAD (no region in the host)" in status.stdout, status.stdout + status.stderr
