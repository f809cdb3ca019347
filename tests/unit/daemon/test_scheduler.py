"""`agent run` on APScheduler 3: our trigger keeps cron's and the grid's meaning; a failing job is never silent."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from agent.compat import UTC
from agent.config import Schedule
from agent.daemon import Coordinator, serve
from agent.daemon.schedule import DueTimes
from agent.daemon.scheduler import SCHEDULE, PassTrigger, Ticker
from agent.model import Report
from agent.runlock import RunLock
from tests.support.wait import wait_until

SUNDAY_NOON = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def fires(trigger: Any, now: datetime, n: int) -> list[datetime]:
    """The fire times APScheduler asks a trigger for: each from the last (jittered) one, at that moment."""
    out: list[datetime] = []
    last = None
    for _ in range(n):
        last = trigger.get_next_fire_time(last, last or now)
        out.append(last)
    return out


def test_jitter_delays_each_pass_but_never_moves_the_interval_grid() -> None:
    """APScheduler's IntervalTrigger adds each jitter to the next due time, so its grid drifts; ours stays."""
    from apscheduler.triggers.interval import IntervalTrigger

    start = SUNDAY_NOON.timestamp()
    ours = PassTrigger(
        DueTimes(Schedule(300, None, jitter=30), clock=lambda: start, jitter=lambda j: j), print
    )
    got = [t.timestamp() - start for t in fires(ours, SUNDAY_NOON, 10)]
    assert got == [300 * k + 30 for k in range(1, 11)]
    theirs = IntervalTrigger(seconds=300, jitter=30, start_date=SUNDAY_NOON + timedelta(seconds=300))
    drifted = [t.timestamp() - start for t in fires(theirs, SUNDAY_NOON, 10)]
    assert drifted[-1] > 3000 + 30, "APScheduler's own jitter is expected to drift: why PassTrigger exists"


def test_cron_weekdays_are_debians_through_the_trigger() -> None:
    """`0` is Sunday for `agent check` and `agent run` alike; APScheduler's crontab would say Monday."""
    from apscheduler.triggers.cron import CronTrigger

    ours = PassTrigger(DueTimes(Schedule(None, "0 3 * * 0"), zone=UTC), print)
    assert [f"{t:%a %d %H:%M}" for t in fires(ours, SUNDAY_NOON, 2)] == ["Sun 06 03:00", "Sun 13 03:00"]
    theirs = CronTrigger.from_crontab("0 3 * * 0", timezone=UTC)
    assert f"{theirs.get_next_fire_time(None, SUNDAY_NOON):%a}" == "Mon"


def test_a_job_that_raises_stops_the_daemon_with_exit_1_and_healthz_says_so(tmp_path: Path) -> None:
    """APScheduler's job errors are only logged by default: the listener makes `agent run` exit 1."""
    c = Coordinator(lambda only: Report(()), RunLock(tmp_path / "lock"))

    def broken() -> None:
        raise RuntimeError("the scheduled job broke")

    t = Ticker(Schedule(interval=3600), broken, c.stop)
    assert serve(c, t) == 1
    health = c.health()
    assert health["scheduler"] == "dead" and health["healthy"] is False
    assert "RuntimeError: the scheduled job broke" in str(health["error"])


def test_a_missed_scheduled_pass_is_logged_and_shown_in_healthz(tmp_path: Path) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    runner_calls: list[object] = []
    c = Coordinator(lambda only: Report(()), RunLock(tmp_path / "lock"))
    t = Ticker(Schedule(interval=3600), lambda: runner_calls.append(c.run_pass(None, "schedule")), c.stop)
    try:
        c.start_worker(t)
        wait_until(lambda: len(runner_calls) == 1, 10, "the pass at start")
        t._sched.modify_job(
            SCHEDULE, next_run_time=datetime.now(UTC) - timedelta(hours=2)
        )  # a suspended host
        wait_until(lambda: c.health().get("warning"), 10, "the missed pass in /healthz")
    finally:
        c.stop.set()
        c.join()
        logger.remove(sink)
    assert len(runner_calls) == 1, "a pass two hours late is skipped"
    assert "was skipped: over 3600s late" in str(c.health()["warning"]) and c.health()["healthy"] is True
    assert any("the scheduled pass due at" in line for line in lines)


def test_wakeups_run_as_one_off_jobs_on_the_daemons_scheduler(tmp_path: Path) -> None:
    ran: list[tuple[str, frozenset[str] | None]] = []

    def record(only: frozenset[str] | None) -> Report:
        ran.append((threading.current_thread().name, only))
        return Report(())

    c = Coordinator(record, RunLock(tmp_path / "lock"), debounce=0)
    t = Ticker(Schedule(interval=3600), lambda: c.run_pass(None, "schedule"), c.stop)
    out: list[int] = []
    runner = threading.Thread(target=lambda: out.append(serve(c, t)))
    runner.start()
    try:
        wait_until(lambda: c.passes == 1, 10, "the pass at start")
        c.wake(frozenset({"web"}), "test")
        wait_until(lambda: c.passes == 2 and c.idle.is_set(), 10, "the wake-up's pass")
        assert [job.id for job in t._sched.get_jobs()] == [SCHEDULE], "the one-off job is gone"
    finally:
        c.stop.set()
        runner.join(10)
    assert out == [0]
    assert [only for _, only in ran] == [None, frozenset({"web"})]
    assert all(name.startswith("ThreadPoolExecutor") for name, _ in ran), ran
