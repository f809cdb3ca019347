"""A rollback pin and `docker compose pull && up -d`: reported once, never redeployed in a loop."""

from __future__ import annotations

from pathlib import Path

from agent.config import NotifySettings
from agent.model import Report, Status
from agent.notify.send import Notifier
from agent.reconcile.run import reconcile
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.unit.reconcile.test_plan import make_ctx

A, B = ("sha256:" + c * 64 for c in "ab")
HOST = "registry.cn-hangzhou.aliyuncs.com"
WATCH = [{"container": "web", "image": f"{HOST}/ns/web:latest", "min_uptime": "0s"}]


def recreate_outside(rt: FakeRuntime, digest: str) -> None:
    """What `compose pull && up -d` does: a new container on the tag's image, under the same name."""
    old = rt.by_name()["web"]
    del rt.containers[old.id]
    rt.add("web", "sha256:" + digest[7:15] * 8, (f"{HOST}/ns/web@{digest}",))


def test_a_pinned_container_recreated_outside_is_reported_once_and_not_redeployed(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.add("web", "sha256:" + "b" * 64, (f"{HOST}/ns/web@{B}",))
    ctx = make_ctx(tmp_path, WATCH, FakeRegistry({"ns/web": {"latest": B}}), rt)
    ctx.deployer.poll = 0.01
    ctx.state.pin("web", A)  # `agent rollback --to A`
    (first,) = reconcile(ctx).results
    assert first.status is Status.UPDATED and rt.calls["pull"] == 1  # the pin is deployed once

    recreate_outside(rt, B)
    (loud,) = reconcile(ctx).results
    assert loud.status is Status.FAILED and loud.pin_conflict is True
    assert (
        loud.error is not None
        and "recreated outside the agent" in loud.error
        and "agent unpin web" in loud.error
    )
    told = Notifier(NotifySettings(("json://localhost",))).select(Report((loud,)))
    assert [(i.kind, i.name) for i in told] == [("failed", "web")]

    for _ in range(3):  # compose keeps the tag's image; the agent keeps the pin and keeps quiet
        (quiet,) = reconcile(ctx).results
        assert quiet.status is Status.SKIPPED and quiet.seen_before is True
        assert Notifier(NotifySettings(("json://localhost",))).select(Report((quiet,))) == []
    assert rt.calls["pull"] == 1 and rt.by_name()["web"].cloned_from is None

    ctx.state.unpin("web")
    (after,) = reconcile(ctx).results
    assert after.status is Status.UP_TO_DATE  # following the tag again: B is what runs


def test_a_pin_not_yet_deployed_is_deployed_even_after_an_outside_recreate(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.add("web", "sha256:" + "b" * 64, (f"{HOST}/ns/web@{B}",))
    ctx = make_ctx(tmp_path, WATCH, FakeRegistry({"ns/web": {"latest": B}}), rt)
    ctx.deployer.poll = 0.01
    ctx.state.pin("web", A)
    recreate_outside(rt, B)
    (r,) = reconcile(ctx).results
    assert r.status is Status.UPDATED and r.pin_conflict is None
