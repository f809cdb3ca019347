"""`agent run`: the scheduled pass and wake-ups on one scheduler, one run lock, graceful stop, SIGHUP."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent import __version__, logs
from agent.config import Config, WebhookSettings
from agent.daemon.schedule import describe
from agent.errors import ConfigError, HostLockBusy, PassRunning
from agent.model import Report
from agent.reconcile.run import reconcile
from agent.runlock import RunLock

if TYPE_CHECKING:
    from agent.daemon.scheduler import Ticker
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
        self._ticker: Ticker | None = None  # the scheduler the wake-up jobs run on
        self._draining = False  # a wake-up job is queued or runs: later wake-ups join it
        self.passes = 0
        self.running = False
        self.last: dict[str, Any] = {}
        self.started = time.time()
        self.scheduler_dead: str | None = None  # why the scheduler stopped, if it did
        self.idle = threading.Event()  # no wake-up is queued and no wake-up job runs
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
            kick = self._ticker is not None and not self._draining
            self._draining = self._draining or kick
        which = "all" if containers is None else ", ".join(sorted(containers))
        logger.bind(event="wake.queued", reason=reason, containers=which).info(
            "wake-up queued ({}): {}", reason, which
        )
        if kick:
            self._kick()

    def _kick(self) -> None:
        assert self._ticker is not None
        self._ticker.soon(self._drain, "wake-up pass")

    def start_worker(self, ticker: Ticker | None = None) -> None:
        """Start the scheduler wake-ups run on: the daemon's (`ticker`), else one of their own."""
        if ticker is None:
            from agent.daemon.scheduler import Ticker  # APScheduler: `agent run` only

            ticker = Ticker(None, lambda: None, self.stop)
        self._ticker = ticker
        ticker.start()
        with self._cv:
            kick = bool(self._pending_all or self._pending) and not self._draining
            self._draining = self._draining or kick
            if not kick and not self._draining:
                self.idle.set()
        if kick:
            self._kick()

    def join(self) -> None:
        """Stop the scheduler once the jobs that run have ended (call after `stop` is set)."""
        if self._ticker is not None:
            self._ticker.join()

    def _take(self) -> frozenset[str] | None | bool:
        """The queued wake-ups after a quiet debounce window (at most 5 windows), merged; False if none."""
        with self._cv:
            if not (self._pending_all or self._pending):
                self._draining = False  # under the lock: a wake-up from now on starts a new job
                self.idle.set()
                return False
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
                self._draining = False
                logger.info(
                    "shutting down: dropped queued wake-ups ({})", "all" if targets is None else len(targets)
                )
                return False
            return targets

    def _drain(self) -> None:
        """The wake-up job (one at a time): a pass per batch of wake-ups until none is queued."""
        while True:
            try:
                targets = self._take()
                if targets is False:
                    return
                assert targets is None or isinstance(targets, frozenset)
                self.run_pass(targets, "wake-up")
            except Exception as e:  # the job must outlive any one failure
                logger.exception("wake-up pass: {}", e)
                self.stop.wait(1.0)

    # passes (scheduler and worker)
    def between_passes(self, what: Callable[[], object], reason: str) -> bool:
        """Run `what` holding the run lock, so never during a pass; False if stopped first."""
        if not self._acquire(reason):
            return False
        try:
            what()
            return True
        finally:
            self._lock.release()

    def _acquire(self, reason: str) -> bool:
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
                return False
        else:
            return False
        return True

    def run_pass(self, only: frozenset[str] | None, reason: str) -> Report | None:
        if not self._acquire(reason):
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
                "time": t0,
                "finished": time.time(),
                "duration": round(time.time() - t0, 3),
                "ok": report.ok,
                "reason": reason,
                "results": {r.container: r.status.value for r in report.results},
            }
            return report
        finally:
            self.running = False
            self._lock.release()

    def health(self) -> dict[str, object]:
        ticker = self._ticker
        dead = self.scheduler_dead or (ticker.dead if ticker else None)
        alive = ticker is None or ticker.alive() or self.stop.is_set()
        problem: dict[str, object] = {}
        if not alive:
            problem = {"status": "degraded", "error": "the scheduler's thread stopped"}
        if dead:
            problem = {"status": "degraded", "error": f"the scheduler stopped: {dead}"}
        warning = ticker.warning if ticker else None
        return {
            **problem,
            **({"warning": warning} if warning else {}),
            "healthy": not problem,  # false turns /healthz 503
            "scheduler": "dead" if dead else "running",
            "worker_alive": alive,
            "uptime": round(time.time() - self.started, 1),
            "passes": self.passes,
            "pass_running": self.running,
            "last_pass": self.last or None,
        }


