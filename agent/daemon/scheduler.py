"""`agent run`'s scheduler: APScheduler 3 runs the scheduled pass and the wake-up jobs.

The trigger is ours (`PassTrigger` over `schedule.DueTimes`): cron with Debian's semantics through
cronsim, as `agent check` reads it (APScheduler's crontab numbers weekdays from Monday), and an
interval grid that jitter never moves (APScheduler's `IntervalTrigger` adds each jitter to the next
due time, so the grid drifts). A job that raises, a trigger that fails or a scheduler thread that
ends sets `dead`: `agent run` exits 1. Only `agent run` imports this module.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from loguru import logger

from agent.compat import UTC
from agent.config import Schedule
from agent.daemon.schedule import DueTimes, describe

SCHEDULE = "schedule"  # the scheduled pass's job id
MISFIRE_GRACE = 3600  # seconds: a scheduled pass later than this (a suspended host) is skipped, and said

# APScheduler logs through `logging`, past our redaction and JSON lines; the listeners say what matters.
logging.getLogger("apscheduler").addHandler(logging.NullHandler())
logging.getLogger("apscheduler").propagate = False


class PassTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """The next due time of `due` after the later of the last fire time and now (missed ones coalesce)."""

    __slots__ = ("due", "_failed")

    def __init__(self, due: DueTimes, failed: Callable[[BaseException], None]) -> None:
        self.due = due
        self._failed = failed

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = max(now.timestamp(), previous_fire_time.timestamp() if previous_fire_time else 0.0)
        try:
            return datetime.fromtimestamp(self.due.next_due(after), UTC)
        except Exception as e:  # e.g. a date past the platform's range: the job ends; say why, exit 1
            self._failed(e)
            return None

    def __str__(self) -> str:
        return describe(self.due.schedule)


class Ticker:
    """The scheduled pass (one at start, then when due) and one-off jobs (wake-ups) on one scheduler.

    The scheduled job has `coalesce`, `max_instances=1` (a pass that outlasts the interval skips
    the times it covered) and a misfire grace. `dead` says why the scheduler stopped, if it did;
    `warning` the last scheduled pass it had to skip.
    """

    def __init__(
        self,
        schedule: Schedule | None,
        fire: Callable[[], object],
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float], float] | None = None,
        zone: Any = None,
    ) -> None:
        kw: dict[str, Any] = {"clock": clock, "zone": zone} | ({"jitter": jitter} if jitter else {})
        self.due = DueTimes(schedule, **kw) if schedule is not None else None
        self._fire = fire
        self._stop = stop
        self.dead: str | None = None
        self.warning: str | None = None
        self._started = False
        self._sched = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(4)},  # the scheduled pass, wake-ups, a reload
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE},
        )
        self._sched.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    def next_due(self, now: float) -> float:
        assert self.due is not None, "no schedule"
        return self.due.next_due(now)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.due is not None:
            self._sched.add_job(
                self._fire,
                PassTrigger(self.due, self._trigger_failed),
                id=SCHEDULE,
                name="scheduled pass",
                next_run_time=datetime.now(UTC),
            )
        self._sched.start()

    @property
    def next_at(self) -> float | None:
        """When the next scheduled pass is due (Unix time; None before start), for the status page."""
        job = self._sched.get_job(SCHEDULE) if self._started else None
        when = getattr(job, "next_run_time", None)
        return when.timestamp() if when else None

    def soon(self, func: Callable[[], object], name: str) -> None:
        """Run `func` once, now, on the scheduler's pool (never dropped as late)."""
        self._sched.add_job(func, DateTrigger(datetime.now(UTC)), name=name, misfire_grace_time=None)

    def reschedule(self, schedule: Schedule) -> None:
        """A new schedule for the scheduled pass (SIGHUP): the next one is due by the new rules."""
        old = self.due
        self.due = DueTimes(schedule, zone=old.zone if old else None)
        if self._started:
            self._sched.reschedule_job(SCHEDULE, trigger=PassTrigger(self.due, self._trigger_failed))

    def alive(self) -> bool:
        thread = getattr(self._sched, "_thread", None)  # BackgroundScheduler's own thread
        return self._started and self.dead is None and thread is not None and thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Stop the scheduler, after the jobs that run have ended (they watch `stop`).

        The wait happens in a helper thread, joined in short slices: a plain `Thread.join()` blocks the main
        thread in C on Python 3.13, where no signal handler runs, so a second SIGTERM could not exit."""
        if self._started and self._sched.running:
            ender = threading.Thread(
                target=self._sched.shutdown, kwargs={"wait": True}, name="scheduler-shutdown"
            )
            ender.start()
            deadline = None if timeout is None else time.monotonic() + timeout
            while ender.is_alive() and (deadline is None or time.monotonic() < deadline):
                ender.join(0.2)

    def _die(self, why: str, exc: BaseException | None) -> None:
        """`agent run`'s loop sees `dead` within a second and stops (a pass that runs ends first)."""
        self.dead = self.dead or why
        logger.opt(exception=exc).critical("the scheduler stopped: {}; exiting so it is restarted", why)

    def _trigger_failed(self, e: BaseException) -> None:
        self._die(f"{type(e).__name__}: {e}", e)

    def _on_event(self, event: JobEvent) -> None:
        times = getattr(event, "scheduled_run_times", None) or [getattr(event, "scheduled_run_time", None)]
        when = f"{times[-1]:%Y-%m-%d %H:%M:%S} UTC" if times[-1] else "?"
        if event.code == EVENT_JOB_ERROR:  # our jobs catch what a pass raises: this is a bug, exit 1
            exc = getattr(event, "exception", None)
            self._die(f"{type(exc).__name__}: {exc}", exc)
        elif event.code == EVENT_JOB_MISSED:
            self.warning = f"the scheduled pass due at {when} was skipped: over {MISFIRE_GRACE}s late"
            logger.warning("{}; the next one runs when due", self.warning)
        elif event.job_id == SCHEDULE:  # EVENT_JOB_MAX_INSTANCES
            logger.info("the scheduled pass due at {} is skipped: the previous one still runs", when)
