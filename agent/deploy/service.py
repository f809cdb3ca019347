"""Swarm service updates: Swarm rolls out and rolls back; the agent asks, waits (bounded) and reports.

update: journal (requested) → update to `repo:tag@sha256:<new>` (FailureAction=rollback, Monitor,
Order) → wait for UpdateStatus completed / rollback_completed / paused or the deadline → journal
(settled, with the outcome) → quarantine, history → clear.
A journal entry left by a crash means an update was issued: the next pass waits for its end state and
records it; it never issues a second one while Swarm is still busy with the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from loguru import logger

from agent.choices import Strategy
from agent.config import Watch
from agent.deploy.journal import ServiceStep, ServiceUpdate
from agent.errors import AgentError, RuntimeFault
from agent.model import Result, Status
from agent.runtimes import ServiceInfo, ServiceRuntime
from agent.secret import redact
from agent.state import Deployment, State

DONE = "completed"
ROLLED_BACK = "rollback_completed"
STUCK = ("paused", "rollback_paused")
BUSY = ("updating", "rollback_started")


def _digest(image: str) -> str | None:
    return image.partition("@")[2] or None


@dataclass(frozen=True)
class ServiceJob:
    watch: Watch
    to_digest: str
    from_digest: str | None
    auth: tuple[str, str] | None = None


@dataclass
class ServiceDeployer:
    services: ServiceRuntime
    state: State
    _: KW_ONLY
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.monotonic
    poll: float = 1.0

    def update(self, job: ServiceJob) -> Result:
        w = job.watch
        name, service = w.container, w.service or w.container
        info = self.services.service(service)
        if info is None:
            return Result(name, str(w.image), Status.FAILED, job.from_digest, job.to_digest,
                          f"service {service!r} not found")  # fmt: skip
        order = Strategy.STOP_FIRST if info.host_ports else w.strategy
        u = ServiceUpdate(
            name, service, str(w.image), job.to_digest, job.from_digest, time.time(), self._wait_for(w, info)
        )
        self._journal(u)  # before the request: a crash after it is recoverable
        try:
            self.services.update(
                service, f"{w.image}@{job.to_digest}", monitor=w.min_uptime, order=order, auth=job.auth
            )
        except AgentError as e:
            return self._settled(
                u.at(ServiceStep.SETTLED, outcome=Status.FAILED.value, error=f"update refused: {e}")
            )
        logger.info(
            "{}: service update to {} issued ({}, monitor {}s)", name, job.to_digest, order, w.min_uptime
        )
        return self._finish(u)

    def recover(self) -> list[Result]:
        """Wait for, and record, every update a killed agent left in flight."""
        out = []
        for e in self.state.journal("service"):
            u = ServiceUpdate.from_json(e.container, e.step, e.data)
            if u.step is ServiceStep.SETTLED:  # Swarm was done: only the bookkeeping is left
                out.append(self._settled(u))
                continue
            logger.warning(
                "{}: a service update was in flight when the agent stopped; waiting for Swarm", u.name
            )
            try:
                out.append(self._finish(u))
            except AgentError as err:
                out.append(Result(u.name, u.image, Status.FAILED, u.from_digest, u.to_digest,
                                  f"recovery of the service update failed: {err}"))  # fmt: skip
        return out

    def _wait_for(self, w: Watch, info: ServiceInfo) -> float:
        """Seconds to wait: each task may take the health timeout and then the monitor window."""
        return w.health_timeout + (w.min_uptime + 5) * max(1, info.replicas_running)

    def rollback(self, w: Watch) -> tuple[Result, str | None]:
        """Swarm's rollback to the PreviousSpec; the digest it returned to, to pin."""
        service = w.service or w.container
        info = self.services.service(service)
        if info is None:
            raise RuntimeFault(f"service {service!r} not found")
        current, previous = _digest(info.image), _digest(info.previous_image or "")
        u = ServiceUpdate(
            w.container, service, str(w.image), previous, current, time.time(), self._wait_for(w, info)
        )
        self.services.rollback(service)
        after = self._wait(u)
        if isinstance(after, Result):
            return after, None
        if after is None or after.update_state != ROLLED_BACK:
            state = after.update_state if after else "gone"
            return self._record(u, Status.FAILED, f"Swarm rollback {state}"), None
        return self._record(u, Status.UPDATED, None), _digest(after.image) or previous

    def _wait(self, u: ServiceUpdate) -> ServiceInfo | None | Result:
        """The service once Swarm is done with it, or a failed Result at the deadline."""
        deadline = self.clock() + u.wait
        info = self.services.service(u.service)
        while info is not None and (info.update_state is None or info.update_state in BUSY):
            if self.clock() >= deadline or self.stop.is_set():
                why = (
                    "the agent is stopping"
                    if self.stop.is_set()
                    else f"still {info.update_state or 'starting'}"
                )
                return Result(u.name, u.image, Status.FAILED, u.from_digest, u.to_digest,
                              f"Swarm update not finished ({why}); the next pass waits for its end")  # fmt: skip
            self.stop.wait(self.poll)
            info = self.services.service(u.service)
        return info

    def _finish(self, u: ServiceUpdate) -> Result:
        """Wait for Swarm's end state; journal it as settled, then record it."""
        info = self._wait(u)
        if isinstance(info, Result):
            return info  # the journal stays: the next pass waits again
        if info is None:
            status, error = Status.FAILED, f"service {u.service!r} disappeared during the update"
        elif info.update_state == DONE:
            status, error = Status.UPDATED, None
        elif info.update_state == ROLLED_BACK:
            logs = self.services.failed_logs(u.service)
            status = Status.ROLLED_BACK
            error = f"Swarm rolled back: {info.update_message or ROLLED_BACK}" + (f"\n{logs}" if logs else "")
        else:
            status = Status.FAILED
            error = f"Swarm update {info.update_state}: {info.update_message or info.update_state}"
        u = u.at(ServiceStep.SETTLED, outcome=status.value, error=redact(error) if error else None)
        self._journal(u)
        return self._settled(u)

    def _settled(self, u: ServiceUpdate) -> Result:
        """Quarantine on a rollback, history, then clear the journal row (each step repeatable)."""
        status = Status(u.outcome or Status.FAILED.value)
        if status is Status.ROLLED_BACK and u.to_digest:
            self.state.quarantine(u.name, u.to_digest, (u.error or "")[:500])
        result = self._record(u, status, u.error)
        self.state.journal_clear(u.name)
        return result

    def _journal(self, u: ServiceUpdate) -> None:
        self.state.journal_write(u.name, u.step.value, u.to_json(), kind="service")

    def _record(self, u: ServiceUpdate, status: Status, error: str | None) -> Result:
        error = redact(error) if error else None
        self.state.record(
            Deployment(
                u.name, u.started, time.time(), u.from_digest, u.to_digest, status.value, error, None, None
            )
        )
        log = logger.info if status is Status.UPDATED else logger.error
        log("{}: service update {}{}", u.name, status.value, f": {error}" if error else "")
        return Result(u.name, u.image, status, u.from_digest, u.to_digest, error, service=u.service)
