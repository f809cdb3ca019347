"""The fake ACR takes tags and digests from the real local registry, and the adapters agree with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.model import RepoKey
from agent.registries.aliyun import AliyunRegistry
from agent.registries.oci import OciRegistry
from tests.support import env
from tests.support.fake_acr import FakeAcr
from tests.support.images import build_image, push, registry_digest
from tests.support.wait import wait_until


@pytest.fixture
def pushed(docker_client, prefix) -> Iterator[dict[str, str]]:
    """A busybox image pushed as <prefix>ns/app:v1; yields the repo path, the ref and the digest."""
    path = f"{prefix}ns/app"
    ref = f"{env.REGISTRY}/{path}:v1"
    build_image(ref, marker=prefix + "one", docker_client=docker_client)
    yield {"path": path, "ref": ref, "digest": push(ref, docker_client)}


def _adapter(fake: FakeAcr, **kw) -> AliyunRegistry:
    return AliyunRegistry(
        access_key_id="test-key-id",
        access_key_secret="test-key-secret",
        region="cn-hangzhou",
        endpoint=fake.url,
        registry_hosts=[env.REGISTRY],
        **kw,
    )


def _listed(fake: FakeAcr, path: str, tag: str) -> str | None:
    return dict(fake.repo_tags(path) or []).get(tag)


def test_fake_reports_the_registry_digest_and_adapters_return_it(pushed, docker_client):
    """Bare hex in the fake, `sha256:<that>` from both editions and from the Registry v2 fallback."""
    path, digest = pushed["path"], pushed["digest"]
    assert registry_digest(path, "v1") == digest
    repo = RepoKey(env.REGISTRY, *path.split("/"))
    with FakeAcr(registry=env.REGISTRY) as fake:
        listed = wait_until(lambda: _listed(fake, path, "v1"), 30, f"the fake to list {path}:v1")
        assert "sha256:" + listed == digest
        with _adapter(fake) as personal, _adapter(fake, edition="enterprise", instance_id="cri-test") as ee:
            assert personal.latest(repo, ["v1", "missing"]) == {"v1": digest}
            assert ee.latest(repo, ["v1"]) == {"v1": digest}
            assert OciRegistry(auth=personal.credentials).latest(repo, ["v1"]) == {"v1": digest}


def test_temporary_login_from_the_fake_really_pulls(pushed, docker_client):
    """GetAuthorizationToken's user/token are accepted by the registry for the pushed image."""
    with FakeAcr(registry=env.REGISTRY) as fake, _adapter(fake) as personal:
        user, password = personal.credentials(env.REGISTRY)
        info = docker_client.api.inspect_distribution(
            pushed["ref"], auth_config={"username": user, "password": password}
        )
    assert info["Descriptor"]["digest"] == pushed["digest"]


def test_a_new_push_is_seen_on_the_next_pass(pushed, docker_client):
    """After the tag is pushed again with new content, the adapter returns the new digest."""
    path = pushed["path"]
    repo = RepoKey(env.REGISTRY, *path.split("/"))
    with FakeAcr(registry=env.REGISTRY) as fake, _adapter(fake) as personal:
        assert personal.latest(repo, ["v1"]) == {"v1": pushed["digest"]}
        build_image(pushed["ref"], marker=pushed["path"] + "-two", docker_client=docker_client)
        second = push(pushed["ref"], docker_client)
        assert second != pushed["digest"]
        wait_until(
            lambda: _listed(fake, path, "v1") == second.split(":", 1)[1], 30, "the fake to see the new push"
        )
        fake.reset_stats()
        assert personal.latest(repo, ["v1"]) == {"v1": second}
        assert fake.stats()["requests"] == {f"GET /repos/{path}/tags": 1}


def test_real_tag_on_page_two_behind_synthetic_tags(pushed):
    """45 synthetic tags listed first, 30 a page: the real tag comes from page 2 with its real digest."""
    path = pushed["path"]
    repo = RepoKey(env.REGISTRY, *path.split("/"))
    with (
        FakeAcr(
            registry=env.REGISTRY, extra_tags={path: 45}, order="extra-first", personal_page_max=30
        ) as fake,
        _adapter(fake) as personal,
    ):
        assert personal.latest(repo, ["v1"]) == {"v1": pushed["digest"]}
        assert fake.stats()["actions"] == {"GetRepoTags": 2}
