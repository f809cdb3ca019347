"""HTTP framing: bodies, methods, malformed requests, head caps.

The Waker is a hand-written fake that records its calls (and can block or fail on demand).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable

import pytest

from tests.unit.webhook.support import (
    BEARER,
    HOOK,
    JSON,
    Running,
    acr_payload,
    raw_status,
    read_raw,
)

# -- bodies, methods, malformed HTTP ------------------------------------------------------


def test_a_body_over_max_body_by_content_length_gets_413_without_being_read(
    make: Callable[..., Running],
) -> None:
    """A declared Content-Length over max_body is refused at once: the server does not wait for the body."""
    run = make(max_body=1024, client_timeout=30.0)
    with run.connect() as sock:
        start = time.monotonic()
        sock.sendall(
            f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 10000000\r\n\r\n".encode()
        )
        data = read_raw(sock)
        elapsed = time.monotonic() - start
    assert raw_status(data) == 413
    assert (
        elapsed < 5.0
    )  # the body never came; with client_timeout=30 a waiting server would still be waiting
    assert run.hook_count("aliyun", "too_large") == 1.0
    assert run.waker.calls == []


def test_a_chunked_body_over_max_body_gets_413_before_the_body_ends(make: Callable[..., Running]) -> None:
    """A chunked body is read only up to max_body: the 413 comes while the client has not finished sending."""
    run = make(max_body=1024, client_timeout=30.0)
    with run.connect() as sock:
        sock.sendall(
            f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.sendall(b"3e8\r\n" + b"x" * 1000 + b"\r\n")  # 1000 bytes: within the limit
        sock.sendall(b"64\r\n" + b"y" * 100 + b"\r\n")  # 1100 bytes: over; the final 0-chunk never comes
        data = read_raw(sock)
    assert raw_status(data) == 413
    assert run.waker.calls == []


def test_a_chunked_body_within_max_body_is_accepted(make: Callable[..., Running]) -> None:
    """Transfer-Encoding: chunked under the limit is decoded and handled like any other body."""
    run = make()
    payload = json.dumps(acr_payload(name="worker", tag="v1")).encode()
    host, port = run.server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("POST", HOOK, body=iter([payload[:10], payload[10:]]), headers=JSON, encode_chunked=True)
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (202, {"queued": ["worker"]})
    finally:
        conn.close()
    assert run.waker.calls == [(frozenset({"worker"}), "aliyun hook shop/worker:v1")]


def test_content_length_together_with_transfer_encoding_gets_400(make: Callable[..., Running]) -> None:
    """Both framing headers at once (a request-smuggling shape) is a 400."""
    run = make()
    with run.connect() as sock:
        sock.sendall(
            f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
        )
        data = read_raw(sock)
    assert raw_status(data) == 400
    assert b"Transfer-Encoding" in data.split(b"\r\n\r\n", 1)[1]


def test_expect_100_continue_is_answered_only_once_the_body_is_wanted(make: Callable[..., Running]) -> None:
    """With `Expect: 100-continue`, the server sends 100 Continue after checking the token, then reads the body."""
    run = make()
    body = json.dumps(acr_payload()).encode()
    with run.connect() as sock:
        sock.sendall(
            f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim = sock.recv(100)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        data = read_raw(sock)
    assert raw_status(data) == 202
    assert run.waker.calls


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", HOOK, "POST"),
        ("PUT", HOOK, "POST"),
        ("GET", "/v1/update", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("BREW", "/healthz", "GET, HEAD"),
    ],
)
def test_a_wrong_method_on_a_known_path_gets_405_with_allow(
    make: Callable[..., Running], method: str, path: str, allow: str
) -> None:
    """A known endpoint with the wrong method answers 405 and says which methods it allows."""
    run = make()
    r = run.request(method, path, headers=BEARER)
    assert r.status == 405
    assert r.header("Allow") == allow
    assert "error" in r.json()
    assert run.waker.calls == []


def test_a_malformed_request_line_gets_a_json_400(make: Callable[..., Running]) -> None:
    """Garbage instead of HTTP gets a JSON 400 from the parser, not an HTML page or a crash."""
    run = make()
    with run.connect() as sock:
        sock.sendall(b"GARBAGE WITH TOO MANY WORDS HERE\r\n\r\n")
        data = read_raw(sock)
    assert raw_status(data) == 400
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"Content-Type: application/json" in head
    assert "error" in json.loads(body)
    assert run.request("GET", "/healthz").status == 200
