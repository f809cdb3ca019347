"""Failures, slowness and load: the server keeps serving.

The Waker is a hand-written fake that records its calls (and can block or fail on demand).
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest

from tests.support.wait import wait_until
from tests.unit.webhook.support import (
    HOOK,
    TOKEN,
    FakeWaker,
    Running,
    acr_payload,
    raw_status,
    read_raw,
)

# -- failures, slowness, load -------------------------------------------------------------


def test_a_failing_waker_gets_a_json_500_and_the_server_keeps_serving(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """An exception in a handler is a logged 500 with a JSON body; the next request is served normally."""
    run = make(waker=FakeWaker(fail=RuntimeError("queue exploded")))
    r = run.request("POST", HOOK, acr_payload())
    assert r.status == 500
    assert "error" in r.json() and b"queue exploded" not in r.body
    assert any("queue exploded" in line for line in logs)
    assert run.request("GET", "/healthz").status == 200
    assert run.hook_count("aliyun", "error") == 1.0


def test_a_failing_health_callback_gets_a_json_500(make: Callable[..., Running]) -> None:
    """health() raising is a 500 with a JSON body, not a dropped connection."""

    def health() -> dict[str, object]:
        raise ValueError("state db locked")

    run = make(health=health)
    r = run.request("GET", "/healthz")
    assert r.status == 500 and "error" in r.json()


def test_a_client_resetting_mid_body_is_dropped_quietly(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """A connection reset while the body is read is counted as client_gone, not a 500; the server goes on."""
    run = make()
    sock = run.connect()
    sock.sendall(
        f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{".encode()
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # with linger 0: a reset, not a FIN
    wait_until(lambda: run.hook_count("aliyun", "client_gone") == 1.0, 5, "the reset to be noticed")
    assert run.request("GET", "/healthz").status == 200
    assert run.waker.calls == []
    assert not [line for line in logs if line.startswith("ERROR")]


def test_a_half_open_client_times_out_without_blocking_others(make: Callable[..., Running]) -> None:
    """A client that sends half a request is cut after client_timeout, and others are served meanwhile."""
    run = make(client_timeout=1.0)
    with run.connect() as slow:
        slow.sendall(b"POST /v1/update HTTP/1.1\r\nHost: x\r\n")  # no blank line: the headers never end
        start = time.monotonic()
        assert run.request("GET", "/healthz").status == 200
        assert select.select([slow], [], [], 0)[0] == []  # served while the slow one still waits
        data = read_raw(slow, timeout=5.0)
        elapsed = time.monotonic() - start
    assert raw_status(data) == 408
    assert 0.5 < elapsed < 4.0


def test_a_connection_closed_before_sending_anything_costs_nothing(make: Callable[..., Running]) -> None:
    """A TCP check (connect, close) or a port scan is dropped quietly, and the next request is served."""
    run = make()
    for _ in range(3):
        run.connect().close()
    assert run.request("GET", "/healthz", timeout=3.0).status == 200


def test_headers_cut_off_by_the_client_are_not_taken_for_a_request(make: Callable[..., Running]) -> None:
    """End of file before the blank line ending the headers is a 400, not a request: nothing is woken."""
    run = make()
    with run.connect() as sock:
        sock.sendall(f"POST /v1/update HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n".encode())
        sock.shutdown(socket.SHUT_WR)
        data = read_raw(sock)
    assert raw_status(data) == 400
    assert b"incomplete request" in data
    assert run.waker.calls == []


def test_a_trickling_client_is_cut_at_the_whole_request_deadline(make: Callable[..., Running]) -> None:
    """Sending a header line every 0.1 s never trips a per-read timeout, but the request deadline still ends it."""
    run = make(client_timeout=0.5)
    with run.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        cut = False
        for i in range(50):  # up to 5 s of trickling
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                cut = True
                break
            try:
                sock.sendall(f"X-Slow-{i}: y\r\n".encode())
            except OSError:
                cut = True
                break
        elapsed = time.monotonic() - start
    assert cut and elapsed < 3.0


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send `data` from a thread (the server may answer and close before it is all sent)."""

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_a_huge_request_head_gets_431_before_it_is_buffered(make: Callable[..., Running]) -> None:
    """99 header lines of 65 KB (issue 9's memory attack) are refused with a JSON 431 naming the cap."""
    run = make(client_timeout=30.0)
    head = b"GET /healthz HTTP/1.1\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, b"a" * 65_000) for i in range(99)
    )
    with run.connect() as sock:
        sender = send_in_background(sock, head + b"\r\n")
        data = read_raw(sock, timeout=10.0)
        sender.join(10)
    assert raw_status(data) == 431
    assert "16384" in str(json.loads(data.split(b"\r\n\r\n", 1)[1])["error"])
    assert run.hook_count("unknown", "head_too_large") == 1.0
    assert run.request("GET", "/healthz").status == 200


