"""The safe replace against a FakeRuntime that can fail, 'crash', or be disturbed by others at any step.

Tests assert outcomes: which containers exist, under which name, running which image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from agent import secret
from agent.config import HealthSpec, Watch
from agent.deploy import NEW_SUFFIX, OLD_SUFFIX, Deployer, Job, Step
from agent.deploy.journal import LABEL_AGENT, LABEL_REPLACES
from agent.errors import RuntimeFault
from agent.model import ImageRef, Status
from agent.runlock import EngineLock
from agent.state import State
from tests.support.fakes import FakeContainer, FakeRuntime, StepClock

REF = ImageRef.parse("127.0.0.1:5000/ns/web:latest")
OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
OLD_IMAGE = "sha256:" + "1" * 64
NEW_REF = REF.at(NEW)  # what the new container is created from


class Crash(BaseException):
    """Stands for SIGKILL: escapes every handler."""


def deployer(rt: FakeRuntime, state: State, tmp_path: Path, **kw: object) -> Deployer:
    locks = EngineLock((tmp_path / "locks",))
    return Deployer(rt, state, clock=StepClock(0.5), poll=0.01, engine_lock=locks, **kw)  # type: ignore[arg-type]


def setup(tmp_path: Path, *, running: bool = True, host_ports: bool = False, **watch: object):
    rt = FakeRuntime()
    rt.add("web", OLD_IMAGE, (f"{REF.repository}@{OLD}",), running=running, host_ports=host_ports)
    state = State(tmp_path / "state")
    w = Watch(
        container="web", image=REF, source="registry", **{"min_uptime": 1.0, "health_timeout": 5.0, **watch}
    )  # type: ignore[arg-type]
    info = rt.inspect("web")
    assert info is not None
    return rt, state, deployer(rt, state, tmp_path), Job(w, info, NEW, OLD)


def run(dep: Deployer, job: Job):
    return dep.replace(job, dep.pull(job))


def web(rt: FakeRuntime) -> FakeContainer:
    """Exactly one container exists, named web: return it."""
    assert [c.name for c in rt.containers.values()] == ["web"], rt.containers
    return rt.by_name()["web"]


def only_web(rt: FakeRuntime) -> tuple[str, bool]:
    """Exactly one container, named web: (which image it runs, old or new; running)."""
    c = web(rt)
    return ("old" if c.image_id == OLD_IMAGE else "new"), c.running


def at(step: Step, action: Callable[[], None]) -> Callable[[Step], None]:
    """A crash_at that lets another actor act when the replacement reaches `step`."""

    def hook(reached: Step) -> None:
        if reached is step:
            action()

    return hook


def crash(step: Step) -> Callable[[Step], None]:
    def boom() -> None:
        raise Crash

    return at(step, boom)


def test_stop_first_runs_the_pulled_digest_and_moves_the_tag_after_commit(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    image_id = dep.pull(job)
    assert getattr(rt, "tags", {}) == {}, "the pull does not move the tag"
    r = dep.replace(job, image_id)
    assert r.status is Status.UPDATED, r.error
    c = web(rt)
    assert (c.image, c.image_id, c.running) == (NEW_REF, image_id, True)
    assert rt.tags[str(REF)] == image_id
    assert state.journal() == []
    (h,) = state.history("web")
    assert (h.from_digest, h.to_digest, h.outcome) == (OLD, NEW, "updated")


def test_a_pinned_and_a_following_entry_on_one_tag_each_run_their_own_digest(tmp_path: Path) -> None:
    """Issue 10: pulls run in parallel before any replace; the tag must not decide the image."""
    rt, state, dep, job = setup(tmp_path)
    rt.add("api", OLD_IMAGE, (f"{REF.repository}@{OLD}",))
    pinned_digest = "sha256:" + "c" * 64
    api = rt.inspect("api")
    assert api is not None
    jobs = [
        Job(
            Watch(container="api", image=REF, source="registry", min_uptime=1.0),
            api,
            pinned_digest,
            OLD,
            follows_tag=False,
        ),
        job,
    ]
    pulled = [dep.pull(j) for j in jobs]  # as reconcile does: every pull first, then each replace
    for j, image_id in zip(jobs, pulled, strict=True):
        assert dep.replace(j, image_id).status is Status.UPDATED
    by_name = rt.by_name()
    assert by_name["api"].image_id == pulled[0] and by_name["web"].image_id == pulled[1]
    assert pulled[0] != pulled[1]
    assert rt.tags[str(REF)] == pulled[1], "only the entry following the tag moves it"


def test_stop_first_gate_runs_with_the_old_one_stopped_aside(tmp_path: Path) -> None:
    seen = []

    def probe(spec: HealthSpec) -> tuple[bool, str]:
        seen.append({c.name: (c.running, c.image_id == OLD_IMAGE) for c in rt.containers.values()})
        return True, "HTTP 200"

    rt, _, dep, job = setup(tmp_path, health=HealthSpec(http="http://127.0.0.1:1/", interval=0.01))
    dep.probe = probe
    assert run(dep, job).status is Status.UPDATED
    assert seen == [{"web" + OLD_SUFFIX: (False, True), "web": (True, False)}]


def test_start_first_proves_the_new_one_while_the_old_one_serves(tmp_path: Path) -> None:
    seen = []

    def probe(spec: HealthSpec) -> tuple[bool, str]:
        seen.append({c.name: (c.running, c.image_id == OLD_IMAGE) for c in rt.containers.values()})
        return True, "HTTP 200"

    rt, _, dep, job = setup(
        tmp_path, strategy="start-first", health=HealthSpec(http="http://127.0.0.1:1/", interval=0.01)
    )
    dep.probe = probe
    r = run(dep, job)
    assert r.status is Status.UPDATED and r.strategy == "start-first"
    assert seen == [{"web": (True, True), "web" + NEW_SUFFIX: (True, False)}]
    assert only_web(rt) == ("new", True)


def test_start_first_falls_back_to_stop_first_with_host_ports(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, strategy="start-first", host_ports=True)
    r = run(dep, job)
    assert r.status is Status.UPDATED and r.strategy == "stop-first"
    assert only_web(rt) == ("new", True)


def test_stopped_container_is_replaced_but_stays_stopped(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, running=False)
    assert run(dep, job).status is Status.UPDATED
    assert only_web(rt) == ("new", False)


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
    assert getattr(rt, "tags", {}) == {}


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("crash", "exited with code 1"),
        ("unhealthy", "HEALTHCHECK reports unhealthy"),
        ("starting", "not healthy within 5s (HEALTHCHECK starting)"),
    ],
)
def test_failed_health_gate_rolls_back_and_quarantines(tmp_path: Path, behaviour: str, reason: str) -> None:
    rt, state, dep, job = setup(tmp_path)
    rt.on_start[NEW_REF] = behaviour
    r = run(dep, job)
    assert r.status is Status.ROLLED_BACK and reason in (r.error or ""), r.error
    assert r.logs == "last words of web" and r.quarantined is True
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
    assert r.status is Status.ROLLED_BACK
    assert "not healthy within 5s (tcp 127.0.0.1:1: refused)" in (r.error or "")
    assert only_web(rt) == ("old", True)


def test_shutdown_during_health_wait_rolls_back_without_quarantine(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path, min_uptime=1000.0, health_timeout=2000.0)
    dep.stop = threading.Event()
    dep.crash_at = at(Step.HEALTH_WAIT, dep.stop.set)  # the signal arrives while we wait
    r = run(dep, job)
    assert r.status is Status.FAILED and "shutdown" in (r.error or "")
    assert only_web(rt) == ("old", True)
    assert state.quarantined("web") == {}
    assert state.journal() == []


def test_pre_update_failure_skips_and_post_update_runs(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path, pre_update="echo nope; exit 3")
    r = run(dep, job)
    assert r.status is Status.SKIPPED and "exit code 3: nope" in (r.error or "")
    assert only_web(rt) == ("old", True)
    marker = tmp_path / "post"
    rt, _, dep, job = setup(tmp_path / "2", post_update=f'echo "$CR_AGENT_TO_DIGEST" > {marker}')
    assert run(dep, job).status is Status.UPDATED
    assert marker.read_text().strip() == NEW


def test_hooks_get_only_documented_variables_and_their_output_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s3cret-key-value")
    secret.register("s3cret-key-value")
    dump = tmp_path / "env"
    rt, state, dep, job = setup(tmp_path, pre_update=f"env > {dump}; echo s3cret-key-value; exit 1")
    r = run(dep, job)
    env = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert "s3cret-key-value" not in dump.read_text()
    assert {k for k in env if k.startswith("CR_AGENT_")} == {
        "CR_AGENT_CONTAINER", "CR_AGENT_IMAGE", "CR_AGENT_FROM_DIGEST", "CR_AGENT_TO_DIGEST",
    }  # fmt: skip
    assert r.error == "pre_update hook failed: exit code 1: ***"


STOP_FIRST = [
    (Step.PULLED, "old"),
    (Step.RENAMED, "old"),
    (Step.CREATED, "old"),
    (Step.OLD_STOPPED, "old"),
    (Step.STARTED, "old"),
    (Step.HEALTH_WAIT, "old"),
    (Step.HEALTHY, "new"),
    (Step.OLD_REMOVED, "new"),
]
START_FIRST = [(Step.PULLED, "old"), (Step.CREATED, "old"), (Step.STARTED, "old"), (Step.HEALTH_WAIT, "old"),
               (Step.HEALTHY, "new"), (Step.OLD_STOPPED, "new"), (Step.OLD_REMOVED, "new")]  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "step", "expect"),
    [("stop-first", *s) for s in STOP_FIRST] + [("start-first", *s) for s in START_FIRST],
)
def test_recovery_after_a_kill_at_each_step(tmp_path: Path, strategy: str, step: Step, expect: str) -> None:
    rt, state, dep, job = setup(tmp_path, strategy=strategy)
    dep.crash_at = crash(step)
    with pytest.raises(Crash):
        run(dep, job)
    results = deployer(rt, state, tmp_path).recover(["web"])
    assert only_web(rt) == (expect, True)
    assert state.journal() == []
    if step is not Step.PULLED and step is not Step.OLD_REMOVED:
        (r,) = results
        assert r.status is (Status.UPDATED if expect == "new" else Status.FAILED)
        assert r.image == str(REF)


@pytest.mark.parametrize(
    ("fail_on", "expect"),
    [("rename", "old"), ("clone", "old"), ("stop", "old"), ("start", "old"), ("state", "old"), ("remove", "new")],
)  # fmt: skip
def test_recovery_after_a_kill_between_journal_and_action(tmp_path: Path, fail_on: str, expect: str) -> None:
    rt, state, dep, job = setup(tmp_path)
    image_id = dep.pull(job)
    rt.fail[fail_on] = Crash()
    with pytest.raises(Crash):
        dep.replace(job, image_id)
    deployer(rt, state, tmp_path).recover(["web"])
    assert only_web(rt) == (expect, True)
    assert state.journal() == []


@pytest.mark.parametrize(
    ("fail_on", "expect"),
    [("clone", "old"), ("start", "old"), ("state", "old"), ("publish", "new"), ("drain", "new"),
     ("rename", "new"), ("stop", "new"), ("remove", "new")],
)  # fmt: skip
def test_start_first_recovery_between_journal_and_action(tmp_path: Path, fail_on: str, expect: str) -> None:
    rt, state, dep, job = setup(tmp_path, strategy="start-first")
    image_id = dep.pull(job)
    rt.fail[fail_on] = Crash()
    with pytest.raises(Crash):
        dep.replace(job, image_id)
    deployer(rt, state, tmp_path).recover(["web"])
    assert only_web(rt) == (expect, True)
    assert state.journal() == []


def test_a_new_container_created_just_before_a_kill_is_found_by_its_label(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    write = state.journal_write

    def journal_write(container: str, step: str, data: dict) -> None:
        if data.get("new_id"):  # killed after create, before its id reached the journal
            raise Crash
        write(container, step, data)

    state.journal_write = journal_write  # type: ignore[method-assign]
    with pytest.raises(Crash):
        run(dep, job)
    state.journal_write = write  # type: ignore[method-assign]
    deployer(rt, state, tmp_path).recover(["web"])
    assert only_web(rt) == ("old", True)


def test_recovery_is_idempotent(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    dep.crash_at = crash(Step.STARTED)
    with pytest.raises(Crash):
        run(dep, job)
    deployer(rt, state, tmp_path).recover(["web"])
    assert deployer(rt, state, tmp_path).recover(["web"]) == []
    assert only_web(rt) == ("old", True)


def test_keeps_the_last_n_previous_images_and_removes_older_unused_ones(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    dep.keep_images = 2
    olds = []
    for d in ("sha256:" + c * 64 for c in "bcdef"):
        info = rt.inspect("web")
        assert info is not None
        olds.append(info.image_id)
        j = Job(job.watch, info, d, None)
        assert dep.replace(j, dep.pull(j)).status is Status.UPDATED
    # five updates: the three oldest previous images go, the two most recent previous ones stay
    assert [o for o in olds if o not in rt.images] == olds[:3]


def test_pull_failure_falls_back_to_a_local_copy_of_the_digest(tmp_path: Path) -> None:
    rt, _, dep, job = setup(tmp_path)
    rt.images["sha256:local"] = (f"{REF.repository}@{NEW}",)
    rt.fail["pull"] = RuntimeFault("registry unreachable")
    assert dep.pull(job) == f"{REF.repository}@{NEW}"
    rt.fail["pull"] = RuntimeFault("registry unreachable")
    other = Job(job.watch, job.container, "sha256:" + "9" * 64, OLD)
    with pytest.raises(RuntimeFault):
        dep.pull(other)


def test_start_first_gate_failure_leaves_the_old_one_untouched(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path, strategy="start-first")
    rt.on_start[NEW_REF] = "crash"
    old_id = rt.by_name()["web"].id
    assert run(dep, job).status is Status.ROLLED_BACK
    assert only_web(rt) == ("old", True) and web(rt).id == old_id


# ---- other actors on the same engine (issue 9, items 1-5) ----------------------------------


def test_new_container_removed_by_the_user_during_the_gate_is_not_quarantined(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    dep.crash_at = at(Step.HEALTH_WAIT, lambda: rt.remove("web"))
    r = run(dep, job)
    assert r.status is Status.FAILED and "removed by someone else" in (r.error or "")
    assert only_web(rt) == ("old", True)
    assert state.quarantined("web") == {} and state.journal() == []


def test_old_container_removed_during_a_failing_gate_returns_a_result_and_clears_the_journal(
    tmp_path: Path,
) -> None:
    rt, state, dep, job = setup(tmp_path)
    rt.on_start[NEW_REF] = "crash"
    dep.crash_at = at(Step.HEALTH_WAIT, lambda: rt.remove("web" + OLD_SUFFIX))
    r = run(dep, job)
    assert r.status is Status.FAILED, r
    assert "exited with code 1" in (r.error or "") and "removed by someone else" in (r.error or "")
    assert NEW in state.quarantined("web"), "the image did fail its gate"
    assert state.journal() == [] and state.history("web")[0].outcome == "failed"
    assert only_web(rt) == ("new", False)


def test_a_container_recreated_under_the_name_in_the_stop_first_window_is_left_alone(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)

    def compose_up() -> None:  # removes the agent's not-yet-started container and creates its own
        rt.remove("web")
        rt.add("web", "sha256:" + "7" * 64, ())

    dep.crash_at = at(Step.CREATED, compose_up)
    r = run(dep, job)
    assert r.status is Status.FAILED and "recreated by someone else" in (r.error or "")
    assert (r.error or "").count("by someone else") == 1, r.error
    names = {c.name: c for c in rt.containers.values()}
    assert set(names) == {"web", "web" + OLD_SUFFIX}
    assert names["web"].image_id == "sha256:" + "7" * 64 and names["web"].running
    assert not names["web" + OLD_SUFFIX].running
    assert f"docker rm web{OLD_SUFFIX}" in (r.error or "")
    assert state.journal() == [] and state.history("web")[0].outcome == "failed"
    assert state.quarantined("web") == {}


def test_a_user_recreating_the_container_during_a_start_first_gate_leaves_no_orphan(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path, strategy="start-first")

    def recreate() -> None:  # docker rm -f web; docker run --name web ...
        rt.remove("web")
        rt.add("web", "sha256:" + "7" * 64, ())

    dep.crash_at = at(Step.HEALTH_WAIT, recreate)
    r = run(dep, job)
    assert r.status is Status.FAILED and "recreated by someone else" in (r.error or "")
    assert (r.error or "").count("by someone else") == 1, r.error  # issue 20.5: no clause twice
    assert web(rt).image_id == "sha256:" + "7" * 64 and web(rt).running
    assert state.journal() == [] and state.quarantined("web") == {}


def test_a_container_replaced_since_it_was_observed_is_skipped(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    image_id = dep.pull(job)
    rt.remove("web")
    rt.add("web", OLD_IMAGE, (f"{REF.repository}@{OLD}",))  # another agent's replacement
    r = dep.replace(job, image_id)
    assert r.status is Status.SKIPPED and "since it was observed" in (r.error or "")
    assert only_web(rt) == ("old", True)


def test_another_agents_unfinished_replacement_is_respected(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    theirs = rt.add("web" + NEW_SUFFIX, OLD_IMAGE, ())
    rt.containers[theirs].labels = {LABEL_REPLACES: job.container.id, LABEL_AGENT: "someone-else"}
    r = run(dep, job)
    assert r.status is Status.SKIPPED and "unfinished replacement of web left web--cr-agent-new" in (
        r.error or ""
    )
    assert rt.by_name()["web"].id == job.container.id and theirs in rt.containers


def test_replacements_wait_for_the_engine_lock_of_another_agent(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    other = EngineLock((tmp_path / "locks",))
    assert other.acquire("fake-engine", threading.Event(), 1)
    dep.lock_wait = 0.3
    r = run(dep, job)
    assert r.status is Status.SKIPPED and "another agent is replacing" in (r.error or "")
    assert only_web(rt) == ("old", True)
    other.release()
    assert run(dep, job).status is Status.UPDATED


def test_recovery_removes_its_own_leftover_and_reports_a_strangers(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    mine = rt.add("web" + NEW_SUFFIX, OLD_IMAGE, ())
    rt.containers[mine].labels = dep.restorer.labels("gone")
    rt.add("api", OLD_IMAGE, ())
    rt.add("api" + OLD_SUFFIX, OLD_IMAGE, ())
    results = {r.container: r for r in dep.recover(["web", "api"])}
    assert mine not in rt.containers and results["web"].status is Status.SKIPPED
    assert results["api"].status is Status.FAILED and f"api{OLD_SUFFIX} (running)" in (
        results["api"].error or ""
    )
    assert "api" + OLD_SUFFIX in rt.by_name()


@pytest.mark.parametrize(("step", "expect"), [("start_new", "old"), ("healthy", "new")])
def test_a_journal_entry_written_before_the_typed_journal_is_still_recovered(
    tmp_path: Path, step: str, expect: str
) -> None:
    rt, state, dep, job = setup(tmp_path)
    old_id = job.container.id
    rt.rename("web", "web" + OLD_SUFFIX)
    rt.stop(old_id)
    new_id = rt.clone(old_id, "web", "sha256:" + "2" * 64)
    rt.start(new_id)
    state.journal_write("web", step, {
        "name": "web", "image": str(REF), "old_id": old_id, "old_image_id": OLD_IMAGE, "new_image_id": "x",
        "temp_name": "web" + OLD_SUFFIX, "digest": NEW, "from_digest": OLD, "was_running": True,
        "start_new": True, "strategy": "stop-first", "started": 1.0, "new_id": new_id,
    })  # fmt: skip
    deployer(rt, state, tmp_path).recover(["web"])
    assert only_web(rt) == (expect, True) and state.journal() == []


def test_an_error_after_the_commit_point_finishes_the_update_instead_of_undoing_it(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    rt.fail["remove"] = RuntimeFault("engine hiccup")  # removing the old container fails once
    r = run(dep, job)
    assert r.status is Status.UPDATED, r.error
    assert only_web(rt) == ("new", True) and state.journal() == []
    assert rt.tags[str(REF)] == web(rt).image_id


def test_another_agents_replacement_in_progress_is_not_taken_for_a_leftover(tmp_path: Path) -> None:
    rt, state, dep, job = setup(tmp_path)
    other = EngineLock((tmp_path / "locks",))
    assert other.acquire("fake-engine", threading.Event(), 1)  # the other agent is mid-replacement
    rt.rename("web", "web" + OLD_SUFFIX)
    rt.add("web", "sha256:" + "7" * 64, ())
    dep.lock_wait = 0.3
    assert dep.recover(["web"]) == []
    other.release()
    (r,) = dep.recover(["web"])  # it is still there once the other agent is done: a real leftover
    assert r.status is Status.FAILED and f"web{OLD_SUFFIX} (running)" in (r.error or "")
    assert set(rt.by_name()) == {"web", "web" + OLD_SUFFIX}
