"""Temporary credentials against the fake ACR (real SDK, real signatures): rotation, expiry, what is said."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.choices import Edition
from agent.errors import RegistryError
from agent.model import RepoKey
from agent.registries.aliyun import AliyunRegistry
from agent.registries.aliyun_errors import expired
from agent.registries.credentials import Credentials, StaticCredentials, provider_for
from agent.secret import Secret, redact
from tests.support.fake_acr import FakeAcr

D1 = "a" * 64
APP = RepoKey("registry.cn-hangzhou.aliyuncs.com", "ns", "app")
HOST = "registry.cn-hangzhou.aliyuncs.com"


class Keys:
    """A hand-written provider: the fake's STS keys, one after another; `refresh()` moves on when asked to."""

    def __init__(self, fake: FakeAcr, ttls: list[float], source: str = "test keys") -> None:
        self.fake, self.ttls, self.source = fake, list(ttls), source
        self.now: Credentials = self._next()
        self.refreshes = 0

    def _next(self) -> Credentials:
        key_id, secret, token, expiry = self.fake.issue_sts(self.ttls.pop(0) if self.ttls else 3600)
        return Credentials(key_id, Secret(secret), Secret(token), expiry, self.source)

    def rotate(self) -> None:
        self.now = self._next()

    def current(self) -> Credentials:
        return self.now

    def refresh(self) -> Credentials:
        self.refreshes += 1
        if self.now.expiry is not None and self.now.expiry <= time.time():
            self.now = self._next()
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeAcr]:
    with FakeAcr(tags={"ns/app": {"latest": D1}}, instances=("cri-test",)) as f:
        yield f


