"""Tag patterns against the fake ACR through the real SDK: full paging, pre-releases, a newer running tag."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import parse
from agent.deploy import Deployer
from agent.model import RepoKey, Status
from agent.reconcile.run import Context, reconcile
from agent.registries.aliyun import AliyunRegistry
from agent.state import State
from tests.support.fake_acr import FakeAcr
from tests.support.fakes import FakeRuntime

HOST = "registry.cn-hangzhou.aliyuncs.com"
REGEX = r"^release-v(?P<version>\d+\.\d+\.\d+(-[\w.]+)?)$"
TAGS = ["release-v1.2.3", "release-v1.2.4", "release-v1.2.10", "release-v1.3.0-rc.1", "nightly", "1.2.0", "1.10.0",
        "1.11.0-rc.1", "2.0.0"]  # fmt: skip


def digest(tag: str) -> str:
    return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()


@pytest.fixture
def fake() -> Iterator[FakeAcr]:
    # 29 synthetic tags first and pages of 30: the real tags straddle the page boundary
    tags = {"ns/web": {t: digest(t) for t in TAGS}}
    with FakeAcr(tags=tags, extra_tags={"ns/web": 29}, order="extra-first", personal_page_max=30) as f:
        yield f


@pytest.fixture
def acr(fake: FakeAcr) -> Iterator[AliyunRegistry]:
    registry = AliyunRegistry(access_key_id="test-key-id", access_key_secret="test-key-secret",
                              region="cn-hangzhou", endpoint=fake.url, read_timeout=2)  # fmt: skip
    yield registry
    registry.close()


def ctx_for(tmp_path: Path, acr: AliyunRegistry, rt: FakeRuntime, **entry: str) -> Context:
    watch = {"container": "web", "image": f"{HOST}/ns/web:release-v1.2.3", "min_uptime": "0s", **entry}
    cfg = parse({"agent": {"state_dir": str(tmp_path)}, "watch": [watch]}, {"ALIYUN_ACCESS_KEY_ID": "i",
                "ALIYUN_ACCESS_KEY_SECRET": "s"})  # fmt: skip
    state = State(tmp_path)
    return Context(cfg, {"aliyun": acr}, rt, state, Deployer(rt, state, poll=0.01))


def running(rt: FakeRuntime, tag: str) -> None:
    cid = rt.add("web", "sha256:" + "1" * 64, (f"{HOST}/ns/web@{digest(tag)}",), labels={"keep": "me"})
    rt.containers[cid].image = f"{HOST}/ns/web:{tag}"


def test_tags_pages_through_the_whole_listing(fake: FakeAcr, acr: AliyunRegistry) -> None:
    listed = acr.tags(RepoKey(HOST, "ns", "web"))
    assert {t for t, _ in listed} >= set(TAGS) and len(listed) == 29 + len(TAGS)
    assert all(isinstance(when, float) for _, when in listed)
    assert fake.stats()["actions"] == {"GetRepoTags": 2}  # 38 tags, pages of 30


def test_regex_picks_the_newest_release_past_a_page_boundary_and_replaces_with_its_tag(
    tmp_path: Path, fake: FakeAcr, acr: AliyunRegistry
) -> None:
    rt = FakeRuntime()
    running(rt, "release-v1.2.3")
    report = reconcile(ctx_for(tmp_path, acr, rt, tag_regex=REGEX))
    (r,) = report.results
    assert (r.status, r.image, r.to_digest) == (Status.UPDATED, f"{HOST}/ns/web:release-v1.2.10",
                                                    digest("release-v1.2.10"))  # fmt: skip
    new = rt.by_name()["web"]
    # created from the digest (never a mutable tag); it follows the new tag from now on, not the rc
    assert new.image == f"{HOST}/ns/web@{digest('release-v1.2.10')}"
    assert new.labels.get("cr-agent.image") == f"{HOST}/ns/web:release-v1.2.10"
    assert new.labels.get("keep") == "me" and new.cloned_from is not None  # everything else kept
    (again,) = reconcile(ctx_for(tmp_path, acr, rt, tag_regex=REGEX)).results
    assert again.status is Status.UP_TO_DATE


def test_a_running_tag_newer_than_every_match_changes_nothing(
    tmp_path: Path, fake: FakeAcr, acr: AliyunRegistry
) -> None:
    rt = FakeRuntime()
    running(rt, "1.12.0")  # deployed by hand, not in the registry's list
    (r,) = reconcile(ctx_for(tmp_path, acr, rt, tag="semver:^1.2")).results
    assert r.status is Status.UP_TO_DATE and "newer than every match" in str(r.note)
    assert rt.calls["pull"] == 0 and rt.by_name()["web"].cloned_from is None


@pytest.mark.parametrize(
    ("pattern", "status", "outcome"),
    [
        ("semver:^1.2", Status.UPDATED, ":1.10.0"),  # never the 1.11.0 rc nor 2.0.0
        ("semver:^5", Status.FAILED, "matches semver:^5"),
    ],
)
def test_semver_range_picks_the_newest_release_in_range_or_fails_naming_the_pattern(
    tmp_path: Path, fake: FakeAcr, acr: AliyunRegistry, pattern: str, status: Status, outcome: str
) -> None:
    rt = FakeRuntime()
    running(rt, "1.2.0")
    (r,) = reconcile(ctx_for(tmp_path, acr, rt, tag=pattern)).results
    assert r.status is status
    assert outcome in (r.image if status is Status.UPDATED else r.error or "")
