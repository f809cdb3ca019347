"""Service updates with a hand-written fake Swarm: Swarm's end state decides the outcome; bounded waits."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import Watch
from agent.deploy.service import ServiceDeployer, ServiceJob
from agent.model import Status
from agent.state import ScopedState, State
from tests.support.fakes import StepClock
from tests.support.swarm import IMG, NEW, OLD, FakeSwarm

WATCH = Watch(
    container="svc",
    image=IMG,
    source="registry",
    strategy="start-first",
    min_uptime=2.0,
    health_timeout=5.0,
    service="svc",
)


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path)


def deployer(swarm: FakeSwarm, state: State) -> ServiceDeployer:
    return ServiceDeployer(swarm, state, clock=StepClock(1.0), poll=0)


def test_completed_is_updated_and_the_journal_is_cleared(state: State) -> None:
    swarm = FakeSwarm([None, "updating", "completed"])
    r = deployer(swarm, state).update(ServiceJob(WATCH, NEW, OLD))
    assert r.status is Status.UPDATED and swarm.updates == [(f"{IMG}@{NEW}", "start-first")]
    assert state.journal("service") == [] and state.history("svc")[0].outcome == "updated"


def test_rollback_completed_is_rolled_back_with_the_task_logs_and_quarantined(state: State) -> None:
    swarm = FakeSwarm(["updating", "rollback_started", "rollback_completed"])
    r = deployer(swarm, state).update(ServiceJob(WATCH, NEW, OLD))
    assert r.status is Status.ROLLED_BACK and "boom" in (r.error or "")
    assert NEW in state.quarantined("svc")


def test_paused_is_failed_without_quarantine(state: State) -> None:
    r = deployer(FakeSwarm(["updating", "paused"]), state).update(ServiceJob(WATCH, NEW, OLD))
    assert r.status is Status.FAILED and "paused" in (r.error or "") and not state.quarantined("svc")


def test_host_mode_ports_force_stop_first(state: State) -> None:
    swarm = FakeSwarm(["completed"], host_ports=True)
    deployer(swarm, state).update(ServiceJob(WATCH, NEW, OLD))
    assert swarm.updates[0][1] == "stop-first"


def test_deadline_leaves_the_journal_and_the_next_pass_only_waits(state: State) -> None:
    swarm = FakeSwarm(["updating"] * 100)
    r = deployer(swarm, state).update(ServiceJob(WATCH, NEW, OLD))
    assert r.status is Status.FAILED and "next pass waits" in (r.error or "")
    assert [(e.container, e.step) for e in state.journal("service")] == [("svc", "requested")]
    assert state.journal() == []  # the container journal does not see it
    swarm.states = ["updating", "completed"]
    (rec,) = deployer(swarm, state).recover()
    assert rec.status is Status.UPDATED and len(swarm.updates) == 1  # waited; never a second update
    assert state.journal("service") == []


def test_agent_rollback_pins_what_swarm_returned_to(state: State) -> None:
    swarm = FakeSwarm([])
    swarm.info = replace(swarm.info, image=f"{IMG}@{NEW}", previous_image=f"{IMG}@{OLD}")
    swarm.updates.append(("primed", None))  # let the fake play states back
    swarm.states = ["rollback_started", "rollback_completed"]
    result, digest = deployer(swarm, state).rollback(WATCH)
    assert (swarm.rollbacks, result.status, digest) == (1, Status.UPDATED, OLD)


def test_a_settled_row_is_recorded_without_asking_swarm_again(state: State, tmp_path: Path) -> None:
    """Killed after Swarm's end state was journaled: that outcome stands, even if Swarm moved on since."""
    swarm = FakeSwarm(["updating", "rollback_completed"])
    crashing = State(tmp_path)  # the same state.db, whose history write is where the agent dies

    def killed(*_: object) -> None:
        raise KeyboardInterrupt

    crashing.record = killed  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        deployer(swarm, crashing).update(ServiceJob(WATCH, NEW, OLD))
    assert [(e.container, e.step) for e in state.journal("service")] == [("svc", "settled")]
    swarm.states, swarm.updates = ["updating"] * 100, [("someone else's update", None)]
    (rec,) = deployer(swarm, state).recover()
    assert (rec.status, rec.to_digest) == (Status.ROLLED_BACK, NEW) and "boom" in (rec.error or "")
    assert NEW in state.quarantined("svc") and state.history("svc")[0].outcome == "rolled_back"
    assert state.journal("service") == [] and len(swarm.updates) == 1


def test_a_service_journal_row_of_an_older_agent_is_migrated_and_finished(tmp_path: Path) -> None:
    """An agent upgraded mid-update: the old `service_journal` row becomes a typed `requested` row."""
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript("""
        CREATE TABLE journal (container TEXT PRIMARY KEY, step TEXT NOT NULL, data TEXT NOT NULL,
                              updated REAL NOT NULL);
        CREATE TABLE service_journal (name TEXT PRIMARY KEY, data TEXT NOT NULL, updated REAL NOT NULL);
    """)
    old = {
        "service": "svc",
        "image": str(IMG),
        "digest": NEW,
        "from_digest": OLD,
        "started": 1.0,
        "wait": 30.0,
    }
    db.execute("INSERT INTO service_journal VALUES ('svc', ?, 2.0)", (json.dumps(old),))
    db.execute("INSERT INTO journal VALUES ('web', 'created', '{}', 2.0)")
    db.commit()
    db.close()
    state = State(tmp_path)
    assert [(e.container, e.step) for e in state.journal("service")] == [("svc", "requested")]
    assert [(e.container, e.step) for e in state.journal()] == [("web", "created")]
    tables = {r[0] for r in state._exec("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "service_journal" not in tables
    swarm = FakeSwarm(["updating", "completed"])
    swarm.updates.append(("primed", None))  # let the fake play states back: Swarm is mid-update
    (rec,) = deployer(swarm, state).recover()
    assert (rec.status, rec.current_digest, rec.to_digest) == (Status.UPDATED, OLD, NEW)
    assert len(swarm.updates) == 1 and state.journal("service") == []  # waited; never a second update
    assert State(tmp_path).journal("service") == []  # a second open finds it migrated


def test_each_engine_recovers_only_its_own_service_updates(state: State) -> None:
    for name in ("here", "there"):
        state.journal_write(name, "requested", {"service": name, "image": str(IMG), "digest": NEW,
                                                "started": 1.0, "wait": 1.0}, kind="service")  # fmt: skip
    swarm = FakeSwarm(["completed"])
    swarm.updates.append(("primed", None))
    (rec,) = deployer(swarm, ScopedState(state, {"here"}.__contains__)).recover()
    assert rec.container == "here" and [e.container for e in state.journal("service")] == ["there"]
