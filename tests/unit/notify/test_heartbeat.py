"""The dead-man's switch against a real HTTP receiver on loopback, and a black hole that never answers."""

from __future__ import annotations

import threading
import time

import pytest
from loguru import logger

from agent.config import parse
from agent.daemon import Coordinator
from agent.errors import ConfigError
from agent.model import Report, Result, Status
from agent.notify.heartbeat import Heartbeat, with_suffix, wrap
from agent.runlock import RunLock
from agent.secret import Secret, redact
from tests.support.receiver import BlackHole, Receiver

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
OK = Report((Result("web", "h/ns/web:latest", Status.UPDATED, A, B),))
BAD = Report((
    Result("web", "h/ns/web:latest", Status.ROLLED_BACK, A, B, "health check failed: HTTP 500"),
    Result("api", "h/ns/api:latest", Status.UP_TO_DATE, A, A),
))  # fmt: skip


def paths(rx: Receiver, n: int) -> list[str]:
    return [f"{h.method} {h.path}" for h in rx.wait(n)]


def test_a_successful_pass_pings_start_then_the_url(rx: Receiver) -> None:
    assert wrap(Secret(rx.url(path="/ping/abc")), lambda: OK) is OK
    assert paths(rx, 2) == ["POST /ping/abc/start", "POST /ping/abc"]


def test_a_failed_pass_pings_fail_with_the_summary(rx: Receiver) -> None:
    assert wrap(Secret(rx.url(path="/ping/abc")), lambda: BAD) is BAD
    start, fail = rx.wait(2)
    assert (start.path, fail.path) == ("/ping/abc/start", "/ping/abc/fail")
    assert (
        "1 rolled back" in fail.text and "web rolled back" in fail.text and "health check failed" in fail.text
    )
    assert "api" not in fail.text


def test_a_crashed_pass_pings_fail_and_the_crash_propagates(rx: Receiver) -> None:
    def crash() -> Report:
        raise RuntimeError("docker socket gone")

    with pytest.raises(RuntimeError):
        wrap(Secret(rx.url(path="/p")), crash)
    start, fail = rx.wait(2)
    assert fail.path == "/p/fail" and "pass crashed: docker socket gone" in fail.text


def test_no_url_no_ping() -> None:
    assert wrap(None, lambda: OK) is OK


def test_an_unreachable_url_holds_a_pass_no_longer_than_its_timeout() -> None:
    hole = BlackHole()
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        t0 = time.monotonic()
        report = Heartbeat(f"http://127.0.0.1:{hole.port}/s3cret", timeout=0.5).around(lambda: OK)
        elapsed = time.monotonic() - t0
    finally:
        logger.remove(sink)
        hole.close()
    assert report is OK
    assert elapsed < 2.5  # two pings of at most 0.5 s each, with room for a slow machine
    assert len(lines) == 2 and all("no answer within 0.5 s" in line or "timed out" in line for line in lines)
    assert not any("s3cret" in line for line in lines)


def test_a_refusing_receiver_is_a_warning_not_an_error() -> None:
    refusing = Receiver(status=503)
    try:
        assert Heartbeat(refusing.url()).ping("/start") is False
    finally:
        refusing.close()


def test_the_daemons_passes_ping_too(rx: Receiver, tmp_path: object) -> None:
    """`agent run` wraps each pass the same way (the Coordinator runs what it is given)."""
    from pathlib import Path

    url = Secret(rx.url(path="/hb"))
    coord = Coordinator(
        lambda only: wrap(url, lambda: OK), RunLock(Path(str(tmp_path)) / "l"), stop=threading.Event()
    )
    coord.run_pass(None, "schedule")
    coord.run_pass(None, "schedule")
    assert paths(rx, 4) == ["POST /hb/start", "POST /hb"] * 2


@pytest.mark.parametrize(
    ("url", "suffix", "expected"),
    [
        ("https://hc-ping.com/uuid", "/start", "https://hc-ping.com/uuid/start"),
        ("https://hc-ping.com/uuid/", "/fail", "https://hc-ping.com/uuid/fail"),
        ("https://h/ping/key/slug?create=1", "/start", "https://h/ping/key/slug/start?create=1"),
        ("https://h/uuid", "", "https://h/uuid"),
    ],
)
def test_with_suffix(url: str, suffix: str, expected: str) -> None:
    assert with_suffix(url, suffix) == expected


def test_heartbeat_url_config() -> None:
    w = {"watch": [{"container": "a", "image": "127.0.0.1:5000/ns/a"}]}
    cfg = parse({**w, "agent": {"heartbeat_url": "https://hc-ping.com/0b1c"}}, {})
    assert (
        cfg.agent.heartbeat_url == Secret("https://hc-ping.com/0b1c")
        and redact("https://hc-ping.com/0b1c") == "***"
    )
    assert "0b1c" not in repr(cfg)
    with pytest.raises(ConfigError) as e:
        parse({**w, "agent": {"heartbeat_url": "hc-ping.com/x"}}, {})
    assert "agent.heartbeat_url: expected an http:// or https:// URL" in str(e.value)
