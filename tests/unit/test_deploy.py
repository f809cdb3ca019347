"""The safe-replace state machine against a FakeRuntime that can fail or 'crash' at any step."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.config import HealthSpec, Watch
from agent.deploy import OLD_SUFFIX, Deployer, Job
from agent.errors import RuntimeFault
from agent.model import ImageRef, Status
from agent.state import State
from tests.support.fakes import FakeRuntime

REF = ImageRef.parse("127.0.0.1:5000/ns/web:latest")
OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
NEW_REF = f"{REF.repository}:{REF.tag}"


class Crash(BaseException):
    """Stands for SIGKILL: escapes every handler."""


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.5
        return self.t


def setup(tmp_path: Path, *, running: bool = True, host_ports: bool = False, **watch: object):
    rt = FakeRuntime()
    rt.add("web", "sha256:" + "1" * 64, (f"{REF.repository}@{OLD}",), running=running, host_ports=host_ports)
    state = State(tmp_path)
    w = Watch("web", REF, "registry", **{"min_uptime": 1.0, "health_timeout": 5.0, **watch})  # type: ignore[arg-type]
    dep = Deployer(rt, state, clock=Clock(), poll=0.01)
    info = rt.inspect("web")
    assert info is not None
    return rt, state, dep, Job(w, info, NEW, OLD)


def run(dep: Deployer, job: Job):
    return dep.replace(job, dep.pull(job))


def only_web(rt: FakeRuntime) -> tuple[str, bool]:
    """Exactly one container exists, named web; return (which image it runs, running)."""
    assert [c.name for c in rt.containers.values()] == ["web"], rt.containers
    c = rt.by_name()["web"]
    return ("new" if c.cloned_from else "old"), c.running


def test_stop_first_order_pull_rename_create_stop_start_remove(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    r = run(dep, job)
    assert r.status is Status.UPDATED, r.error
    assert [line.split()[0] for line in rt.log] == [
        "pull",
        "tag",
        "rename",
        "clone",
        "stop",
        "start",
        "remove",
    ]
    assert rt.log[0] == f"pull {REF.repository}@{NEW}"
    assert only_web(rt) == ("new", True)
    assert state.journal() == []
    (h,) = state.history("web")
    assert (h.from_digest, h.to_digest, h.outcome) == (OLD, NEW, "updated")


def test_start_first_starts_and_proves_new_before_stopping_old(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, strategy="start-first")
    assert run(dep, job).status is Status.UPDATED
    ops = [" ".join(line.split()[:2]) for line in rt.log if not line.startswith(("pull", "tag"))]
    assert ops == [
        "clone web", "start web--cr-agent-new", "publish web--cr-agent-new", "drain web",
        "rename web", "rename web--cr-agent-new", "stop web--cr-agent-old", "remove web--cr-agent-old",
    ]  # fmt: skip
    assert only_web(rt) == ("new", True)


def test_start_first_falls_back_to_stop_first_with_host_ports(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, strategy="start-first", host_ports=True)
    r = run(dep, job)
    assert r.status is Status.UPDATED and r.detail["strategy"] == "stop-first"
    ops = [line.split()[0] for line in rt.log]
    assert ops.index("stop") < ops.index("start")


def test_stopped_container_is_replaced_but_stays_stopped(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, running=False)
    assert run(dep, job).status is Status.UPDATED
    assert only_web(rt) == ("new", False)
    assert rt.calls["start"] == 0


def test_start_stopped_option_starts_it(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, running=False, start_stopped=True)
    assert run(dep, job).status is Status.UPDATED
    assert only_web(rt) == ("new", True)


@pytest.mark.parametrize("step", ["clone", "start", "stop"])
def test_create_or_start_failure_restores_old_running_and_reports_failed(tmp_path: Path, step: str) -> None:
    rt, state, dep, job = setup(tmp_path)
    rt.fail[step] = RuntimeFault(f"{step} exploded")
    r = run(dep, job)
    assert r.status is Status.FAILED and f"{step} exploded" in (r.error or "")
    assert only_web(rt) == ("old", True)
    assert state.quarantined("web") == {}
    assert state.journal() == []


@pytest.mark.parametrize(
    ("behaviour", "watch", "reason"),
    [
        ("crash", {}, "exited with code 1"),
        ("unhealthy", {}, "HEALTHCHECK reports unhealthy"),
        ("starting", {}, "not healthy within 5s (HEALTHCHECK starting)"),
    ],
)
def test_failed_health_gate_rolls_back_and_quarantines(
    tmp_path: Path, behaviour: str, watch: dict, reason: str
) -> None:
    rt, state, dep, job = setup(tmp_path, **watch)
    rt.on_start[NEW_REF] = behaviour
    r = run(dep, job)
    assert r.status is Status.ROLLED_BACK and reason in (r.error or ""), r.error
    assert r.detail["logs"] == "last words of web"
    assert only_web(rt) == ("old", True)
    assert NEW in state.quarantined("web")
    assert state.history("web")[0].outcome == "rolled_back"


def test_http_probe_decides_when_no_healthcheck(tmp_path: Path) -> None:
    seen = []

    def probe(spec: HealthSpec) -> tuple[bool, str]:
        seen.append(spec.http)
        return len(seen) >= 3, "HTTP 503"

    rt, _, dep, job = setup(tmp_path, health=HealthSpec(http="http://127.0.0.1:1/healthz", interval=0.01))
    dep.probe = probe
    assert run(dep, job).status is Status.UPDATED
    assert len(seen) == 3


def test_probe_that_never_passes_rolls_back_at_deadline(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path, health=HealthSpec(tcp="127.0.0.1:1", interval=0.01))
    dep.probe = lambda spec: (False, "tcp 127.0.0.1:1: refused")
    r = run(dep, job)
    assert r.status is Status.ROLLED_BACK and "not healthy within 5s (tcp 127.0.0.1:1: refused)" in (
        r.error or ""
    )
    assert only_web(rt) == ("old", True)


def test_shutdown_during_health_wait_rolls_back_without_quarantine(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path, min_uptime=1000.0, health_timeout=2000.0)
    dep.stop = threading.Event()
    rt.on_start[NEW_REF] = "running"
    original = rt.state

    def state_then_stop(name: str):  # the signal arrives while we wait
        dep.stop.set()
        return original(name)

    rt.state = state_then_stop  # type: ignore[method-assign]
    r = run(dep, job)
    assert r.status is Status.FAILED and "shutdown" in (r.error or "")
    rt.state = original  # type: ignore[method-assign]
    assert only_web(rt) == ("old", True)
    assert state.quarantined("web") == {}


def test_pre_update_failure_skips_and_post_update_runs(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, pre_update="echo nope; exit 3")
    r = run(dep, job)
    assert r.status is Status.SKIPPED and "exit code 3: nope" in (r.error or "")
    assert rt.calls["rename"] == 0
    marker = tmp_path / "post"
    rt, _, dep, job = setup(tmp_path / "2", post_update=f'echo "$CR_AGENT_TO_DIGEST" > {marker}')
    assert run(dep, job).status is Status.UPDATED
    assert marker.read_text().strip() == NEW


@pytest.mark.parametrize(
    ("crash_on", "expect"),
    [
        ("rename", "old"),  # killed before the rename happened
        ("clone", "old"),  # after rename
        ("stop", "old"),  # after create
        ("start", "old"),  # after the old one stopped
        ("state", "old"),  # while waiting for health
        ("remove", "new"),  # after the commit point
    ],
)
def test_recovery_after_a_crash_at_each_step(tmp_path: Path, crash_on: str, expect: str) -> None:
    rt, state, dep, job = setup(tmp_path)
    image_id = dep.pull(job)
    rt.fail[crash_on] = Crash()
    with pytest.raises(Crash):
        dep.replace(job, image_id)
    results = Deployer(rt, state, clock=Clock(), poll=0.01).recover()
    assert only_web(rt) == (expect, True)
    assert state.journal() == []
    if crash_on != "rename":
        assert len(results) == 1
        assert results[0].status is (Status.UPDATED if expect == "new" else Status.FAILED)
        assert results[0].image == str(REF)
    assert not any(c.name.endswith(OLD_SUFFIX) for c in rt.containers.values())


def test_recovery_is_idempotent(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    image_id = dep.pull(job)
    rt.fail["start"] = Crash()
    with pytest.raises(Crash):
        dep.replace(job, image_id)
    Deployer(rt, state).recover()
    assert Deployer(rt, state).recover() == []
    assert only_web(rt) == ("old", True)


def test_keeps_the_last_n_previous_images_and_removes_older_unused_ones(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    dep.keep_images = 2
    digests = ["sha256:" + c * 64 for c in "bcdef"]
    olds = []
    for d in digests:
        info = rt.inspect("web")
        assert info is not None
        olds.append(info.image_id)
        r = dep.replace(Job(job.watch, info, d, None), dep.pull(Job(job.watch, info, d, None)))
        assert r.status is Status.UPDATED
    removed = [line.split()[1] for line in rt.log if line.startswith("remove_image")]
    # five updates: the three oldest previous images go, the two most recent previous ones stay
    assert removed == [olds[0][:15], olds[1][:15], olds[2][:15]]


def test_pull_failure_falls_back_to_a_local_copy_of_the_digest(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path)
    rt.images["sha256:local"] = (f"{REF.repository}@{NEW}",)
    rt.fail["pull"] = RuntimeFault("registry unreachable")
    assert dep.pull(job) == f"{REF.repository}@{NEW}"
    rt.fail["pull"] = RuntimeFault("registry unreachable")
    other = Job(job.watch, job.container, "sha256:" + "9" * 64, OLD)
    with pytest.raises(RuntimeFault):
        dep.pull(other)


@pytest.mark.parametrize(
    ("crash_on", "expect"),
    [("clone", "old"), ("start", "old"), ("state", "old"), ("publish", "new"), ("drain", "new"),
     ("rename", "new"), ("stop", "new"), ("remove", "new")],
)  # fmt: skip
def test_start_first_recovery_after_a_crash_at_each_step(tmp_path: Path, crash_on: str, expect: str) -> None:
    rt, state, dep, job = setup(tmp_path, strategy="start-first")
    image_id = dep.pull(job)
    rt.fail[crash_on] = Crash()
    with pytest.raises(Crash):
        dep.replace(job, image_id)
    Deployer(rt, state, clock=Clock(), poll=0.01).recover()
    assert only_web(rt) == (expect, True)
    assert state.journal() == []


def test_start_first_gate_failure_leaves_the_old_one_untouched(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path, strategy="start-first")
    rt.on_start[NEW_REF] = "crash"
    old_id = rt.by_name()["web"].id
    assert run(dep, job).status is Status.ROLLED_BACK
    assert only_web(rt) == ("old", True) and rt.by_name()["web"].id == old_id
    assert not any(line.startswith(("rename", "stop", "drain")) for line in rt.log)
