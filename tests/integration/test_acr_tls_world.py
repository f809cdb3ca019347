"""The ACR API over verified TLS, by its real host names (scripts/dev-env.sh's world), through the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.errors import RegistryError
from agent.model import RepoKey
from agent.registries.aliyun import AliyunRegistry
from tests.support import acr_world
from tests.support.fake_acr import DEFAULT_KEYS, FakeAcr
from tests.unit.registries.test_acr_tls import FirstBytes

KEY, SECRET = next(iter(DEFAULT_KEYS.items()))
D1 = "c" * 64
SH = RepoKey("registry.cn-shanghai.aliyuncs.com", "ns", "app")


@pytest.fixture
def fake(dev_env: None) -> Iterator[FakeAcr]:
    with FakeAcr(
        tls=True, tags={"ns/app": {"latest": D1}}, placement={"ns/app": "personal:cn-shanghai"}
    ) as f:
        yield f


def _adapter(region: str = "cn-shanghai", **kw: object) -> AliyunRegistry:
    return AliyunRegistry(access_key_id=KEY, access_key_secret=SECRET, region=region, retries=0, **kw)  # type: ignore[arg-type]


def test_ca_bundle_env_makes_the_default_endpoint_work(
    fake: FakeAcr, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No endpoint: https://cr.cn-shanghai.aliyuncs.com, verified against ALIBABA_CLOUD_CA_BUNDLE."""
    monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", acr_world.CA_FILE)
    with _adapter() as registry:
        assert registry.latest(SH, ["latest"]) == {"latest": "sha256:" + D1}
    assert fake.stats()["hosts"] == {"cr.cn-shanghai.aliyuncs.com": 1}


def test_ca_file_works_without_the_env(fake: FakeAcr, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALIBABA_CLOUD_CA_BUNDLE", raising=False)
    with _adapter(ca_file=acr_world.CA_FILE) as registry:
        assert registry.latest(SH, ["latest"]) == {"latest": "sha256:" + D1}


@pytest.mark.parametrize("env_value", [None, ""])
def test_an_untrusted_certificate_fails_and_says_so(
    fake: FakeAcr, monkeypatch: pytest.MonkeyPatch, env_value: str | None
) -> None:
    """The test CA is not in the bundled CAs; an empty ALIBABA_CLOUD_CA_BUNDLE is no off switch."""
    if env_value is None:
        monkeypatch.delenv("ALIBABA_CLOUD_CA_BUNDLE", raising=False)
    else:
        monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", env_value)
    with _adapter() as registry, pytest.raises(RegistryError) as err:
        registry.latest(SH, ["latest"])
    assert "not trusted" in str(err.value) and "ca_file" in str(err.value)
    assert err.value.code == "TLS_UNTRUSTED" and not err.value.temporary
    assert fake.stats()["total"] == 0  # nothing was answered


def test_a_repository_exists_only_in_its_region(fake: FakeAcr, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", acr_world.CA_FILE)
    with _adapter("cn-hangzhou") as registry, pytest.raises(RegistryError) as err:
        registry.latest(SH, ["latest"])
    assert err.value.code == "REPO_NOT_EXIST"


def test_https_proxy_is_honoured_for_a_remote_host(fake: FakeAcr, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY gets a CONNECT for cr.<region>.aliyuncs.com:443 (and nothing in clear text)."""
    proxy = FirstBytes()
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with _adapter(ca_file=acr_world.CA_FILE) as registry, pytest.raises(RegistryError):
            registry.latest(SH, ["latest"])
        assert proxy.got.wait(10)
        assert proxy.received[0].startswith(b"CONNECT cr.cn-s")
    finally:
        proxy.close()
