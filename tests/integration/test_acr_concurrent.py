"""observe's concurrent lookups share one real ACR SDK client between threads; every answer stays its own."""

from __future__ import annotations

import pytest

from agent.model import RepoKey
from agent.reconcile.observe import LOOKUPS, lookup_all
from agent.registries.aliyun import AliyunRegistry
from tests.support.fake_acr import FakeAcr

HOST = "registry.cn-hangzhou.aliyuncs.com"
N = LOOKUPS * 2 + 1


@pytest.mark.parametrize("edition", ["personal", "enterprise"])
def test_one_sdk_client_answers_every_repository_right_from_many_threads(edition: str) -> None:
    tags = {f"ns/app{i}": {"latest": f"{i:064x}", "v1": f"{i + 1000:064x}"} for i in range(N)}
    wanted = {("aliyun", RepoKey(HOST, "ns", f"app{i}")): {"latest", "v1"} for i in range(N)}
    wanted[("aliyun", RepoKey(HOST, "ns", "gone"))] = {"latest"}
    with FakeAcr(tags=tags) as fake, AliyunRegistry(
        access_key_id="test-key-id", access_key_secret="test-key-secret", region="cn-hangzhou",
        endpoint=fake.url, edition=edition, instance_id="cri-test" if edition == "enterprise" else None, retries=0,
    ) as client:  # fmt: skip
        looked = lookup_all({"aliyun": client}, wanted)
    assert looked.found == {
        ("aliyun", RepoKey(HOST, "ns", f"app{i}")): {
            "latest": f"sha256:{i:064x}",
            "v1": f"sha256:{i + 1000:064x}",
        }
        for i in range(N)
    }
    assert list(looked.failed) == [("aliyun", RepoKey(HOST, "ns", "gone"))]
    assert "REPO_NOT_EXIST" in next(iter(looked.failed.values())) or "not" in next(
        iter(looked.failed.values())
    )
    assert all(fake.stats()["repos"].get(f"ns/app{i}") for i in range(N))
