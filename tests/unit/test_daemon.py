"""The daemon's coordinator: one pass at a time, wake-ups queued during a pass, bursts debounced."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.config import Schedule
from agent.daemon import Coordinator, make_trigger
from agent.errors import LockBusy
from agent.model import Report
from agent.runlock import RunLock
from tests.support.wait import wait_until


class Runner:
    def __init__(self) -> None:
        self.calls: list[frozenset[str] | None] = []
        self.active = 0
        self.max_active = 0
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, only: frozenset[str] | None) -> Report:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append(only)
        self.entered.set()
        self.release.wait(10)
        with self._lock:
            self.active -= 1
        return Report(())


@pytest.fixture
def coord(tmp_path: Path):
    runner = Runner()
    c = Coordinator(runner, RunLock(tmp_path / "lock"), debounce=0.2)
    c.start_worker()
    yield c, runner
    c.stop.set()
    runner.release.set()
    c.join()


def test_burst_of_wakeups_collapses_into_one_pass(coord) -> None:
    c, runner = coord
    for _ in range(50):
        c.wake(frozenset({"web"}), "test")
    wait_until(lambda: c.passes == 1, 5, "one pass")
    assert runner.calls == [frozenset({"web"})]
    time.sleep(0.5)  # a second pass would start within one debounce window; prove none does
    assert c.passes == 1


def test_wakeup_during_a_pass_is_queued_and_run_after_it(coord, tmp_path: Path) -> None:
    c, runner = coord
    runner.release.clear()
    t = threading.Thread(target=c.run_pass, args=(None, "schedule"))
    t.start()
    assert runner.entered.wait(5)
    c.wake(frozenset({"api"}), "hook")
    c.wake(frozenset({"web"}), "hook")
    time.sleep(0.4)  # longer than the debounce: the wake-up must wait for the running pass
    assert runner.calls == [None] and runner.active == 1
    runner.release.set()
    t.join(5)
    wait_until(lambda: c.passes == 2, 5, "the queued pass")
    assert runner.calls == [None, frozenset({"api", "web"})]
    assert runner.max_active == 1


def test_a_wake_for_everything_wins_over_named_targets(coord) -> None:
    c, runner = coord
    c.wake(frozenset({"web"}), "a")
    c.wake(None, "b")
    wait_until(lambda: c.passes == 1, 5, "one pass")
    assert runner.calls == [None]


def test_a_crashing_pass_does_not_kill_the_daemon(tmp_path: Path) -> None:
    def boom(only: frozenset[str] | None) -> Report:
        raise RuntimeError("kaboom")

    c = Coordinator(boom, RunLock(tmp_path / "lock"))
    assert c.run_pass(None, "test") is None
    assert c.health()["last_pass"]["error"] == "kaboom"  # type: ignore[index]
    assert c.run_pass(None, "again") is None


def test_file_lock_excludes_a_second_process_style_holder(tmp_path: Path) -> None:
    a, b = RunLock(tmp_path / "lock"), RunLock(tmp_path / "lock")
    with a, pytest.raises(LockBusy, match="holds"):
        b.acquire(blocking=False)
    with b:
        pass


def test_cron_weekday_numbers_follow_crontab_not_apscheduler() -> None:
    from datetime import UTC, datetime

    trig = make_trigger(Schedule(interval=None, cron="0 9 * * 0"))  # Sundays at 09:00
    nxt = trig.get_next_fire_time(None, datetime(2026, 11, 27, tzinfo=UTC))  # a Friday
    assert nxt.isoformat().startswith("2026-11-29T09:00")


def test_interval_trigger_with_jitter() -> None:
    trig = make_trigger(Schedule(interval=300, jitter=30))
    assert trig.interval.total_seconds() == 300 and trig.jitter == 30
