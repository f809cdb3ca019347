"""AcrRegistry against the strict fake: each host goes to its own region, edition and instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AliyunSettings
from agent.errors import RegistryError
from agent.model import RepoKey
from agent.registries.acr import AcrRegistry, load_sources
from tests.support import acr_world
from tests.support.fake_acr import DEFAULT_KEYS, FakeAcr

KEY, SECRET = next(iter(DEFAULT_KEYS.items()))
D1, D2, D3, D4 = "1" * 64, "2" * 64, "3" * 64, "4" * 64
ACME_SH, BETA_SH, ACME_BJ = acr_world.INSTANCES  # ids
CRPI_HOST = acr_world.crpi_hosts()[0]


@pytest.fixture
def fake(dev_env: None) -> Iterator[FakeAcr]:
    tags = {
        "ns/sh": {"latest": D1},
        "ns/hz": {"latest": D2},
        "ns/ee": {"latest": D3},
        "ns/bj": {"latest": D4},
    }
    placement = {"ns/sh": "personal:cn-shanghai", "ns/hz": "personal:cn-hangzhou",
                 "ns/ee": f"instance:{BETA_SH}", "ns/bj": f"instance:{ACME_BJ}"}  # fmt: skip
    with FakeAcr(tls=True, tags=tags, placement=placement) as f:
        yield f


def acr(tmp_path: Path, **kw: object) -> AcrRegistry:
    settings = AliyunSettings(
        access_key_id=KEY, access_key_secret=SECRET, ca_file=acr_world.CA_FILE, retries=0
    )
    return AcrRegistry(settings, state_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_personal_hosts_ask_their_own_region(fake: FakeAcr, tmp_path: Path) -> None:
    with_tags = acr(tmp_path)
    assert with_tags.latest(RepoKey("registry.cn-shanghai.aliyuncs.com", "ns", "sh"), ["latest"]) == {
        "latest": "sha256:" + D1
    }
    assert with_tags.latest(RepoKey("registry-vpc.cn-hangzhou.aliyuncs.com", "ns", "hz"), ["latest"]) == {
        "latest": "sha256:" + D2
    }
    assert fake.stats()["hosts"] == {"cr.cn-shanghai.aliyuncs.com": 1, "cr.cn-hangzhou.aliyuncs.com": 1}
    assert fake.stats()["actions"] == {"GetRepoTags": 2}
    with pytest.raises(RegistryError) as err:  # the repository lives in Shanghai only
        with_tags.latest(RepoKey("registry.cn-beijing.aliyuncs.com", "ns", "sh"), ["latest"])
    assert err.value.code == "REPO_NOT_EXIST"
    assert load_sources(tmp_path)["registry.cn-shanghai.aliyuncs.com/ns/sh"] == "ACR API personal cn-shanghai"
    with_tags.close()


def test_enterprise_instance_is_found_by_name_and_region_and_cached(fake: FakeAcr, tmp_path: Path) -> None:
    """beta in Shanghai and acme in Beijing (acme also exists in Shanghai): ListInstance + endpoints, once."""
    registry = acr(tmp_path)
    beta = RepoKey("beta-registry.cn-shanghai.cr.aliyuncs.com", "ns", "ee")
    bj = RepoKey("acme-registry-vpc.cn-beijing.cr.aliyuncs.com", "ns", "bj")
    assert registry.latest(beta, ["latest"]) == {"latest": "sha256:" + D3}
    assert registry.latest(bj, ["latest"]) == {"latest": "sha256:" + D4}
    assert registry.describe(bj.host)["instance"] == ACME_BJ
    # one API client per (region, edition, instance), made on first use: the discovery one plus two
    assert sorted(registry._clients) == [
        ("cn-beijing", "enterprise", ACME_BJ, "vpc"), ("cn-beijing", "personal", None, "vpc"),
        ("cn-shanghai", "enterprise", BETA_SH), ("cn-shanghai", "personal", None),
    ]  # fmt: skip
    registry.close()
    fake.reset_stats()
    again = acr(tmp_path)  # a new process: the instances come from state_dir
    assert again.latest(beta, ["latest"]) == {"latest": "sha256:" + D3}
    assert "ListInstance" not in fake.stats()["actions"]
    again.close()


def test_a_cached_instance_that_is_gone_is_looked_up_again(fake: FakeAcr, tmp_path: Path) -> None:
    import json

    (tmp_path / "acr-instances.json").write_text(
        json.dumps({"beta-registry.cn-shanghai.cr.aliyuncs.com": "cri-gone"})
    )
    beta = RepoKey("beta-registry.cn-shanghai.cr.aliyuncs.com", "ns", "ee")
    registry = acr(tmp_path)
    with pytest.raises(RegistryError) as err:
        registry.latest(beta, ["latest"])
    assert err.value.code == "INSTANCE_NOT_EXIST"
    registry.close()
    again = acr(tmp_path)
    assert again.latest(beta, ["latest"]) == {"latest": "sha256:" + D3}
    again.close()


def test_custom_domain_needs_the_configured_instance(fake: FakeAcr, tmp_path: Path) -> None:
    fake.placement["ns/ee"] = f"instance:{ACME_SH}"
    settings = AliyunSettings(access_key_id=KEY, access_key_secret=SECRET, ca_file=acr_world.CA_FILE,
                              region="cn-shanghai", retries=0)  # fmt: skip
    registry = AcrRegistry(settings, state_dir=tmp_path, instance_ids={"images.acme.test": ACME_SH})
    assert registry.latest(RepoKey("images.acme.test", "ns", "ee"), ["latest"]) == {"latest": "sha256:" + D3}
    assert "ListInstance" not in fake.stats()["actions"]
    registry.close()


def test_tokens_go_only_to_their_own_region_or_instance(fake: FakeAcr, tmp_path: Path) -> None:
    """A token per region/instance; the registry front takes each only on its own hosts."""
    registry = acr(tmp_path)
    sh = registry.credentials("registry.cn-shanghai.aliyuncs.com")
    assert registry.credentials("registry-internal.cn-shanghai.aliyuncs.com") == sh  # cached
    hz = registry.credentials("registry.cn-hangzhou.aliyuncs.com")
    beta = registry.credentials("beta-registry.cn-shanghai.cr.aliyuncs.com")
    acme = registry.credentials("acme-registry.cn-shanghai.cr.aliyuncs.com")
    assert sh and hz and beta and acme and len({sh, hz, beta, acme}) == 4
    assert registry.credentials(CRPI_HOST) is None and registry.credentials("docker.io") is None
    assert fake.token_valid("personal:cn-shanghai", *sh)
    assert not fake.token_valid("personal:cn-hangzhou", *sh)
    assert not fake.token_valid(f"instance:{ACME_SH}", *beta)
    assert fake.stats()["actions"]["GetAuthorizationToken"] == 4
    registry.close()


def test_crpi_falls_back_to_the_registry_head_with_that_hosts_credentials(
    fake: FakeAcr, tmp_path: Path, docker_client: object
) -> None:
    """The personal API does not know the crpi repository: the registry's HEAD answers, with the fixed login."""
    from tests.support import env
    from tests.support.images import build_image, push

    # any image in the backing registry will do: the crpi host serves the same store
    ref = f"{env.REGISTRY}/crpi-ns/app:v1"
    build_image(ref, marker="crpi", docker_client=docker_client)
    digest = push(ref, docker_client)
    fake.placement["crpi-ns/app"] = "crpi"
    registry = acr(tmp_path, host_auth=lambda host: (env.REGISTRY_USER, env.REGISTRY_PASSWORD))
    assert registry.latest(RepoKey(CRPI_HOST, "crpi-ns", "app"), ["v1"]) == {"v1": digest}
    assert fake.stats()["actions"] == {"GetRepoTags": 1}  # asked first, then the registry
    assert load_sources(tmp_path)[f"{CRPI_HOST}/crpi-ns/app"].startswith("registry HEAD (not in this account")
    registry.close()


