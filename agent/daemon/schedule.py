"""When the daemon's next scheduled pass is due: `interval` or `cron`, plus `jitter`.

One cron parser (cronsim) serves `agent check` and `agent run`, so a schedule that check accepts
always runs. Cron expressions are in the host's local time, like cron itself. No APScheduler here:
`agent check` imports this module; `agent.daemon.scheduler` (only `agent run`) turns it into a trigger.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.compat import UTC
from agent.config.cron import parse_cron

if TYPE_CHECKING:
    from agent.config import Schedule


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


class DueTimes:
    """When the next scheduled pass is due: cron (Debian semantics) or a fixed interval grid, plus jitter.

    Pure: `agent.daemon.scheduler` runs it as an APScheduler trigger. The interval grid is anchored at
    construction; jitter only delays a due time and never moves the grid.
    """

    def __init__(
        self,
        schedule: Schedule,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float], float] = lambda j: random.uniform(0, j),
        zone: tzinfo | None = None,
    ) -> None:
        if schedule.cron is not None:
            parse_cron(schedule.cron)  # the same check `agent check` made
        self.schedule = schedule
        self._jitter = jitter
        self.zone = zone or local_zone()
        self._anchor = clock()

    def next_due(self, now: float) -> float:
        """The next due time after `now`, jitter included. Missed times coalesce into this one."""
        s = self.schedule
        if s.cron is not None:
            due = next_cron(s.cron, now, self.zone)
        else:
            assert s.interval is not None
            due = self._anchor + (math.floor((now - self._anchor) / s.interval) + 1) * s.interval
        return due + (self._jitter(s.jitter) if s.jitter else 0.0)


def describe(s: Schedule) -> str:
    base = f"cron {s.cron!r} ({_zone_name()})" if s.cron else f"every {s.interval:g}s"
    return base + (f" (jitter {s.jitter:g}s)" if s.jitter else "")


def _zone_name() -> str:
    return datetime.now(local_zone()).strftime("%Z") or "local time"
