"""What a quiet pass asks the engine: one listing for what runs, one the engine filters for leftovers."""

from __future__ import annotations

from pathlib import Path

from agent.config import parse
from agent.deploy import Deployer
from agent.model import OLD_SUFFIX, Status
from agent.reconcile.run import Context, reconcile
from agent.state import State
from tests.support.fakes import FakeRegistry, FakeRuntime

A = "sha256:" + "a" * 64
IMG = "127.0.0.1:5000/ns/web:latest"


def _ctx(tmp_path: Path, rt: FakeRuntime) -> Context:
    watches = [{"container": n, "image": IMG, "source": "registry"} for n in ("web", "api")]
    cfg = parse({"agent": {"state_dir": str(tmp_path)}, "watch": watches}, {})
    state = State(tmp_path)
    return Context(cfg, {"registry": FakeRegistry({"ns/web": {"latest": A}})}, rt, state, Deployer(rt, state))


def test_a_quiet_pass_lists_containers_once_and_leftovers_through_the_engines_name_filter(
    tmp_path: Path,
) -> None:
    rt = FakeRuntime()
    for name in ("web", "api"):
        rt.add(name, "sha256:" + "1" * 64, (f"127.0.0.1:5000/ns/web@{A}",))
    ctx = _ctx(tmp_path, rt)
    reconcile(ctx)  # the first pass of an agent also looks for other agents once
    rt.calls.clear()
    report = reconcile(ctx)
    assert {r.container: r.status for r in report.results} == {
        "web": Status.UP_TO_DATE,
        "api": Status.UP_TO_DATE,
    }
    assert (rt.calls["inspect_all"], rt.calls["list_containers(named)"]) == (1, 1)
    assert rt.calls["list_containers"] == rt.calls["inspect"] == 0


def test_a_leftover_found_by_the_name_filter_is_still_reported(tmp_path: Path) -> None:
    rt = FakeRuntime()
    rt.add("web", "sha256:" + "1" * 64, (f"127.0.0.1:5000/ns/web@{A}",))
    rt.add("api", "sha256:" + "1" * 64, (f"127.0.0.1:5000/ns/web@{A}",))
    rt.add("api" + OLD_SUFFIX, "sha256:" + "1" * 64, (f"127.0.0.1:5000/ns/web@{A}",), running=False)
    rt.add("other" + OLD_SUFFIX, "sha256:" + "2" * 64, ())  # not watched: not this agent's business
    report = reconcile(_ctx(tmp_path, rt))
    by = {r.container: r for r in report.results}
    assert by["web"].status is Status.UP_TO_DATE and "other" not in by
    assert by["api"].status is Status.FAILED and f"api{OLD_SUFFIX} (stopped)" in (by["api"].error or "")