def test_a_missing_ca_bundle_fails_the_entry_with_a_clear_error(
    fake: FakeAcr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", str(tmp_path / "nope.pem"))
    settings = AliyunSettings(access_key_id=KEY, access_key_secret=SECRET, retries=0)
    registry = AcrRegistry(settings, state_dir=tmp_path)
    with pytest.raises(RegistryError, match="ALIBABA_CLOUD_CA_BUNDLE: no such CA bundle file") as err:
        registry.latest(RepoKey("registry.cn-shanghai.aliyuncs.com", "ns", "sh"), ["latest"])
    assert err.value.code == "CONFIG"


# -- VPC endpoints (issue 18, item 7) -----------------------------------------------------------------
VPC_SH = RepoKey("registry-vpc.cn-shanghai.aliyuncs.com", "ns", "sh")
SH_HOST = "registry.cn-shanghai.aliyuncs.com"


@pytest.fixture
def vpc_fake(dev_env: None) -> Iterator[FakeAcr]:
    """The fake that also answers at cr-vpc.<region>.aliyuncs.com (127.0.0.4)."""
    with FakeAcr(
        tls=True, vpc=True, tags={"ns/sh": {"latest": D1}}, placement={"ns/sh": "personal:cn-shanghai"}
    ) as f:
        yield f


def _network(tmp_path: Path, network: str) -> AcrRegistry:
    settings = AliyunSettings(access_key_id=KEY, access_key_secret=SECRET, ca_file=acr_world.CA_FILE, retries=0,
                              api_network=network)  # fmt: skip
    return AcrRegistry(settings, state_dir=tmp_path)


@pytest.mark.parametrize(
    ("network", "repo", "asked"),
    [("auto", VPC_SH, "cr-vpc.cn-shanghai.aliyuncs.com"), ("auto", RepoKey(SH_HOST, "ns", "sh"), "cr.cn-shanghai.aliyuncs.com"),
     ("public", VPC_SH, "cr.cn-shanghai.aliyuncs.com"), ("vpc", RepoKey(SH_HOST, "ns", "sh"), "cr-vpc.cn-shanghai.aliyuncs.com")],
)  # fmt: skip
def test_vpc_hosts_ask_the_vpc_endpoint_unless_api_network_says(
    vpc_fake: FakeAcr, tmp_path: Path, network: str, repo: RepoKey, asked: str
) -> None:
    registry = _network(tmp_path, network)
    assert registry.latest(repo, ["latest"]) == {"latest": "sha256:" + D1}
    assert vpc_fake.stats()["hosts"] == {asked: 1}
    registry.close()


def test_an_unreachable_vpc_endpoint_falls_back_once_to_the_public_one(fake: FakeAcr, tmp_path: Path) -> None:
    """The plain fake serves no VPC endpoint: connecting to cr-vpc.cn-shanghai is refused."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    registry = _network(tmp_path, "auto")
    assert registry.latest(VPC_SH, ["latest"]) == {"latest": "sha256:" + D1}
    assert registry.latest(VPC_SH, ["latest"]) == {
        "latest": "sha256:" + D1
    }  # it stays with the one that answered
    assert fake.stats()["hosts"] == {"cr.cn-shanghai.aliyuncs.com": 2}
    logger.remove(sink)
    err = "".join(lines)
    assert "ACR API cr-vpc.cn-shanghai.aliyuncs.com could not be reached" in err
    assert "cr.cn-shanghai.aliyuncs.com answered" in err and err.count("could not be reached") == 1
    registry.close()


def test_a_public_endpoint_that_cannot_be_reached_falls_back_to_the_vpc_one(
    vpc_fake: FakeAcr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an ECS host without internet access: the public endpoint's connection fails, the VPC one answers."""
    vpc_fake._server.shutdown()  # cr.<region> now refuses connections
    vpc_fake._server.server_close()
    vpc_fake._thread = None
    registry = _network(tmp_path, "public")
    assert registry.latest(RepoKey("registry.cn-shanghai.aliyuncs.com", "ns", "sh"), ["latest"]) == {
        "latest": "sha256:" + D1
    }
    assert vpc_fake.stats()["hosts"] == {"cr-vpc.cn-shanghai.aliyuncs.com": 1}
    registry.close()
