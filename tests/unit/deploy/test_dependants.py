"""Sharers: containers that share a replaced container's namespaces, volumes or links follow it, in order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.deploy import Deployer, Job, Step
from agent.deploy import dependants as sharers
from agent.errors import RuntimeFault
from agent.model import Rejoined, Status
from agent.reconcile.sharers import with_sharers
from agent.runlock import EngineLock
from agent.state import State
from tests.support.fakes import FakeRuntime
from tests.unit.deploy.test_deploy import NEW, OLD, Crash, deployer, setup


def test_children_then_grandchildren_are_recreated_in_order_and_others_are_left_alone() -> None:
    rt = FakeRuntime()
    old = rt.add("parent", "sha256:" + "1" * 64, ())
    new = rt.add("parent-new", "sha256:" + "2" * 64, ())
    b = rt.add("b-child", "i", (), network_mode=f"container:{old}")
    rt.add("a-child", "i", (), network_mode=f"container:{old}")
    rt.add("grandchild", "i", (), network_mode=f"container:{b}")
    rt.add("compose-dependant", "i", (), labels={"com.docker.compose.depends_on": "parent:service_started"})
    done, moved = sharers.recreate(rt, sharers.find(rt, old), new)
    assert [d.container for d in done] == ["a-child", "b-child", "grandchild"]
    assert [line for line in rt.log if line.startswith("recreate")] == [
        "recreate a-child", "recreate b-child", "recreate grandchild"
    ]  # fmt: skip
    by = rt.by_name()
    assert by["a-child"].network_mode == f"container:{new}" and by["a-child"].running
    assert by["grandchild"].network_mode == f"container:{by['b-child'].id}"
    assert by["compose-dependant"].cloned_from is None
    assert moved[b] == by["b-child"].id


def test_every_kind_of_sharer_is_found_by_id_short_id_or_name() -> None:
    rt = FakeRuntime()
    x = rt.add("x", "sha256:" + "1" * 64, ())
    rt.add("ipc", "i", (), ipc_mode=f"container:{x}")
    rt.add("pid", "i", (), pid_mode=f"container:{x[:12]}")
    rt.add("vols", "i", (), volumes_from=("x:ro",))
    rt.add("vols-id", "i", (), volumes_from=(x,))
    rt.add("link", "i", (), links=("/x:/link/db",))
    rt.add("other", "i", (), links=("/xy:/other/db",), volumes_from=("xy",))
    found = {s.name: s.kinds for s in rt.sharers(x)}
    assert found == {"ipc": ("ipc",), "pid": ("pid",), "vols": ("volumes",), "vols-id": ("volumes",),
                     "link": ("link",)}  # fmt: skip


def test_a_recreated_sharer_points_at_the_successor_and_keeps_what_named_it_by_name() -> None:
    rt = FakeRuntime()
    old = rt.add("x", "sha256:" + "1" * 64, ())
    rt.add("s", "i", (), ipc_mode=f"container:{old}", volumes_from=(f"{old}:ro", "x"))
    new = rt.add("x-new", "sha256:" + "2" * 64, ())
    sharers.recreate(rt, sharers.find(rt, old), new)
    s = rt.by_name()["s"]
    assert (s.ipc_mode, s.volumes_from) == (f"container:{new}", (f"{new}:ro", "x"))


def test_a_failed_recreate_is_reported_and_the_others_go_on() -> None:
    rt = FakeRuntime()
    old = rt.add("parent", "sha256:" + "1" * 64, ())
    new = rt.add("parent-new", "sha256:" + "2" * 64, ())
    rt.add("a", "i", (), network_mode=f"container:{old}")
    rt.add("b", "i", (), network_mode=f"container:{old}")
    rt.fail["recreate_sharer"] = RuntimeFault("create a: boom")
    done, _ = sharers.recreate(rt, sharers.find(rt, old), new)
    assert done == [
        Rejoined("a", "failed", "create a: boom; it still points at the removed container: recreate it"),
        Rejoined("b", "restarted"),
    ]


def _deployer(rt: FakeRuntime, tmp_path: Path) -> Deployer:
    return Deployer(rt, State(tmp_path / "s2"), poll=0.01, engine_lock=EngineLock((tmp_path / "l2",)))


def test_a_sharer_started_with_rm_makes_the_update_skip_naming_it_and_nothing_changes(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path)
    rt.add("sidecar", "i", (), pid_mode=f"container:{job.container.id}", auto_remove=True)
    before = dict(rt.containers)
    r = with_sharers(rt, dep, job, dep.pull(job))
    assert r.status is Status.SKIPPED and "sidecar" in (r.error or "") and "--rm" in (r.error or "")
    assert rt.containers == before


def test_after_a_failed_replacement_a_pid_sharer_that_died_with_the_old_one_runs_again(
    tmp_path: Path,
) -> None:
    rt, _, dep, job = setup(tmp_path)
    rt.on_start[job.watch.image.at(NEW)] = "crash"
    rt.add("sidecar", "i", (), pid_mode=f"container:{job.container.id}")
    r = with_sharers(rt, dep, job, dep.pull(job))
    assert r.status is Status.ROLLED_BACK
    side = rt.by_name()["sidecar"]
    assert side.running and side.cloned_from is None and side.pid_mode == f"container:{job.container.id}"
    assert r.dependants == (Rejoined("sidecar", "restarted"),)


def test_a_sharer_that_is_a_watch_entry_is_not_taken_for_another_actors_work(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path)
    side = rt.add("side", "sha256:" + "3" * 64, (f"{job.watch.image.repository}@{OLD}",),
                  ipc_mode=f"container:{job.container.id}")  # fmt: skip
    observed = rt.inspect("side")  # as the pass observed it, before the update of web
    assert observed is not None
    r = with_sharers(rt, dep, job, dep.pull(job))
    assert r.status is Status.UPDATED and r.dependants == (Rejoined("side", "restarted"),)
    assert dep.recreated[side] == rt.by_name()["side"].id != side
    side_job = Job(replace(job.watch, container="side"), observed, NEW, OLD)
    fresh = _deployer(rt, tmp_path)  # without the record of what it recreated: another actor's work
    assert with_sharers(rt, fresh, side_job, "x").status is Status.SKIPPED
    r = with_sharers(rt, dep, side_job, dep.pull(side_job))
    assert r.status is Status.UPDATED, r.error


def test_a_sharer_that_is_a_swarm_task_makes_the_update_skip(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path)
    rt.add("task", "i", (), volumes_from=("web",), labels={sharers.SWARM_TASK: "t1"})
    r = with_sharers(rt, dep, job, dep.pull(job))
    assert r.status is Status.SKIPPED and "task" in (r.error or "") and "Swarm" in (r.error or "")
    assert rt.calls["rename"] == 0


def test_the_self_update_helper_is_not_a_sharer() -> None:
    rt = FakeRuntime()
    x = rt.add("agent", "i", ())
    rt.add("agent--cr-agent-self-update", "i", (), volumes_from=(x,), auto_remove=True,
           labels={sharers.HELPER_LABEL: "agent"})  # fmt: skip
    assert sharers.find(rt, x) == [] and sharers.unsafe("agent", sharers.find(rt, x)) is None


def test_a_crash_after_the_commit_point_is_recovered_with_the_sharers(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    rt.add("side", "i", (), pid_mode=f"container:{job.container.id}")

    def crash(step: Step) -> None:
        if step is Step.OLD_REMOVED:
            raise Crash

    dep.crash_at = crash
    with pytest.raises(Crash):
        with_sharers(rt, dep, job, dep.pull(job))
    assert rt.by_name()["side"].pid_mode == f"container:{job.container.id}"  # pointing at a removed one
    (r,) = deployer(rt, state, tmp_path).recover(["web"])
    assert r.status is Status.UPDATED and r.dependants == (Rejoined("side", "restarted"),)
    side = rt.by_name()["side"]
    assert side.pid_mode == f"container:{rt.by_name()['web'].id}" and side.running
    assert state.journal() == []
