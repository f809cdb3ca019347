"""`agent run`: the schedule's ticker, webhook wake-ups, one run lock, graceful stop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from agent.config import Config
from agent.errors import ConfigError, LockBusy
from agent.model import Report
from agent.runlock import RunLock
from agent.schedule import Ticker, describe


class Coordinator:
    """Runs passes one at a time. Wake-ups during a pass are queued and merged; bursts are debounced."""

    def __init__(
        self,
        run: Callable[[frozenset[str] | None], Report],
        lock: RunLock,
        *,
        debounce: float = 0.5,
        stop: threading.Event | None = None,
    ) -> None:
        self._run = run
        self._lock = lock
        self._debounce = debounce
        self.stop = stop or threading.Event()
        self._cv = threading.Condition()
        self._pending: set[str] | None = None
        self._pending_all = False
        self._last_wake = 0.0
        self._worker: threading.Thread | None = None
        self.passes = 0
        self.running = False
        self.last: dict[str, Any] = {}
        self.started = time.time()
        self.scheduler_dead: str | None = None  # why the schedule's thread stopped, if it did

    # wake-ups (webhook): never block
    def wake(self, containers: frozenset[str] | None, reason: str) -> None:
        with self._cv:
            if containers is None:
                self._pending_all = True
            else:
                self._pending = (self._pending or set()) | set(containers)
            self._last_wake = time.monotonic()
            self._cv.notify_all()
        logger.info(
            "wake-up queued ({}): {}", reason, "all" if containers is None else ", ".join(sorted(containers))
        )

    def start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name="wake-worker", daemon=True)
        self._worker.start()

    def join(self) -> None:
        if self._worker is not None:
            self._worker.join()

    def _take(self) -> frozenset[str] | None | bool:
        """Wait for queued wake-ups, then a quiet debounce window (at most 5 windows); merge the targets."""
        with self._cv:
            while not self._pending_all and not self._pending:
                if self.stop.is_set():
                    return False
                self._cv.wait(0.5)
            first = time.monotonic()
            while True:
                quiet_until = self._last_wake + self._debounce
                now = time.monotonic()
                if now >= quiet_until or now - first >= 5 * self._debounce or self.stop.is_set():
                    break
                self._cv.wait(quiet_until - now)
            targets = None if self._pending_all else frozenset(self._pending or ())
            self._pending, self._pending_all = None, False
            if self.stop.is_set():
                logger.info(
                    "shutting down: dropped queued wake-ups ({})", "all" if targets is None else len(targets)
                )
                return False
            return targets

    def _work(self) -> None:
        while not self.stop.is_set():
            try:
                targets = self._take()
                if targets is False:
                    return
                assert targets is None or isinstance(targets, frozenset)
                self.run_pass(targets, "wake-up")
            except Exception as e:  # the worker must outlive any one failure
                logger.exception("wake-up worker: {}", e)
                self.stop.wait(1.0)

    # passes (scheduler and worker)
    def run_pass(self, only: frozenset[str] | None, reason: str) -> Report | None:
        while not self.stop.is_set():
            try:
                self._lock.acquire(blocking=True, timeout=1.0)
                break
            except LockBusy as e:
                if "this process" not in str(e):
                    logger.info("waiting for the run lock: {}", e)
                    self.stop.wait(1.0)
            except Exception as e:  # e.g. the lock file cannot be written: say so, keep the daemon up
                logger.error("cannot take the run lock: {}", e)
                self.last = {"time": time.time(), "ok": False, "error": f"run lock: {e}", "reason": reason}
                return None
        else:
            return None
        try:
            self.running = True
            logger.bind(event="pass.start", reason=reason).info("pass started ({})", reason)
            t0 = time.time()
            try:
                report = self._run(only)
            except Exception as e:  # a pass must never kill the daemon
                logger.exception("pass crashed: {}", e)
                self.last = {
                    "time": t0,
                    "finished": time.time(),
                    "ok": False,
                    "error": str(e),
                    "reason": reason,
                }
                return None
            self.passes += 1
            self.last = {
                "time": t0, "finished": time.time(), "duration": round(time.time() - t0, 3), "ok": report.ok,
                "reason": reason, "results": {r.container: r.status.value for r in report.results},
            }  # fmt: skip
            return report
        finally:
            self.running = False
            self._lock.release()

    def health(self) -> dict[str, object]:
        alive = self._worker is None or self._worker.is_alive() or self.stop.is_set()
        problem = {}
        if not alive:
            problem = {"status": "degraded", "error": "the wake-up worker stopped"}
        if self.scheduler_dead:
            problem = {"status": "degraded", "error": f"the scheduler stopped: {self.scheduler_dead}"}
        return {
            **problem,
            "healthy": not problem,  # false turns /healthz 503
            "scheduler": "dead" if self.scheduler_dead else "running",
            "worker_alive": alive,
            "uptime": round(time.time() - self.started, 1),
            "passes": self.passes,
            "pass_running": self.running,
            "last_pass": self.last or None,
        }


def run_daemon(cfg: Config) -> int:
    from agent.cli import build_context
    from agent.metrics import Metrics
    from agent.reconcile import reconcile

    stop = threading.Event()
    metrics = Metrics()
    ctx = build_context(cfg, stop=stop, metrics=metrics)
    lock = RunLock(cfg.agent.state_dir / "agent.lock")
    debounce = cfg.webhook.debounce if cfg.webhook else 0.5
    coord = Coordinator(lambda only: reconcile(ctx, only=only), lock, debounce=debounce, stop=stop)

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            logger.info("{} received: finishing the current step, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ticker = Ticker(cfg.agent.schedule, lambda: coord.run_pass(None, "schedule"), stop)
    servers: list[Any] = []
    if cfg.webhook or cfg.metrics:
        from agent.webhook.server import start_listeners

        try:
            servers = start_listeners(cfg, coord, coord.health, metrics)
        except ConfigError:
            ctx.state.close()
            raise
    logger.info(
        "agent running: {} watch entries, schedule {}", len(cfg.watches), describe(cfg.agent.schedule)
    )
    try:
        return serve(coord, ticker)
    finally:
        for server in servers:
            server.stop()
        ctx.state.close()
        logger.info("stopped")


def serve(coord: Coordinator, ticker: Ticker) -> int:
    """Run until `coord.stop` is set. Non-zero when the schedule's thread died, so systemd restarts us."""
    coord.start_worker()
    ticker.start()
    try:
        while not coord.stop.wait(1.0):
            if not ticker.alive() and not coord.stop.is_set():
                ticker.dead = ticker.dead or "the thread ended"
                break
    finally:
        if ticker.dead:
            coord.scheduler_dead = ticker.dead
            coord.stop.set()
        logger.info("stopping: waiting for the current pass to finish")
        ticker.join()
        coord.join()
    return 1 if ticker.dead else 0