@pytest.mark.parametrize(("size", "status"), [(15_000, 200), (17_000, 431)])
def test_the_request_head_cap_is_max_head_for_the_whole_head(
    make: Callable[..., Running], size: int, status: int
) -> None:
    """The cap counts the whole head, not one line: many small lines over 16 KiB in total are 431 too."""
    run = make()
    lines = b"".join(b"X-%d: %s\r\n" % (i, b"b" * 990) for i in range(size // 1000))
    with run.connect() as sock:
        sender = send_in_background(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
        data = read_raw(sock)
        sender.join(5)
    assert raw_status(data) == status


@pytest.mark.parametrize("sent", [b"", b"GET /hea", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
def test_a_timed_out_request_gets_a_clean_408_and_no_traceback(
    make: Callable[..., Running], logs: list[str], sent: bytes
) -> None:
    """Silence, half a request line or half a head: a JSON 408 at the deadline, one log line, no traceback."""
    run = make(client_timeout=0.5)
    with run.connect() as sock:
        sock.sendall(sent)
        data = read_raw(sock)
    assert raw_status(data) == 408
    assert "error" in json.loads(data.split(b"\r\n\r\n", 1)[1])
    wait_until(lambda: any("408" in line for line in logs), 5, "the 408 to be logged")
    assert not [line for line in logs if "Traceback" in line or line.startswith("ERROR")], logs


def test_wrong_token_requests_are_logged_once_per_interval_per_peer_with_a_count(
    make: Callable[..., Running], logs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token-guessing flood leaves one warning per peer and interval; the next one counts the quiet ones."""
    from agent.webhook import routes

    monkeypatch.setattr(routes, "UNAUTHORIZED_LOG_INTERVAL", 0.3)
    run = make()
    for _ in range(3):
        assert run.request("POST", "/hooks/aliyun/guess", acr_payload()).status == 404
    run.request("POST", "/v1/update", b"", {"Authorization": "Bearer guess"})
    warned = [line for line in logs if line.startswith("WARNING")]
    assert len(warned) == 1 and "wrong or missing hook token" in warned[0], warned
    time.sleep(0.35)  # past the interval (a lower bound, not a race)
    run.request("POST", "/hooks/aliyun/guess", acr_payload())
    warned = [line for line in logs if line.startswith("WARNING")]
    assert len(warned) == 2 and "3 more from this address" in warned[1], warned
    assert run.hook_count("aliyun", "unauthorized") == 4.0


def test_hooks_over_max_clients_get_a_fast_503_and_capacity_comes_back(make: Callable[..., Running]) -> None:
    """With every hook handler busy, the next hook gets 503 at once, health still answers; freed, hooks serve again."""
    release = threading.Event()
    run = make(waker=FakeWaker(block=release), max_clients=1)
    first: list[int] = []
    holder = threading.Thread(target=lambda: first.append(run.request("POST", HOOK, acr_payload()).status))
    holder.start()
    try:
        assert run.waker.entered.wait(5)
        r = run.request("POST", HOOK, acr_payload())
        assert r.status == 503 and r.elapsed < 1.0
        assert r.header("Retry-After") == "1" and "busy" in str(r.json()["error"])
        assert run.request("GET", "/healthz").status == 200
    finally:
        release.set()
        holder.join(5)
    assert first == [202]
    wait_until(lambda: run.request("POST", HOOK, acr_payload()).status == 202, 5, "a free handler slot")
    assert run.hook_count("aliyun", "busy") == 1.0


def test_64_slow_connections_do_not_keep_healthz_from_answering(make: Callable[..., Running]) -> None:
    """Slow clients holding half-sent requests cost no handler: /healthz from the same address still gets 200."""
    run = make(client_timeout=30.0)
    slow = [run.connect() for _ in range(64)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(3):
            r = run.request("GET", "/healthz", timeout=5.0)
            assert r.status == 200
    finally:
        for sock in slow:
            sock.close()


def test_a_peer_over_its_connection_limit_loses_its_idlest_half_sent_connection(
    make: Callable[..., Running],
) -> None:
    """At max_per_ip, a new connection makes the server close (408) the one idle longest while still sending."""
    run = make(max_per_ip=2, client_timeout=30.0)
    oldest = run.connect()
    oldest.sendall(b"GET /healthz HTTP/1.1\r\n")
    wait_until(lambda: run.request("GET", "/healthz").status == 200, 5, "the first connection to be idle")
    newer = run.connect()
    try:
        newer.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert run.request("GET", "/healthz").status == 200
        assert raw_status(read_raw(oldest)) == 408
        assert select.select([newer], [], [], 0)[0] == []  # the newer one is still waiting
        assert run.hook_count("unknown", "evicted") == 1.0
    finally:
        oldest.close()
        newer.close()


def test_a_connection_over_every_limit_with_nothing_to_evict_gets_503(make: Callable[..., Running]) -> None:
    """When every connection of the peer is being answered, a new one gets a fast 503."""
    release = threading.Event()
    run = make(waker=FakeWaker(block=release), max_per_ip=1)
    holder = threading.Thread(target=lambda: run.request("POST", HOOK, acr_payload()))
    holder.start()
    try:
        assert run.waker.entered.wait(5)
        r = run.request("GET", "/healthz")
        assert r.status == 503 and "busy" in str(r.json()["error"])
    finally:
        release.set()
        holder.join(5)
    assert run.request("GET", "/healthz").status == 200


def test_concurrent_requests_are_all_answered(make: Callable[..., Running]) -> None:
    """Twenty hooks at once are each answered 202 and each wake the waker."""
    run = make()
    statuses: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        status = run.request("POST", HOOK, acr_payload()).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert statuses == [202] * 20
    assert len(run.waker.calls) == 20


def test_the_server_stays_responsive_while_the_waker_is_blocked(make: Callable[..., Running]) -> None:
    """A wake() that hangs holds one handler only: health and metrics still answer at once."""
    release = threading.Event()
    run = make(waker=FakeWaker(block=release))
    result: list[int] = []
    hook = threading.Thread(target=lambda: result.append(run.request("POST", HOOK, acr_payload()).status))
    hook.start()
    try:
        assert run.waker.entered.wait(5)
        for path in ("/healthz", "/metrics"):
            r = run.request("GET", path, timeout=2.0)
            assert r.status == 200 and r.elapsed < 1.0
    finally:
        release.set()
        hook.join(5)
    assert result == [202]
