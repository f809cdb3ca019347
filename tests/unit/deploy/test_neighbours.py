"""Issue 20.5: another agent's marks on this agent's entries are named once per agent start."""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from agent.deploy.journal import LABEL_AGENT
from agent.deploy.neighbours import LABEL_HOST, other_agents
from agent.model import OLD_SUFFIX
from tests.unit.deploy.test_deploy import setup


def test_other_agents_are_named_with_their_host_and_only_the_overlapping_entries() -> None:
    from tests.support.fakes import FakeRuntime

    rt = FakeRuntime()
    rt.add("web", "i", (), labels={LABEL_AGENT: "other", LABEL_HOST: "box-2"})
    rt.add("db" + OLD_SUFFIX, "i", (), labels={LABEL_AGENT: "other", LABEL_HOST: "box-2"})
    rt.add("cache", "i", (), labels={LABEL_AGENT: "other"})  # not watched here
    rt.add("mine", "i", (), labels={LABEL_AGENT: "me"})
    (line,) = other_agents(rt, "me", ["web", "db", "mine"])
    assert "on box-2, agent id other" in line and "db, web" in line and "cache" not in line
    assert other_agents(rt, "me", ["mine"]) == []


def test_the_warning_comes_once_per_deployer_not_once_per_pass(tmp_path: Path) -> None:
    rt, _, dep, _ = setup(tmp_path)
    rt.containers[rt.by_name()["web"].id].labels = {LABEL_AGENT: "someone-else", LABEL_HOST: "box-2"}
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="WARNING")
    try:
        dep.recover(["web"])
        dep.recover(["web"])
    finally:
        logger.remove(sink)
    assert sum("another agent (on box-2" in m for m in seen) == 1, seen


def test_a_leftover_is_told_once_not_by_the_skip_and_the_recovery_both(tmp_path: Path) -> None:
    from agent.config import parse
    from agent.deploy import Deployer
    from agent.reconcile.run import Context, reconcile
    from agent.state import State
    from tests.support.fakes import FakeRegistry, FakeRuntime

    a, b = ("sha256:" + c * 64 for c in "ab")
    rt = FakeRuntime()
    rt.add("web", "sha256:" + "1" * 64, (f"127.0.0.1:5000/ns/web@{a}",))
    rt.add("web" + OLD_SUFFIX, "sha256:" + "2" * 64, (), running=False)  # not this agent's
    c = parse({"agent": {"state_dir": str(tmp_path)},
               "watch": [{"container": "web", "image": "127.0.0.1:5000/ns/web:latest", "source": "registry"}]}, {})  # fmt: skip
    st = State(tmp_path)
    ctx = Context(
        c, {"registry": FakeRegistry({"ns/web": {"latest": b}})}, rt, st, Deployer(rt, st, poll=0.01)
    )
    (r,) = reconcile(ctx).results
    assert (r.error or "").count("web" + OLD_SUFFIX) == 1, r.error
    assert "rename it to web or remove it" in (r.error or "")
