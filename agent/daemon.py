"""`agent run`: the schedule's ticker, webhook wake-ups, one run lock, graceful stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent.config import Config, WebhookSettings
from agent.errors import ConfigError, HostLockBusy, PassRunning
from agent.model import Report
from agent.reconcile.run import reconcile
from agent.runlock import RunLock
from agent.schedule import Ticker, describe

if TYPE_CHECKING:
    from agent.reconcile.run import Context


class Coordinator:
    """Runs passes one at a time. Wake-ups during a pass are queued and merged; bursts are debounced."""

    def __init__(
        self,
        run: Callable[[frozenset[str] | None], Report],
        lock: RunLock,
        *,
        debounce: float = WebhookSettings.debounce,
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
        self.idle = threading.Event()  # the worker waits for wake-ups and none is queued
        self.lock_waits = 0  # times a pass found the run lock taken (tests wait on it)

    # wake-ups (webhook): never block
    def wake(self, containers: frozenset[str] | None, reason: str) -> None:
        with self._cv:
            if containers is None:
                self._pending_all = True
            else:
                self._pending = (self._pending or set()) | set(containers)
            self._last_wake = time.monotonic()
            self.idle.clear()
            self._cv.notify_all()
        which = "all" if containers is None else ", ".join(sorted(containers))
        logger.bind(event="wake.queued", reason=reason, containers=which).info(
            "wake-up queued ({}): {}", reason, which
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
                self.idle.set()
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
            except PassRunning:  # acquire already waited its second on the thread lock
                self.lock_waits += 1
            except HostLockBusy as e:
                self.lock_waits += 1
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


class Daemon:
    """`agent run`: `start` builds and starts everything, `run` waits, `stop` tears down (idempotent).

    The first SIGTERM/SIGINT lets the current step finish; a second one exits at once. The signal
    handlers that were in place before `start` are restored by `stop`.
    """

    def __init__(self, cfg: Config, build: Callable[..., Context]) -> None:
        self.cfg = cfg
        self._build = build  # the composition root's build_context(cfg, stop=, metrics=)
        self.stop_event = threading.Event()
        self.coord: Coordinator | None = None
        self.ticker: Ticker | None = None
        self._ctx: Context | None = None
        self._servers: list[Any] = []
        self._saved: dict[int, Any] = {}

    def start(self) -> None:
        from agent.metrics import Metrics  # prometheus-client: only with metrics

        cfg = self.cfg
        metrics = Metrics()
        ctx = self._ctx = self._build(cfg, stop=self.stop_event, metrics=metrics)
        lock = RunLock(cfg.agent.state_dir / "agent.lock")
        debounce = cfg.webhook.debounce if cfg.webhook else WebhookSettings.debounce
        from agent.notify.heartbeat import wrap  # only a configured heartbeat pays for urllib

        beat = self.cfg.agent.heartbeat_url
        coord = self.coord = Coordinator(
            lambda only: wrap(beat, lambda: reconcile(ctx, only=only)),
            lock,
            debounce=debounce,
            stop=self.stop_event,
        )
        self.ticker = Ticker(cfg.agent.schedule, lambda: coord.run_pass(None, "schedule"), self.stop_event)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._saved[sig] = signal.signal(sig, self._on_signal)
        if cfg.webhook or cfg.metrics:
            from agent.webhook.server import start_listeners  # h11: only with listeners

            try:
                self._servers = start_listeners(cfg, coord, coord.health, metrics, self.status)
            except ConfigError:
                self.stop()
                raise
        logger.info(
            "agent running: {} watch entries, schedule {}", len(cfg.watches), describe(cfg.agent.schedule)
        )

    def status(self) -> dict[str, Any]:
        """The status page's data: what the last passes recorded in state.db, and the daemon's health."""
        from agent import __version__
        from agent.ui.snapshot import snapshot

        assert self.coord is not None and self.ticker is not None and self._ctx is not None, "start() first"
        h = self.coord.health()
        last = {k: v for k, v in (self.coord.last or {}).items() if k != "results"}
        agent = {
            "version": __version__, "uptime": h["uptime"], "scheduler": h["scheduler"], "healthy": h["healthy"],
            "pass_running": h["pass_running"], "passes": h["passes"], "last_pass": last or None,
            "next_pass": self.ticker.next_at, "schedule": describe(self.cfg.agent.schedule),
        }  # fmt: skip
        return snapshot(self.cfg, self._ctx.state, agent)

    def run(self) -> int:
        """Until stopped. Non-zero when the schedule's thread died, so systemd restarts us."""
        assert self.coord is not None and self.ticker is not None, "start() first"
        try:
            return serve(self.coord, self.ticker)
        finally:
            self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
        if self._ctx is not None:
            self._ctx.state.close()
            self._ctx = None
            logger.info("stopped")
        saved, self._saved = self._saved, {}
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop_event.is_set():
            logger.warning("{} received again: exiting now, without waiting for the current step", name)
            os._exit(128 + signum)
        logger.info("{} received: finishing the current step, then stopping", name)
        self.stop_event.set()


def run_daemon(cfg: Config, build: Callable[..., Context]) -> int:
    daemon = Daemon(cfg, build)
    daemon.start()
    return daemon.run()


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
