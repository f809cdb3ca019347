"""ACR build watch through the real SDK against the fake ACR, both editions, to a real HTTP receiver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import NotifySettings
from agent.model import RepoKey, Report
from agent.notify.book import NoticeBook
from agent.notify.buildwatch import BuildSource, BuildWatch
from agent.notify.send import Notifier
from agent.registries.aliyun import AliyunRegistry
from tests.support.fake_acr import FakeAcr
from tests.support.receiver import Receiver

WEB = RepoKey("registry.cn-hangzhou.aliyuncs.com", "ns", "web")
ACTION = {"personal": "GetRepoBuildList", "enterprise": "ListRepoBuildRecord"}


@pytest.fixture
def fake() -> Iterator[FakeAcr]:
    with FakeAcr(tags={"ns/web": {"latest": "a" * 64}}) as f:
        now = int(time.time() * 1000)
        f.set_builds("ns/web", [
            ("b-4", "SUCCESS", now - 60_000, "v4"),
            ("b-3", "FAILED", now - 120_000, "v3"),
            ("b-2", "BUILDING", now - 40 * 60_000, "v2"),  # longer than stuck_after
            ("b-1", "PENDING", now - 5 * 60_000, "v1"),  # not yet
            ("b-0", "FAILED", now - 3 * 86_400_000, "v0"),  # history
        ])  # fmt: skip
        yield f


def agent_pass(fake: FakeAcr, edition: str, state: Path, url: str) -> None:
    """One pass of a freshly started agent: a new client, a new book on the same state_dir."""
    kw = {"instance_id": "cri-test"} if edition == "enterprise" else {}
    client = AliyunRegistry(access_key_id="test-key-id", access_key_secret="test-key-secret", region="cn-hangzhou",
                            edition=edition, endpoint=fake.url, read_timeout=2, **kw)  # type: ignore[arg-type]  # fmt: skip
    try:
        book = NoticeBook(state)
        source = BuildSource(client.builds, [WEB], BuildWatch(book, 1800.0))
        Notifier(NotifySettings((url,)), book, host="box", sources=[source]).on_pass(Report(()), 0.5)
        book.close()
    finally:
        client.close()


@pytest.mark.parametrize("edition", ["personal", "enterprise"])
def test_each_failed_and_stuck_build_is_told_once_across_restarts(
    edition: str, fake: FakeAcr, rx: Receiver, tmp_path: Path
) -> None:
    fake.reset_stats()
    agent_pass(fake, edition, tmp_path, rx.url("json"))
    (hit,) = rx.wait(1)
    msg = hit.data
    assert (
        msg["title"] == "cr-agent @ box: 1 ACR build failed, 1 ACR build stuck" and msg["type"] == "failure"
    )
    assert "ns/web ACR build failed (v3)" in msg["message"] and "build b-3, FAILED" in msg["message"]
    assert (
        "ns/web ACR build stuck (v2)" in msg["message"] and "build b-2, BUILDING for 40 min" in msg["message"]
    )
    assert "https://cr.console.aliyun.com/" in msg["message"] and "b-0" not in msg["message"]
    assert fake.stats()["actions"][ACTION[edition]] == 1  # one request per repository per pass

    agent_pass(fake, edition, tmp_path, rx.url("json"))  # restarted: the same records are not news
    fake.set_builds("ns/web", [("b-5", "FAILED", int(time.time() * 1000), "v5")])
    agent_pass(fake, edition, tmp_path, rx.url("json"))
    hits = rx.wait(2)
    assert len(hits) == 2 and "b-5" in hits[1].data["message"] and "b-3" not in hits[1].data["message"]
    assert fake.stats()["actions"][ACTION[edition]] == 3


def test_a_repository_the_api_cannot_list_is_a_warning_and_the_pass_goes_on(
    fake: FakeAcr, rx: Receiver, tmp_path: Path
) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        book = NoticeBook(tmp_path)
        gone = RepoKey(WEB.host, "ns", "gone")
        client = AliyunRegistry(access_key_id="test-key-id", access_key_secret="test-key-secret",
                                region="cn-hangzhou", endpoint=fake.url, read_timeout=2, retries=0)  # fmt: skip
        source = BuildSource(client.builds, [gone, WEB], BuildWatch(book, 1800.0))
        assert [i.build_id for i in source()] == ["b-3", "b-2"]
        client.close()
    finally:
        logger.remove(sink)
    assert any("ns/gone: cannot list ACR builds" in line and "REPO_NOT_EXIST" in line for line in lines), (
        lines
    )


def test_the_acr_router_lists_through_its_client_for_the_host(fake: FakeAcr, tmp_path: Path) -> None:
    """`AcrRegistry.builds` (the typed port the build watch uses) picks the client for the image's host."""
    from agent.config import AliyunSettings
    from agent.errors import RegistryError
    from agent.registries.acr import AcrRegistry

    settings = AliyunSettings(access_key_id="test-key-id", access_key_secret="test-key-secret",
                              endpoint=fake.url, timeout=2)  # fmt: skip
    acr = AcrRegistry(settings, state_dir=tmp_path)
    try:
        body, link = acr.builds(WEB)
        assert len(body["data"]["builds"]) == 5 and link.endswith("/ns/web/build")
        with pytest.raises(RegistryError) as e:
            acr.builds(RepoKey("example.com", "ns", "web"))
        assert e.value.code == "UNMAPPABLE_HOST"
    finally:
        acr.close()
