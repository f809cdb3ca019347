"""Swarm service updates: Swarm rolls out and rolls back; the agent asks, waits (bounded) and reports.

update: journal → update to `repo:tag@sha256:<new>` (FailureAction=rollback, Monitor, Order) → wait for
UpdateStatus completed / rollback_completed / paused or the deadline → history, quarantine → clear.
A journal entry left by a crash means an update was issued: the next pass waits for its end state and
records it; it never issues a second one while Swarm is still busy with the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from loguru import logger

from agent.choices import Strategy
from agent.config import Watch
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


class ServiceDeployer:
    def __init__(
        self,
        services: ServiceRuntime,
        state: State,
        *,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 1.0,
    ) -> None:
        self.services = services
        self.state = state
        self.stop = stop or threading.Event()
        self.clock = clock
        self.poll = poll

    def update(self, job: ServiceJob) -> Result:
        w = job.watch
        name, service = w.container, w.service or w.container
        image = f"{w.image}@{job.to_digest}"
        info = self.services.service(service)
        if info is None:
            return Result(
                name,
                str(w.image),
                Status.FAILED,
                job.from_digest,
                job.to_digest,
                f"service {service!r} not found",
            )
        order = Strategy.STOP_FIRST if info.host_ports else w.strategy
        entry = {"service": service, "image": str(w.image), "digest": job.to_digest, "from_digest": job.from_digest,
                 "started": time.time(), "wait": self._wait_for(w, info)}  # fmt: skip
        self.state.service_journal_write(name, entry)  # before the request: a crash after it is recoverable
        try:
            self.services.update(service, image, monitor=w.min_uptime, order=order, auth=job.auth)
        except AgentError as e:
            self.state.service_journal_clear(name)
            return self._record(name, entry, Status.FAILED, f"update refused: {e}")
        logger.info(
            "{}: service update to {} issued ({}, monitor {}s)", name, job.to_digest, order, w.min_uptime
        )
        return self._finish(name, entry)

    def recover(self) -> list[Result]:
        """Wait for, and record, every update a killed agent left in flight."""
        out = []
        for name, entry in self.state.service_journal().items():
            logger.warning(
                "{}: a service update was in flight when the agent stopped; waiting for Swarm", name
            )
            try:
                out.append(self._finish(name, entry))
            except AgentError as e:
                out.append(Result(name, entry["image"], Status.FAILED, entry.get("from_digest"), entry["digest"],
                                  f"recovery of the service update failed: {e}"))  # fmt: skip
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
        entry = {"service": service, "image": str(w.image), "digest": previous, "from_digest": current,
                 "started": time.time(), "wait": self._wait_for(w, info)}  # fmt: skip
        self.services.rollback(service)
        after = self._wait(entry)
        if isinstance(after, Result):
            return replace(after, container=w.container), None
        if after is None or after.update_state != ROLLED_BACK:
            state = after.update_state if after else "gone"
            return self._record(w.container, entry, Status.FAILED, f"Swarm rollback {state}"), None
        return self._record(w.container, entry, Status.UPDATED, None), _digest(after.image) or previous

    def _wait(self, entry: dict[str, Any]) -> ServiceInfo | None | Result:
        """The service once Swarm is done with it, or a failed Result at the deadline."""
        deadline = self.clock() + float(entry["wait"])
        info = self.services.service(entry["service"])
        while info is not None and (info.update_state is None or info.update_state in BUSY):
            if self.clock() >= deadline or self.stop.is_set():
                why = (
                    "the agent is stopping"
                    if self.stop.is_set()
                    else f"still {info.update_state or 'starting'}"
                )
                return Result(entry["service"], entry["image"], Status.FAILED, entry.get("from_digest"),
                              entry["digest"], f"Swarm update not finished ({why}); the next pass waits for its end")  # fmt: skip
            self.stop.wait(self.poll)
            info = self.services.service(entry["service"])
        return info

    def _finish(self, name: str, entry: dict[str, Any]) -> Result:
        service = entry["service"]
        info = self._wait(entry)
        if isinstance(info, Result):
            return replace(info, container=name)
        self.state.service_journal_clear(name)
        if info is None:
            return self._record(
                name, entry, Status.FAILED, f"service {service!r} disappeared during the update"
            )
        message = info.update_message or info.update_state or ""
        if info.update_state == DONE:
            return self._record(name, entry, Status.UPDATED, None)
        if info.update_state == ROLLED_BACK:
            logs = self.services.failed_logs(service)
            reason = f"Swarm rolled back: {message}" + (f"\n{logs}" if logs else "")
            self.state.quarantine(name, entry["digest"], redact(reason)[:500])
            return self._record(name, entry, Status.ROLLED_BACK, reason)
        return self._record(name, entry, Status.FAILED, f"Swarm update {info.update_state}: {message}")

    def _record(self, name: str, entry: dict[str, Any], status: Status, error: str | None) -> Result:
        error = redact(error) if error else None
        self.state.record(Deployment(name, float(entry["started"]), time.time(), entry.get("from_digest"),
                                     entry["digest"], status.value, error, None, None))  # fmt: skip
        log = logger.info if status is Status.UPDATED else logger.error
        log("{}: service update {}{}", name, status.value, f": {error}" if error else "")
        return Result(name, entry["image"], status, entry.get("from_digest"), entry["digest"], error,
                      service=entry["service"])  # fmt: skip
