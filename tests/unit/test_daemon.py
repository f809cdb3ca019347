"""The daemon's coordinator: one pass at a time, wake-ups queued during a pass, bursts debounced."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agent.config import Schedule
from agent.daemon import Coordinator, serve
from agent.errors import LockBusy
from agent.model import Report
from agent.runlock import RunLock
from agent.schedule import Ticker
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


def test_the_ticker_passes_at_start_then_on_schedule_until_stopped(tmp_path: Path) -> None:
    stop = threading.Event()
    fired: list[float] = []
    t = Ticker(Schedule(interval=1), lambda: fired.append(time.monotonic()), stop)
    t.start()
    wait_until(lambda: len(fired) >= 2, 10, "a pass at start and one a second later")
    stop.set()
    t.join(5)
    assert not t.alive() and t.dead is None


def test_a_dead_scheduler_stops_the_daemon_with_exit_1_and_healthz_says_so(tmp_path: Path) -> None:
    """Issue 9 item 13: the scheduler thread died silently and the daemon never polled again."""
    runner = Runner()
    c = Coordinator(runner, RunLock(tmp_path / "lock"))
    clock_calls = iter([100.0, 100.0])

    def clock() -> float:  # the third reading fails, as an overflowing timer once did
        try:
            return next(clock_calls)
        except StopIteration:
            raise OverflowError("timestamp too large to convert to C _PyTime_t") from None

    t = Ticker(Schedule(interval=1), lambda: c.run_pass(None, "schedule"), c.stop, clock=clock)
    assert serve(c, t) == 1
    assert runner.calls == [None]  # the pass at start ran; then the thread died
    health = c.health()
    assert health["scheduler"] == "dead" and health["status"] == "degraded"
    assert "OverflowError" in str(health["error"])


def test_a_clean_stop_exits_0_and_healthz_says_the_scheduler_runs(tmp_path: Path) -> None:
    runner = Runner()
    c = Coordinator(runner, RunLock(tmp_path / "lock"))

    def pass_then_sigterm() -> None:
        c.run_pass(None, "schedule")
        c.stop.set()

    t = Ticker(Schedule(interval=3600), pass_then_sigterm, c.stop)
    assert c.health()["scheduler"] == "running" and "status" not in c.health()
    assert serve(c, t) == 0
    assert runner.calls == [None]
