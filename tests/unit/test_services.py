"""Service updates with a hand-written fake Swarm: Swarm's end state decides the outcome; bounded waits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.config import Watch
from agent.model import ImageRef, Status
from agent.runtimes import ServiceInfo
from agent.services import ServiceDeployer, ServiceJob
from agent.state import State

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMG = ImageRef.parse("127.0.0.1:5000/ns/web:latest")
WATCH = Watch("svc", IMG, "registry", "start-first", None, 2.0, 5.0, service="svc")


class FakeSwarm:
    """Plays back a list of update states, one per look after the update."""

    def __init__(self, states: list[str | None], *, host_ports: bool = False) -> None:
        self.states = states
        self.info = ServiceInfo(
            "id1", "svc", f"{IMG}@{OLD}", (f"{IMG.repository}@{OLD}",), 1, None, "", host_ports, None
        )
        self.updates: list[tuple[str, str | None]] = []
        self.rollbacks = 0

    def is_manager(self) -> bool:
        return True

    def service(self, name: str) -> ServiceInfo | None:
        if self.updates and self.states:
            state = self.states.pop(0)
            self.info = replace(self.info, update_state=state, update_message=f"msg {state}")
        return self.info

    def update(self, name: str, image: str, *, monitor: float, order: str | None, auth: object) -> None:
        self.updates.append((image, order))

    def rollback(self, name: str) -> None:
        self.rollbacks += 1
        self.info = replace(self.info, image=self.info.previous_image or "", previous_image=self.info.image)

    def failed_logs(self, name: str, tail: int = 20) -> str:
        return "task x: exit 3\nboom"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path)


def deployer(swarm: FakeSwarm, state: State) -> ServiceDeployer:
    return ServiceDeployer(swarm, state, clock=Clock(), poll=0)


def test_completed_is_updated_and_the_journal_is_cleared(state: State) -> None:
    swarm = FakeSwarm([None, "updating", "completed"])
    r = deployer(swarm, state).update(ServiceJob(WATCH, NEW, OLD))
    assert r.status is Status.UPDATED and swarm.updates == [(f"{IMG}@{NEW}", "start-first")]
    assert state.service_journal() == {} and state.history("svc")[0].outcome == "updated"


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
    assert "svc" in state.service_journal()
    swarm.states = ["updating", "completed"]
    (rec,) = deployer(swarm, state).recover()
    assert rec.status is Status.UPDATED and len(swarm.updates) == 1  # waited; never a second update
    assert state.service_journal() == {}


def test_agent_rollback_pins_what_swarm_returned_to(state: State) -> None:
    swarm = FakeSwarm([])
    swarm.info = replace(swarm.info, image=f"{IMG}@{NEW}", previous_image=f"{IMG}@{OLD}")
    swarm.updates.append(("primed", None))  # let the fake play states back
    swarm.states = ["rollback_started", "rollback_completed"]
    result, digest = deployer(swarm, state).rollback(WATCH)
    assert (swarm.rollbacks, result.status, digest) == (1, Status.UPDATED, OLD)