class Daemon:
    """`agent run`: `start` builds and starts everything, `run` waits, `stop` tears down (idempotent).

    The first SIGTERM/SIGINT lets the current step finish; a second one exits at once. SIGHUP reloads
    the config file between passes (`agent.daemon.reload`). The handlers only set flags; the signal
    handlers that were in place before `start` are restored by `stop`.
    """

    def __init__(self, cfg: Config, build: Callable[..., Context]) -> None:
        self.cfg = cfg  # `cfg.path` is the file SIGHUP reads again
        self._build = build  # the composition root's build_context(cfg, stop=, metrics=)
        self.stop_event = threading.Event()
        self.reload_wanted = threading.Event()
        self._reloading = False  # a reload job is queued or runs: another SIGHUP waits for it
        self.coord: Coordinator | None = None
        self.ticker: Ticker | None = None
        self._ctx: Context | None = None
        self._metrics: Any = None
        self._servers: list[Any] = []
        self._saved: dict[int, Any] = {}

    def start(self) -> None:
        from agent.daemon.scheduler import Ticker  # APScheduler: `agent run` only
        from agent.notify.heartbeat import wrap  # only a configured heartbeat pays for urllib

        cfg = self.cfg
        if cfg.webhook or cfg.metrics:  # a listener serves them; listeners start only here, never on reload
            from agent.metrics import Metrics  # prometheus-client (~2 MiB): only when something serves it

            self._metrics = Metrics()
        self._ctx = self._build(cfg, stop=self.stop_event, metrics=self._metrics)
        lock = RunLock(cfg.agent.state_dir / "agent.lock")
        debounce = cfg.webhook.debounce if cfg.webhook else WebhookSettings.debounce

        def one_pass(only: frozenset[str] | None) -> Report:
            ctx = self._ctx  # the one the last reload swapped in
            assert ctx is not None
            return wrap(self.cfg.agent.heartbeat_url, lambda: reconcile(ctx, only=only))

        coord = self.coord = Coordinator(one_pass, lock, debounce=debounce, stop=self.stop_event)
        self.ticker = Ticker(cfg.agent.schedule, lambda: coord.run_pass(None, "schedule"), self.stop_event)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._saved[sig] = signal.signal(sig, self._on_signal)
        self._saved[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        if cfg.webhook or cfg.metrics:
            from agent.webhook.server import start_listeners  # h11: only with listeners

            try:
                self._servers = start_listeners(cfg, coord, coord.health, self._metrics, self.status)
            except ConfigError:
                self.stop()
                raise
        logger.info(
            "agent running: {} watch entries, schedule {}",
            len(cfg.watches),
            describe(cfg.agent.schedule),
        )

    def status(self) -> dict[str, Any]:
        """The status page's data: what the last passes recorded in state.db, and the daemon's health."""
        from agent.ui.snapshot import snapshot  # the page's data: only when a page is asked for

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
        """Until stopped. Non-zero when the scheduler died, so systemd restarts us."""
        assert self.coord is not None and self.ticker is not None, "start() first"
        try:
            return serve(self.coord, self.ticker, self._reload_if_wanted)
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
        if self.stop_event.is_set():  # no loguru here: the interrupted code may hold its sink's lock
            try:
                logs.last_words(
                    "WARNING", f"{name} received again: exiting now, without waiting for the current step"
                )
            finally:
                os._exit(128 + signum)
        self.stop_event.set()
        logs.last_words("INFO", f"{name} received: finishing the current step, then stopping")

    def _on_hup(self, _signum: int, _frame: Any) -> None:
        self.reload_wanted.set()

    def _reload_if_wanted(self) -> None:
        """From the main loop: a SIGHUP's reload, as a job on the scheduler that waits for the pass."""
        if self.reload_wanted.is_set() and not self._reloading and self.ticker is not None:
            self.reload_wanted.clear()
            self._reloading = True
            logger.info("SIGHUP received: reloading {} once no pass runs", self.cfg.path)
            self.ticker.soon(self._reload_job, "config reload")

    def _reload_job(self) -> None:
        try:
            self.reload()
        except Exception as e:  # a reload must never stop the daemon
            logger.exception("SIGHUP: the reload failed, the running config stays: {}", e)
        finally:
            self._reloading = False

    def reload(self) -> bool:
        """Read and check the config file again; swap it in between passes. False if it was refused."""
        from agent.daemon.reload import reload  # h11 and the webhook server: only on SIGHUP

        assert self.coord is not None
        return reload(self)


def run_daemon(cfg: Config, build: Callable[..., Context]) -> int:
    daemon = Daemon(cfg, build)
    daemon.start()
    return daemon.run()


def serve(coord: Coordinator, ticker: Ticker, each_second: Callable[[], None] = lambda: None) -> int:
    """Run until `coord.stop` is set. Non-zero when the scheduler died, so systemd restarts us."""
    coord.start_worker(ticker)  # starts the scheduler: the pass at start, then the schedule
    try:
        while not coord.stop.wait(1.0):
            each_second()
            if not ticker.alive() and not coord.stop.is_set():
                ticker.dead = ticker.dead or "its thread ended"
                break
    finally:
        if ticker.dead:
            coord.scheduler_dead = ticker.dead
            coord.stop.set()
        logger.info("stopping: waiting for the current pass to finish")
        coord.join()
    return 1 if ticker.dead else 0