def adapter(fake: FakeAcr, keys: object, **kw: object) -> AliyunRegistry:
    return AliyunRegistry(credentials=keys, region="cn-hangzhou", endpoint=fake.url, connect_timeout=1,  # type: ignore[arg-type]
                          read_timeout=2, backoff=0.01, sleep=lambda s: None, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_the_fake_refuses_an_expired_key_and_a_key_sts_never_issued(fake: FakeAcr) -> None:
    keys = Keys(fake, [0.0])  # expired when made
    gone = StaticCredentials(keys.now.key_id, keys.now.secret.reveal(), keys.now.token.reveal())  # type: ignore[union-attr]
    with AliyunRegistry(credentials=gone, region="cn-hangzhou", endpoint=fake.url, retries=0) as static, \
            pytest.raises(RegistryError) as e:  # fmt: skip
        static.latest(APP, ["latest"])
    assert e.value.code == "InvalidSecurityToken.Expired"
    with AliyunRegistry(access_key_id="STS.never-issued", access_key_secret="x" * 16, security_token="CAIS-made-up",
                        region="cn-hangzhou", endpoint=fake.url, retries=0) as forged, \
            pytest.raises(RegistryError) as e:  # fmt: skip
        forged.latest(APP, ["latest"])
    assert e.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("edition", [Edition.PERSONAL, Edition.ENTERPRISE])
def test_an_expired_token_answer_refreshes_and_retries_once_without_failing(
    fake: FakeAcr, edition: Edition
) -> None:
    keys = Keys(fake, [0.0, 3600])
    with adapter(fake, keys, retries=0, edition=edition,
                 instance_id="cri-test" if edition is Edition.ENTERPRISE else None) as acr:  # fmt: skip
        assert acr.latest(APP, ["latest"]) == {"latest": "sha256:" + D1}
    assert keys.refreshes == 1
    used = fake.stats()["keys"]
    assert len(used) == 2 and all(k.startswith("STS.") for k in used), used


def test_an_expired_static_token_fails_once_refreshing_gives_nothing_fresher(fake: FakeAcr) -> None:
    keys = Keys(fake, [0.0])
    keys.refresh = lambda: keys.now  # type: ignore[method-assign]  # nothing fresher to be had
    with adapter(fake, keys, retries=3) as acr, pytest.raises(RegistryError) as e:
        acr.latest(APP, ["latest"])
    assert e.value.code == "InvalidSecurityToken.Expired"
    assert fake.stats()["total"] == 1  # not retried: it would expire again


def test_every_request_signs_with_the_key_of_the_moment_and_rotation_drops_the_pull_token(
    fake: FakeAcr,
) -> None:
    keys = Keys(fake, [3600, 3600])
    with adapter(fake, keys) as acr:
        first = acr.credentials(HOST)
        assert (
            acr.credentials(HOST) == first and fake.stats()["actions"]["GetAuthorizationToken"] == 1
        )  # cached
        keys.rotate()
        assert acr.latest(APP, ["latest"])  # signed with the new key
        assert acr.credentials(HOST) is not None
        assert fake.stats()["actions"]["GetAuthorizationToken"] == 2  # the old key's token was dropped
        assert acr.credentials(HOST) is not None
        assert fake.stats()["actions"]["GetAuthorizationToken"] == 2
    assert len(fake.stats()["keys"]) == 2


def test_rotation_is_noticed_by_the_pull_token_alone(fake: FakeAcr) -> None:
    keys = Keys(fake, [3600, 3600])
    with adapter(fake, keys) as acr:
        acr.credentials(HOST)
        keys.rotate()
        acr.credentials(HOST)
    assert fake.stats()["actions"]["GetAuthorizationToken"] == 2


def test_description_names_the_source_and_expiry_never_the_secret() -> None:
    at = time.mktime((2026, 12, 7, 12, 40, 0, 0, 0, -1))
    creds = Credentials(
        "STS.abc", Secret("the-secret-value"), Secret("the-token-value"), at, "ECS RAM role `my-role`"
    )
    text = creds.describe()
    assert text.startswith("ECS RAM role `my-role`, temporary, expires 12:40")
    assert "the-secret-value" not in text and "the-token-value" not in text
    assert redact("the-secret-value the-token-value") == "*** ***"
    static = StaticCredentials("LTAIid", "s3cret-value").current().describe()
    assert static == "static, AccessKey LTAIid" and "s3cret" not in static


def test_a_static_key_never_imports_the_chain_library() -> None:
    class Settings:
        access_key_id, access_key_secret, security_token = "LTAIid", Secret("s3cret-value"), None

    class NoKey:
        access_key_id = access_key_secret = security_token = None

    assert isinstance(provider_for(Settings()), StaticCredentials)
    assert type(provider_for(NoKey())).__name__ == "ChainCredentials"  # made, not yet asked: nothing imported


@pytest.mark.parametrize(
    ("code", "is_expired"),
    [("InvalidSecurityToken.Expired", True), ("SecurityTokenExpired", True), ("InvalidAccessKeyId.Expired", True),
     ("InvalidSecurityToken.Mismatch", False), ("SignatureDoesNotMatch", False), (None, False)],
)  # fmt: skip
def test_expired_token_answers_are_recognised(code: str | None, is_expired: bool) -> None:
    assert expired(code) is is_expired


@pytest.mark.parametrize("edition", [Edition.PERSONAL, Edition.ENTERPRISE])
def test_the_build_watch_renews_an_expired_key_too(fake: FakeAcr, edition: Edition) -> None:
    fake.set_builds("ns/app", [("b1", "FAILED", 1_700_000_000_000, "latest")])
    keys = Keys(fake, [0.0, 3600])
    with adapter(fake, keys, retries=0, edition=edition,
                 instance_id="cri-test" if edition is Edition.ENTERPRISE else None) as acr:  # fmt: skip
        body, _ = acr.builds(APP)
    assert "b1" in str(body) and keys.refreshes == 1


def test_label_discovery_accepts_acr_containers_when_a_chain_source_is_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import app
    from agent.config import parse
    from agent.registries import credentials

    monkeypatch.setattr(credentials, "DMI_VENDOR", str(tmp_path / "sys_vendor"))
    env = {"HOME": str(tmp_path), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    assert not credentials.chain_may_answer(env)
    (tmp_path / "sys_vendor").write_text("Alibaba Cloud\n")
    assert not credentials.chain_may_answer(env)  # ECS, but the metadata service is switched off
    assert credentials.chain_may_answer({**env, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false"})
    assert credentials.chain_may_answer({**env, "ALIBABA_CLOUD_CREDENTIALS_URI": "http://127.0.0.1:1/c"})
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text("{}")
    assert credentials.chain_may_answer(env)
    assert not credentials.chain_may_answer({**env, "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"})

    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = parse({"agent": {"state_dir": str(tmp_path / "state"), "discover": "labels"}}, {})
    assert app.sources(cfg) == ["aliyun", "registry"]  # no key: the CLI profile answers
    (tmp_path / ".aliyun" / "config.json").unlink()
    assert app.sources(cfg) == ["registry"]


def test_a_request_holding_the_previous_key_reuses_its_client_and_does_not_rotate_back(fake: FakeAcr) -> None:
    keys = Keys(fake, [3600, 3600])
    old = keys.now
    with adapter(fake, keys) as acr:
        acr.credentials(HOST)
        keys.rotate()
        acr.credentials(HOST)
        assert acr._sdk.client(old) is acr._sdk.client(old)  # the kept client of the previous key
        assert acr.credentials(HOST) is not None  # still the new key's token: no rotation back
    assert fake.stats()["actions"]["GetAuthorizationToken"] == 2


def test_a_chain_that_found_nothing_is_not_walked_again_on_every_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.registries import credentials

    class Nothing:
        asked = 0

        def get_credentials(self) -> None:
            Nothing.asked += 1
            raise RuntimeError("unable to load credentials from any of the providers in the chain")

    monkeypatch.setattr(credentials, "_default_chain", Nothing)
    chain = credentials.ChainCredentials()
    for _ in range(3):
        with pytest.raises(RegistryError) as e:
            chain.current()
        assert e.value.code == "NO_CREDENTIALS" and "found none" in str(e.value)
    assert Nothing.asked == 1
    monkeypatch.setattr(credentials, "NONE_FOR", 0.0)
    with pytest.raises(RegistryError):
        chain.current()
    assert Nothing.asked == 2
