"""When the daemon's next scheduled pass is due: `interval` or `cron`, plus `jitter`.

One cron parser (cronsim) serves `agent check` and `agent run`, so a schedule that check accepts
always runs. Cron expressions are in the host's local time, like cron itself.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from loguru import logger

from agent.compat import UTC
from agent.config.cron import parse_cron

if TYPE_CHECKING:
    from agent.config import Schedule

_WAIT_CHUNK = 30.0  # wait in short slices, so a wall-clock jump (suspend, NTP step) is noticed


def local_zone() -> tzinfo:
    """The host's time zone ($TZ, else /etc/localtime), with its DST rules; UTC if neither is readable."""
    try:
        name = os.environ.get("TZ", "").lstrip(":")
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, KeyError):  # KeyError: ZoneInfoNotFoundError, an unknown $TZ
        return UTC


def next_cron(expr: str, after: float, zone: tzinfo) -> float:
    """The first time after `after` (epoch seconds) that `expr` matches, in `zone`."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(after, zone)
    return next(CronSim(parse_cron(expr), start)).timestamp()


class Ticker:
    """The schedule's thread: a pass at start, then one at each due time. Missed times coalesce.

    A pass that outlasts the interval skips the times it covered (never two passes at once).
    If the thread itself fails, `dead` is set and `stop` is raised, so the daemon exits non-zero.
    """

    def __init__(
        self,
        schedule: Schedule,
        fire: Callable[[], object],
        stop: threading.Event,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float], float] = lambda j: random.uniform(0, j),
        zone: tzinfo | None = None,
    ) -> None:
        if schedule.cron is not None:
            parse_cron(schedule.cron)  # the same check `agent check` made
        self.schedule = schedule
        self._fire = fire
        self._stop = stop
        self._clock = clock
        self._jitter = jitter
        self._zone = zone or local_zone()
        self._anchor = clock()
        self.dead: str | None = None
        self.next_at: float | None = None  # when the next scheduled pass is due (the status page shows it)
        self._thread: threading.Thread | None = None

    def next_due(self, now: float) -> float:
        """The next due time after `now`, jitter included."""
        s = self.schedule
        if s.cron is not None:
            due = next_cron(s.cron, now, self._zone)
        else:
            assert s.interval is not None
            due = self._anchor + (math.floor((now - self._anchor) / s.interval) + 1) * s.interval
        return due + (self._jitter(s.jitter) if s.jitter else 0.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name="scheduler", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _guarded(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - a dead schedule must stop the daemon, not hide
            self.dead = f"{type(e).__name__}: {e}"
            logger.opt(exception=e).critical("the scheduler stopped: {}; exiting so it is restarted", e)
            self._stop.set()

    def _loop(self) -> None:
        self._fire()
        while not self._stop.is_set():
            due = self.next_at = self.next_due(self._clock())
            while not self._stop.is_set() and (left := due - self._clock()) > 0:
                self._stop.wait(min(left, _WAIT_CHUNK))
            if self._stop.is_set():
                return
            self._fire()


def describe(s: Schedule) -> str:
    base = f"cron {s.cron!r} ({_zone_name()})" if s.cron else f"every {s.interval:g}s"
    return base + (f" (jitter {s.jitter:g}s)" if s.jitter else "")


def _zone_name() -> str:
    return datetime.now(local_zone()).strftime("%Z") or "local time"
