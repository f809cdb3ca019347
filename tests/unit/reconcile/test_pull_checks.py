"""Before any container is touched: a refused token is retried once with docker's login; the platform must fit."""

from __future__ import annotations

from pathlib import Path

from agent.errors import RuntimeFault
from agent.model import Status
from agent.reconcile.run import reconcile
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.unit.reconcile.test_plan import A, B, single


def _runtime() -> FakeRuntime:
    rt = FakeRuntime()
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    return rt


def test_a_refused_token_is_retried_once_with_dockers_own_login(tmp_path: Path) -> None:
    rt = _runtime()
    rt.fail["pull"] = RuntimeFault("pull x: unauthorized: authentication required")
    r = reconcile(single(tmp_path, FakeRegistry({"ns/web": {"latest": B}}), rt)).results[0]
    assert r.status is Status.UPDATED
    assert rt.pull_auths == [("cr_temp_user", "tok"), None]


def test_other_pull_failures_are_not_retried(tmp_path: Path) -> None:
    rt = _runtime()
    rt.fail["pull"] = RuntimeFault("pull x: manifest unknown")
    r = reconcile(single(tmp_path, FakeRegistry({"ns/web": {"latest": B}}), rt)).results[0]
    assert r.status is Status.FAILED and rt.pull_auths == [("cr_temp_user", "tok")]


def test_an_image_for_another_platform_fails_the_entry_with_nothing_touched(tmp_path: Path) -> None:
    rt = _runtime()
    rt.platforms["sha256:" + "b" * 64] = "the image is for linux/arm64, this host runs linux/amd64"
    r = reconcile(single(tmp_path, FakeRegistry({"ns/web": {"latest": B}}), rt)).results[0]
    assert (
        r.status is Status.FAILED
        and "linux/arm64" in (r.error or "")
        and "nothing was changed" in (r.error or "")
    )
    assert rt.calls["rename"] == 0 and rt.by_name()["a"].running


class Confirming(FakeRegistry):
    """A registry whose HEAD says `says` for every tag (ACR's registry cross-check)."""

    def __init__(self, tags: dict[str, dict[str, str]], says: str) -> None:
        super().__init__(tags)
        self.says, self.asked = says, 0

    def confirm(self, repo: object, tag: str, api_digest: str) -> str:
        self.asked += 1
        return self.says


def test_the_registry_digest_wins_before_an_update(tmp_path: Path) -> None:
    """The API names a platform manifest, the registry the index the container already runs: nothing to do."""
    rt = _runtime()  # runs A (the index, as recorded by a pull by tag)
    reg = Confirming({"ns/web": {"latest": B}}, says=A)
    r = reconcile(single(tmp_path, reg, rt)).results[0]
    assert r.status is Status.UP_TO_DATE and rt.pull_auths == [] and reg.asked == 1


def test_an_update_pulls_what_the_registry_says(tmp_path: Path) -> None:
    rt = _runtime()
    c = "sha256:" + "c" * 64
    reg = Confirming({"ns/web": {"latest": B}}, says=c)
    r = reconcile(single(tmp_path, reg, rt)).results[0]
    assert r.status is Status.UPDATED and r.to_digest == c


def test_a_quiet_pass_asks_the_registry_nothing(tmp_path: Path) -> None:
    reg = Confirming({"ns/web": {"latest": A}}, says=B)
    r = reconcile(single(tmp_path, reg, _runtime())).results[0]
    assert r.status is Status.UP_TO_DATE and reg.asked == 0
