"""One cron parser: whatever `agent check` accepts, `agent run` schedules, with standard cron semantics."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from agent.compat import UTC
from agent.config import Schedule, parse
from agent.daemon.scheduler import Ticker
from agent.errors import ConfigError

IMG = "127.0.0.1:5000/ns/web:latest"  # a plain registry: no credentials needed
FRIDAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()


def check(expr: str) -> list[str]:
    """What `agent check` says about [agent] cron = expr: no problems, or the list of them."""
    try:
        parse({"agent": {"cron": expr}, "watch": [{"container": "web", "image": IMG}]}, {"X": "1"})
    except ConfigError as e:
        return e.problems
    return []


def run(expr: str, n: int = 4) -> list[str]:
    """The next `n` times `agent run` would pass, as 'Sun 29 03:00' (UTC, no jitter)."""
    t = Ticker(Schedule(None, expr), lambda: None, threading.Event(), clock=lambda: FRIDAY_NOON, zone=UTC)
    out, now = [], FRIDAY_NOON
    for _ in range(n):
        now = t.next_due(now)
        out.append(datetime.fromtimestamp(now, UTC).strftime("%a %d %H:%M"))
    return out


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("*/5 * * * *", ["Fri 27 12:05", "Fri 27 12:10", "Fri 27 12:15", "Fri 27 12:20"]),
        ("0 3 * * 7", ["Sun 29 03:00", "Sun 06 03:00", "Sun 13 03:00", "Sun 20 03:00"]),
        ("0 3 * * 0", ["Sun 29 03:00", "Sun 06 03:00", "Sun 13 03:00", "Sun 20 03:00"]),
        ("0 3 * * 0-2", ["Sun 29 03:00", "Mon 30 03:00", "Tue 01 03:00", "Sun 06 03:00"]),
        ("0 3 * * */2", ["Sat 28 03:00", "Sun 29 03:00", "Tue 01 03:00", "Thu 03 03:00"]),  # 0,2,4,6
        ("0 3 * * 1-5/2", ["Mon 30 03:00", "Wed 02 03:00", "Fri 04 03:00", "Mon 07 03:00"]),  # 1,3,5
        ("0 3 * * mon-fri", ["Mon 30 03:00", "Tue 01 03:00", "Wed 02 03:00", "Thu 03 03:00"]),
        ("@daily", ["Sat 28 00:00", "Sun 29 00:00", "Mon 30 00:00", "Tue 01 00:00"]),
        ("@hourly", ["Fri 27 13:00", "Fri 27 14:00", "Fri 27 15:00", "Fri 27 16:00"]),
    ],
)
def test_check_accepts_and_run_schedules_with_standard_cron_semantics(expr: str, expected: list[str]) -> None:
    assert check(expr) == []
    assert run(expr) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("*/5 * * *", "a cron expression has 5 fields (minute hour day month weekday), got 4"),
        ("0 3 * * * *", "got 6"),
        ("61 * * * *", "invalid cron expression '61 * * * *': Bad minute"),
        ("0 3 * * 8", "invalid cron expression '0 3 * * 8': Bad day-of-week"),
        ("0 3 30 2 *", "invalid cron expression '0 3 30 2 *': Bad day-of-month"),  # never fires
        ("0 3 * * funday", "Bad day-of-week"),
        ("@fortnightly", "unknown cron nickname '@fortnightly' (known: @yearly"),
        ("", "got 0"),
    ],
)
def test_invalid_expressions_are_refused_by_check_and_run_alike(expr: str, message: str) -> None:
    (problem,) = check(expr)
    assert problem.startswith("agent.cron: ") and message in problem, problem
    with pytest.raises(ValueError, match="cron") as e:
        run(expr)
    assert message in str(e.value)


def test_cron_follows_the_given_time_zone() -> None:
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    t = Ticker(Schedule(None, "0 3 * * *"), lambda: None, threading.Event(), zone=shanghai)
    due = t.next_due(FRIDAY_NOON)  # 20:00 in Shanghai
    assert datetime.fromtimestamp(due, shanghai).strftime("%a %d %H:%M") == "Sat 28 03:00"


def test_interval_passes_stay_on_their_grid_and_jitter_only_delays() -> None:
    t = Ticker(Schedule(300, None, jitter=30), lambda: None, threading.Event(), clock=lambda: 1000.0,
               jitter=lambda j: j)  # fmt: skip
    assert t.next_due(1000.0) == 1000 + 300 + 30
    assert t.next_due(1299.0) == 1300 + 30
    assert t.next_due(1000.0 + 3 * 300 + 1) == 1000 + 4 * 300 + 30  # missed times coalesce into one
    plain = Ticker(Schedule(300, None), lambda: None, threading.Event(), clock=lambda: 1000.0)
    assert plain.next_due(1000.0) == 1300


def test_an_unknown_tz_falls_back_to_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.daemon.schedule import local_zone

    monkeypatch.setenv("TZ", "Nowhere/Atlantis")
    assert local_zone() is UTC
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    assert str(local_zone()) == "Asia/Shanghai"
