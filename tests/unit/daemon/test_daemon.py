"""The daemon's coordinator: one pass at a time, wake-ups queued during a pass, bursts debounced."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from agent.config import Config, Schedule
from agent.daemon import Coordinator, serve
from agent.daemon.scheduler import Ticker
from agent.deploy import Deployer
from agent.errors import HostLockBusy, LockBusy, PassRunning
from agent.model import Report
from agent.runlock import RunLock
from agent.state import State
from tests.support.fakes import FakeRegistry, FakeRuntime
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
    # idle: the worker waits for wake-ups with none queued, so no second pass can follow
    wait_until(lambda: c.passes == 1 and c.idle.is_set(), 5, "one pass, then an idle worker")
    assert runner.calls == [frozenset({"web"})]


def test_wakeup_during_a_pass_is_queued_and_run_after_it(coord, tmp_path: Path) -> None:
    c, runner = coord
    runner.release.clear()
    t = threading.Thread(target=c.run_pass, args=(None, "schedule"))
    t.start()
    assert runner.entered.wait(5)
    c.wake(frozenset({"api"}), "hook")
    c.wake(frozenset({"web"}), "hook")
    # the worker took the wake-ups and now waits for the run lock the running pass holds
    wait_until(lambda: c.lock_waits >= 1, 5, "the worker waiting for the run lock")
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


def test_the_run_lock_says_which_holder_by_type(tmp_path: Path) -> None:
    """Issue 10: the daemon told the two apart by matching "this process" in the message."""
    a, b = RunLock(tmp_path / "lock"), RunLock(tmp_path / "lock")
    with a:
        with pytest.raises(PassRunning):
            a.acquire(blocking=False)
        with pytest.raises(HostLockBusy):
            b.acquire(blocking=False)
    assert issubclass(PassRunning, LockBusy) and issubclass(HostLockBusy, LockBusy)


class BusyLock:
    """Refuses with the given errors (whatever their text), then lets the pass in."""

    def __init__(self, *errors: LockBusy) -> None:
        self.errors = list(errors)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> None:
        if self.errors:
            raise self.errors.pop(0)

    def release(self) -> None:
        pass


@pytest.mark.parametrize(("error", "waits_logged"), [(PassRunning("busy"), 0), (HostLockBusy("busy"), 1)])
def test_the_daemon_logs_waiting_only_for_another_process(error: LockBusy, waits_logged: int) -> None:
    lines: list[Any] = []
    sink = logger.add(lines.append, level="INFO", format="{message}")
    try:
        runner = Runner()
        c = Coordinator(runner, BusyLock(error))  # type: ignore[arg-type]
        c.run_pass(None, "test")
    finally:
        logger.remove(sink)
    assert runner.calls == [None] and c.lock_waits == 1
    assert sum("waiting for the run lock" in str(m) for m in lines) == waits_logged


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

    def jitter(most: float) -> float:  # the next due time fails, as an overflowing timer once did
        raise OverflowError("timestamp too large to convert to C _PyTime_t")

    t = Ticker(Schedule(interval=1, jitter=1), lambda: c.run_pass(None, "schedule"), c.stop, jitter=jitter)
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


CHILD = """
import sys, threading
from pathlib import Path
from agent import logs
from agent.config import load
from agent.daemon import Daemon
from agent.deploy import Deployer
from agent.reconcile.run import Context
from agent.state import State
from tests.support.fakes import FakeRuntime

class StuckRegistry:  # the first pass hangs in a registry lookup that ignores the stop request
    def latest(self, repo, tags):
        print("pass started", flush=True)
        threading.Event().wait()

def build(cfg, stop=None, metrics=None):
    rt, state = FakeRuntime(), State(cfg.agent.state_dir)
    return Context(cfg, {"registry": StuckRegistry()}, rt, state, Deployer(rt, state, stop=stop))

logs.setup("INFO", False)
daemon = Daemon(load(Path(sys.argv[1])), build)
daemon.start()
sys.exit(daemon.run())
"""


def daemon_config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nstate_dir = "{tmp_path}/state"\ninterval = "1h"\n'
        '[[watch]]\ncontainer = "web"\nimage = "127.0.0.1:5000/ns/web:latest"\nsource = "registry"\n'
    )
    return path


def test_a_second_sigterm_exits_at_once_while_the_first_waits_for_the_step(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(daemon_config(tmp_path))],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline() == "pass started\n"
            child.send_signal(signal.SIGTERM)
            err = child.stderr
            assert err is not None
            seen = ""
            while "waiting for the current pass" not in seen:  # stopping, but the pass is still stuck
                line = err.readline()
                assert line, f"the daemon exited after one SIGTERM: {seen}"
                seen += line
            assert child.poll() is None
            child.send_signal(signal.SIGTERM)
            assert child.wait(10) == 128 + signal.SIGTERM
            assert "received again: exiting now" in seen + err.read()
        finally:
            child.kill()


def test_stop_restores_the_signal_handlers_that_were_there_before(tmp_path: Path) -> None:
    from agent.config import load
    from agent.daemon import Daemon
    from agent.reconcile.run import Context

    def build(cfg: Config, stop: threading.Event | None = None, metrics: object = None) -> Context:
        state = State(cfg.agent.state_dir)
        runtime = FakeRuntime()
        return Context(cfg, {"registry": FakeRegistry({})}, runtime, state, Deployer(runtime, state))

    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected to be called")

    before = signal.signal(signal.SIGTERM, mine)
    try:
        d = Daemon(load(daemon_config(tmp_path)), build)
        d.start()
        assert signal.getsignal(signal.SIGTERM) not in (mine, before)
        d.stop_event.set()  # as the first SIGTERM does
        assert d.run() == 0
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("listener", [False, True], ids=["no-listener", "metrics-listener"])
def test_metrics_are_counted_only_where_a_listener_serves_them(tmp_path: Path, listener: bool) -> None:
    from agent.config import load
    from agent.daemon import Daemon
    from agent.metrics import Metrics
    from agent.reconcile.run import Context
    from tests.support.images import free_port

    given: list[object] = []

    def build(cfg: Config, stop: threading.Event | None = None, metrics: object = None) -> Context:
        given.append(metrics)
        state = State(cfg.agent.state_dir)
        runtime = FakeRuntime()
        return Context(cfg, {"registry": FakeRegistry({})}, runtime, state, Deployer(runtime, state))

    path = daemon_config(tmp_path)
    if listener:
        path.write_text(path.read_text() + f'[metrics]\nlisten = "127.0.0.1:{free_port()}"\n')
    d = Daemon(load(path), build)
    d.start()
    d.stop_event.set()
    assert d.run() == 0
    assert isinstance(given[0], Metrics) if listener else given == [None]  # nothing would ever read them
