"""The webhook server, exercised with real HTTP requests against a started server on 127.0.0.1.

The Waker is a hand-written fake that records its calls (and can block or fail on demand).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from agent.config import patterns
from agent.errors import ConfigError
from agent.metrics import Metrics
from agent.model import Report
from agent.secret import Secret
from agent.webhook import MetricsServer, WatchTarget, WebhookServer, parse_listen
from agent.webhook.listen import is_loopback
from tests.support import payloads
from tests.support.wait import wait_until

TOKEN = "-".join(["hook", "s3cret", "0123456789abcdef"])  # built, so a traceback cannot quote it
DIGEST = "sha256:" + "4" * 64
TARGETS = (
    WatchTarget("web", "shop", "web", "latest"),
    WatchTarget("web-canary", "shop", "web", "canary"),
    WatchTarget("worker", "shop", "worker", "v1"),
)
HOOK = f"/hooks/aliyun/{TOKEN}"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}


def acr_payload(
    namespace: str = "shop", name: str = "web", tag: str = "v9", **extra: object
) -> dict[str, object]:
    return payloads.acr_payload(namespace, name, tag, DIGEST, **extra)


class FakeWaker:
    """Records wake() calls; optionally blocks until released, or raises."""

    def __init__(self, *, block: threading.Event | None = None, fail: Exception | None = None) -> None:
        self.calls: list[tuple[frozenset[str] | None, str]] = []
        self.entered = threading.Event()
        self._block = block
        self._fail = fail
        self._lock = threading.Lock()

    def wake(self, containers: frozenset[str] | None, reason: str) -> None:
        self.entered.set()
        if self._block is not None:
            self._block.wait(10)
        if self._fail is not None:
            raise self._fail
        with self._lock:
            self.calls.append((containers, reason))


@dataclass
class Resp:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


@dataclass
class Running:
    server: WebhookServer
    waker: FakeWaker
    metrics: Metrics
    responses: list[Resp] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> Resp:
        host, port = self.server.address
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers = {**JSON, **(headers or {})}
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        start = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            resp = Resp(r.status, r.getheaders(), r.read(), time.monotonic() - start)
        finally:
            conn.close()
        self.responses.append(resp)
        return resp

    def connect(self) -> socket.socket:
        sock = socket.create_connection(self.server.address, timeout=5)
        return sock

    def hook_count(self, kind: str, outcome: str) -> float | None:
        body, _ = self.metrics.render()
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == "cr_agent_webhook_requests_total" and s.labels == {
                    "kind": kind,
                    "outcome": outcome,
                }:
                    return s.value
        return None


@pytest.fixture
def make() -> Iterator[Callable[..., Running]]:
    started: list[WebhookServer] = []

    def make(
        *,
        waker: FakeWaker | None = None,
        health: Callable[[], dict[str, object]] | None = None,
        targets: tuple[WatchTarget, ...] = TARGETS,
        **options: object,
    ) -> Running:
        waker = waker or FakeWaker()
        metrics = Metrics()
        server = WebhookServer(
            "127.0.0.1:0",
            token=Secret(TOKEN),
            targets=targets,
            waker=waker,
            health=health or (lambda: {"watching": len(targets)}),
            metrics=metrics,
            **options,  # type: ignore[arg-type]
        )
        server.start()
        started.append(server)
        return Running(server, waker, metrics)

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{level} {message}\n{exception}")
    yield lines
    logger.remove(sink)


def read_raw(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def raw_status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


# -- the ACR hook -------------------------------------------------------------------------


def test_aliyun_hook_wakes_every_entry_watching_the_pushed_repository(make: Callable[..., Running]) -> None:
    """With match_tag off, a push to any tag of a watched repo wakes all its entries, and answers 202 at once."""
    run = make()
    r = run.request("POST", HOOK, acr_payload(tag="v9"))
    assert r.status == 202
    assert r.json() == {"queued": ["web", "web-canary"]}
    assert run.waker.calls == [(frozenset({"web", "web-canary"}), "aliyun hook shop/web:v9")]


def test_aliyun_hook_never_passes_the_payload_digest_on(make: Callable[..., Running]) -> None:
    """The payload is a hint: the digest it names reaches neither the waker nor the answer."""
    run = make()
    r = run.request("POST", HOOK, acr_payload())
    assert r.status == 202
    assert DIGEST not in repr(run.waker.calls) and DIGEST.encode() not in r.body
    assert "4444" not in repr(run.waker.calls)


def test_aliyun_hook_with_match_tag_wakes_only_entries_following_the_pushed_tag(
    make: Callable[..., Running],
) -> None:
    """With match_tag on, only entries that follow the pushed tag are woken; another tag wakes nothing."""
    run = make(match_tag=True)
    r = run.request("POST", HOOK, acr_payload(tag="canary"))
    assert (r.status, r.json()) == (202, {"queued": ["web-canary"]})
    r = run.request("POST", HOOK, acr_payload(tag="v9"))
    assert (r.status, r.json()) == (202, {"queued": []})
    assert run.waker.calls == [(frozenset({"web-canary"}), "aliyun hook shop/web:canary")]


def test_aliyun_hook_accepts_repo_full_name_when_namespace_and_name_are_missing(
    make: Callable[..., Running],
) -> None:
    """`repository.repo_full_name` alone identifies the repository."""
    run = make()
    payload: dict[str, object] = {"push_data": {"tag": "v1"}, "repository": {"repo_full_name": "shop/worker"}}
    r = run.request("POST", HOOK, payload)
    assert (r.status, r.json()) == (202, {"queued": ["worker"]})
    assert run.waker.calls == [(frozenset({"worker"}), "aliyun hook shop/worker:v1")]


def test_aliyun_hook_tolerates_unknown_fields_and_a_charset_parameter(make: Callable[..., Running]) -> None:
    """Extra fields anywhere, and `application/json; charset=utf-8`, are fine."""
    run = make()
    payload = acr_payload(tag="latest", event="push", instance={"id": "cri-x"})
    payload["repository"]["extra"] = [1, 2]  # type: ignore[index]
    body = json.dumps(payload).encode()
    r = run.request("POST", HOOK, body, {"Content-Type": "Application/JSON; charset=UTF-8"})
    assert (r.status, r.json()) == (202, {"queued": ["web", "web-canary"]})


def test_a_repository_nobody_watches_gets_202_empty_a_log_line_and_no_wake(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """An unwatched repository is answered 202 {"queued": []}, logged, and wakes nothing."""
    run = make()
    r = run.request("POST", HOOK, acr_payload(namespace="other", name="thing", tag="v2"))
    assert (r.status, r.json()) == (202, {"queued": []})
    assert run.waker.calls == []
    assert any("other/thing:v2" in line and "no watch entry" in line for line in logs), logs
    assert run.hook_count("aliyun", "ignored") == 1.0


def test_repository_matching_is_case_sensitive(make: Callable[..., Running]) -> None:
    """`Shop/Web` is not `shop/web`: ACR names are lower-case, so no case folding."""
    run = make()
    r = run.request("POST", HOOK, acr_payload(namespace="Shop", name="Web"))
    assert (r.status, r.json()) == (202, {"queued": []})
    assert run.waker.calls == []


def test_wrong_or_missing_hook_token_gets_the_same_404_as_an_unknown_path(
    make: Callable[..., Running],
) -> None:
    """Wrong, missing or near-miss tokens get byte-for-byte the 404 of an unknown path, whatever the method."""
    run = make()

    def shape(r: Resp) -> tuple[int, list[tuple[str, str]], bytes]:
        return r.status, [(k, v) for k, v in r.headers if k.lower() != "date"], r.body

    reference = shape(run.request("POST", "/no/such/path", acr_payload()))
    assert reference[0] == 404
    for path in (
        "/hooks/aliyun/wrong-token",
        "/hooks/aliyun/",
        "/hooks/aliyun",
        HOOK + "x",
        HOOK[:-1],
        HOOK + "/",
        "/hooks/aliyun/" + TOKEN.upper(),
    ):
        for method in ("POST", "GET"):
            body = acr_payload() if method == "POST" else None
            assert shape(run.request(method, path, body)) == reference, (method, path)
    assert shape(run.request("GET", "/")) == reference
    assert run.waker.calls == []
    assert run.hook_count("aliyun", "unauthorized") == 14.0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"", "empty body"),
        (b"[1, 2]", "JSON object"),
        (b'{"push_data": {"tag": "v1"}}', "repository"),
        (b'{"repository": {"namespace": "shop", "name": "web"}}', "push_data"),
        (b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {}}', "push_data.tag"),
        (b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {"tag": 7}}', "push_data.tag"),
        (b'{"repository": {"repo_full_name": "shopweb"}, "push_data": {"tag": "v1"}}', "repo_full_name"),
        (b'{"repository": {"namespace": "shop"}, "push_data": {"tag": "v1"}}', "repository.name"),
        (
            b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {"tag": "a b"}}',
            "push_data.tag",
        ),
        (b'{"repository": {"namespace": "sh\\nop", "name": "web"}, "push_data": {"tag": "v1"}}', "namespace"),
        (
            b'{"repository": {"namespace": "shop", "name": "web"}, "push_data": {"tag": "v1\\n"}}',
            "push_data.tag",
        ),
        (b"[" * 100000 + b"]" * 100000, "too_large_or_malformed"),
        (b"\xff\xfe\x00garbage", "malformed JSON"),
    ],
)
def test_a_bad_payload_gets_400_naming_the_problem_and_wakes_nothing(
    make: Callable[..., Running], body: bytes, needle: str
) -> None:
    """Malformed JSON, a non-object, missing or ill-typed fields: 400 with a JSON error naming the problem."""
    run = make(max_body=1 << 20)
    r = run.request("POST", HOOK, body, JSON)
    assert r.status == 400, r.body
    error = str(r.json()["error"])
    if needle != "too_large_or_malformed":
        assert needle in error, error
    assert run.waker.calls == []
    assert run.request("GET", "/healthz").status == 200  # and the server is still fine


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "multipart/form-data; b=x",
    ],
)
def test_a_wrong_content_type_gets_415_naming_it(
    make: Callable[..., Running], content_type: str | None
) -> None:
    """Only application/json (any charset parameter) is accepted on the ACR hook; anything else is 415."""
    run = make()
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = run.request("POST", HOOK, json.dumps(acr_payload()).encode(), headers)
    assert r.status == 415
    assert "application/json" in str(r.json()["error"])
    assert run.waker.calls == []


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


# -- the update API -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ],
)
def test_update_without_the_right_bearer_gets_401_with_www_authenticate(
    make: Callable[..., Running], headers: dict[str, str]
) -> None:
    """A missing, wrong or non-Bearer Authorization is 401 with `WWW-Authenticate: Bearer` and wakes nothing."""
    run = make()
    r = run.request("POST", "/v1/update", b"", headers)
    assert r.status == 401
    assert (r.header("WWW-Authenticate") or "").startswith("Bearer")
    assert run.waker.calls == []
    assert run.hook_count("generic", "unauthorized") == 1.0


def test_update_with_the_bearer_wakes_everything(make: Callable[..., Running]) -> None:
    """POST /v1/update with the right bearer wakes all entries (containers=None) and lists them."""
    run = make()
    r = run.request("POST", "/v1/update", None, {"Authorization": f"bearer {TOKEN}"})
    assert (r.status, r.json()) == (202, {"queued": ["web", "web-canary", "worker"]})
    assert run.waker.calls == [(None, "api /v1/update")]
    assert run.hook_count("generic", "accepted") == 1.0


def test_update_with_container_parameters_wakes_only_those(make: Callable[..., Running]) -> None:
    """`?container=` is repeatable and wakes exactly the named entries."""
    run = make()
    r = run.request("POST", "/v1/update?container=worker&container=web&container=web", b"{}", BEARER)
    assert (r.status, r.json()) == (202, {"queued": ["web", "worker"]})
    assert run.waker.calls == [(frozenset({"web", "worker"}), "api /v1/update")]


def test_update_naming_an_unknown_container_gets_404_naming_it_and_wakes_nothing(
    make: Callable[..., Running],
) -> None:
    """One unknown name refuses the whole request (404, JSON naming it): nothing is woken."""
    run = make()
    r = run.request("POST", "/v1/update?container=web&container=ghost", None, BEARER)
    assert r.status == 404
    assert r.json()["unknown"] == ["ghost"] and "ghost" in str(r.json()["error"])
    assert run.waker.calls == []


@pytest.mark.parametrize("query", ["containers=web", "container=", "container=web&force=1"])
def test_update_with_a_bad_query_gets_400_and_wakes_nothing(make: Callable[..., Running], query: str) -> None:
    """A misspelt or empty parameter is refused rather than silently waking everything."""
    run = make()
    r = run.request("POST", f"/v1/update?{query}", None, BEARER)
    assert r.status == 400
    assert run.waker.calls == []


def test_update_body_over_max_body_gets_413(make: Callable[..., Running]) -> None:
    """The update API applies the same body cap as the hook."""
    run = make(max_body=16)
    r = run.request("POST", "/v1/update", b"x" * 17, BEARER)
    assert r.status == 413
    assert run.waker.calls == []


# -- health, metrics, headers, secrets ----------------------------------------------------


def test_healthz_without_auth_is_liveness_only(make: Callable[..., Running]) -> None:
    """GET /healthz needs no auth, and then says only whether the agent is alive: no names, no errors."""
    run = make(health=lambda: {"last_pass": {"results": {"web": "failed"}, "error": "boom"}, "queued": 0})
    r = run.request("GET", "/healthz")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.json() == {"status": "ok"}
    head = run.request("HEAD", "/healthz")
    assert (head.status, head.body) == (200, b"")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_healthz_with_a_wrong_token_is_liveness_only(
    make: Callable[..., Running], headers: dict[str, str]
) -> None:
    """A wrong or non-Bearer Authorization on /healthz gets the liveness answer, not the details."""
    run = make(health=lambda: {"last_pass": "x"})
    assert run.request("GET", "/healthz", headers=headers).json() == {"status": "ok"}


def test_healthz_with_the_bearer_returns_the_health_state_plus_status_ok(
    make: Callable[..., Running],
) -> None:
    """With `Authorization: Bearer <token>`, /healthz answers health() merged with {"status": "ok"}."""
    run = make(health=lambda: {"last_pass": "2024-01-01T00:00:00Z", "queued": 0})
    r = run.request("GET", "/healthz", headers=BEARER)
    assert r.status == 200
    assert r.json() == {"status": "ok", "last_pass": "2024-01-01T00:00:00Z", "queued": 0}


@pytest.mark.parametrize(
    "state", [{"healthy": False, "error": "the scheduler thread died"}, {"status": "degraded"}]
)
def test_healthz_answers_503_when_health_reports_unhealthy(
    make: Callable[..., Running], state: dict[str, object]
) -> None:
    """A dead scheduler or worker (health() says healthy: false, or a non-ok status) turns /healthz 503."""
    run = make(health=lambda: state)
    r = run.request("GET", "/healthz")
    assert r.status == 503
    assert r.json()["status"] in ("unhealthy", "degraded") and "error" not in r.json()
    detailed = run.request("GET", "/healthz", headers=BEARER)
    assert detailed.status == 503 and detailed.json()["status"] != "ok"


def test_metrics_endpoint_serves_prometheus_text_without_auth(make: Callable[..., Running]) -> None:
    """GET /metrics answers metrics.render(), with prometheus_client's content type, and counts the hooks."""
    run = make()
    run.request("POST", HOOK, acr_payload())
    r = run.request("GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type") == CONTENT_TYPE_LATEST
    assert b'cr_agent_webhook_requests_total{kind="aliyun",outcome="accepted"} 1.0' in r.body


def test_the_server_header_names_no_version(make: Callable[..., Running]) -> None:
    """`Server:` is the plain name `cr-agent`, with no Python or library version."""
    run = make()
    for r in (run.request("GET", "/healthz"), run.request("GET", "/nope"), run.request("POST", HOOK, b"{")):
        assert r.header("Server") == "cr-agent"


def test_the_token_never_appears_in_any_response_header_or_log_line(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """Across good and bad requests of every kind, the token is in no body, no header and no log line."""
    run = make(waker=FakeWaker())
    run.request("POST", HOOK, acr_payload())
    run.request("POST", HOOK, acr_payload(namespace="x", name="y"))
    run.request("POST", HOOK, b"{", JSON)
    run.request("POST", HOOK, json.dumps(acr_payload()).encode(), {"Content-Type": TOKEN})
    run.request("POST", HOOK + "?" + TOKEN, acr_payload())
    run.request("GET", HOOK)
    run.request("POST", HOOK + "x", acr_payload())
    run.request("POST", "/hooks/aliyun/" + TOKEN[:-1], acr_payload())
    run.request("POST", "/v1/update", None, BEARER)
    run.request("POST", f"/v1/update?container={TOKEN}", None, BEARER)
    run.request("POST", "/v1/update", None, {"Authorization": f"Bearer {TOKEN}x"})
    run.request("GET", "/healthz")
    run.request("GET", "/metrics")
    run.request("GET", f"/{TOKEN}")
    bad_tag = acr_payload(tag=TOKEN + " x")
    run.request("POST", HOOK, bad_tag)
    assert len(run.responses) == 15
    for r in run.responses:
        assert TOKEN.encode() not in r.body
        assert all(TOKEN not in k and TOKEN not in v for k, v in r.headers)
    assert logs
    assert not [line for line in logs if TOKEN in line]
    assert any("/hooks/aliyun/***" in line for line in logs)


def test_a_token_leaking_through_health_is_scrubbed_from_the_response(make: Callable[..., Running]) -> None:
    """Last line of defence: if health() ever returned the token, the response carries *** instead."""
    run = make(health=lambda: {"oops": f"listen with {TOKEN}"})
    r = run.request("GET", "/healthz", headers=BEARER)
    assert r.status == 200
    assert r.json()["oops"] == "listen with ***"


def test_each_request_decision_is_logged_once_with_the_token_redacted(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """An accepted hook leaves exactly one log line: status, redacted path, repository and what was queued."""
    run = make()
    run.request("POST", HOOK, acr_payload())
    lines = [line for line in logs if "webhook: 202" in line]
    assert len(lines) == 1, logs
    assert "/hooks/aliyun/*** " in lines[0]
    assert "shop/web:v9" in lines[0] and "web, web-canary" in lines[0]


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


# -- lifecycle ----------------------------------------------------------------------------


def test_stop_is_idempotent_and_closes_the_port(make: Callable[..., Running]) -> None:
    """After stop() (called twice) nothing listens on the port any more."""
    run = make()
    host, port = run.server.address
    assert run.request("GET", "/healthz").status == 200
    run.server.stop()
    run.server.stop()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_stop_cuts_a_connection_that_is_still_sending(make: Callable[..., Running]) -> None:
    """stop() does not wait out a slow client's client_timeout: open connections are shut."""
    run = make(client_timeout=30.0)
    with run.connect() as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        wait_until(lambda: run.request("GET", "/healthz").status == 200, 5, "the server")
        start = time.monotonic()
        run.server.stop()
        assert time.monotonic() - start < 3.0


def test_start_before_listening_elsewhere_reports_the_address_in_use() -> None:
    """A port that is taken gives an OSError naming the listen address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WebhookServer(
            f"127.0.0.1:{port}",
            token=Secret(TOKEN),
            targets=TARGETS,
            waker=FakeWaker(),
            health=dict,
            metrics=Metrics(),
        )
        with pytest.raises(OSError, match=f"127.0.0.1:{port}"):
            server.start()
        server.stop()


def test_listens_on_ipv6_loopback_when_available() -> None:
    """`[::1]:0` binds the IPv6 loopback."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = WebhookServer(
        "[::1]:0", token=Secret(TOKEN), targets=TARGETS, waker=FakeWaker(), health=dict, metrics=Metrics()
    )
    server.start()
    try:
        host, port = server.address
        assert host == "::1" and port > 0
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:7023", ("0.0.0.0", 7023)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:7023", ("::1", 7023)),
        (":7023", ("0.0.0.0", 7023)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen_accepts_host_port_forms(listen: str, expected: tuple[str, int]) -> None:
    """host:port, [v6]:port and :port (every IPv4 interface) are understood."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen", ["7023", "::1:7023", "host:70000", "host:", "[::1]", "host:80\n", "a b:80"]
)
def test_parse_listen_rejects_malformed_addresses(listen: str) -> None:
    """Anything else is our ConfigError naming the key and the value, never a ValueError (issue 10)."""
    with pytest.raises(ConfigError, match=r"webhook\.listen: (must be host:port|port out of range)") as e:
        parse_listen(listen, "webhook.listen")
    assert not isinstance(e.value, ValueError) and repr(listen) in str(e.value)


# -- the [metrics] listener ----------------------------------------------------------------


def test_the_metrics_listener_on_loopback_shows_health_details_and_metrics_and_no_hooks() -> None:
    """[metrics] on 127.0.0.1: /healthz details without a token, /metrics, and 404 for the hook endpoints."""
    metrics = Metrics()
    server = MetricsServer("127.0.0.1:0", health=lambda: {"passes": 3}, metrics=metrics, token=Secret(TOKEN))
    server.start()
    try:
        run = Running(server, FakeWaker(), metrics)  # type: ignore[arg-type]
        assert run.request("GET", "/healthz").json() == {"status": "ok", "passes": 3}
        r = run.request("GET", "/metrics")
        assert r.status == 200 and r.header("Content-Type") == CONTENT_TYPE_LATEST
        assert run.request("POST", HOOK, acr_payload()).status == 404
        assert run.request("POST", "/v1/update", None, BEARER).status == 404
        assert run.waker.calls == []
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.5", False), ("::", False), ("example.com", False)],
)  # fmt: skip
def test_only_a_loopback_metrics_listener_counts_as_private(host: str, loopback: bool) -> None:
    """Details without a token only where no one else can connect."""
    assert is_loopback(host) is loopback


def test_healthz_turns_503_when_the_daemons_worker_thread_dies(
    make: Callable[..., Running], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wired to the real Coordinator: once its scheduler's thread is dead, /healthz answers 503 to everyone."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from agent.daemon import Coordinator
    from agent.runlock import RunLock

    coord = Coordinator(lambda only: Report(()), RunLock(tmp_path / "agent.lock"))

    # the scheduler's thread (wake-ups run on it) ends at once, as if it had died
    monkeypatch.setattr(BackgroundScheduler, "_main_loop", lambda self: None)
    run = make(health=coord.health)
    assert run.request("GET", "/healthz").status == 200
    coord.start_worker()
    wait_until(lambda: not coord.health()["worker_alive"], 5, "the scheduler's thread to end")
    r = run.request("GET", "/healthz")
    assert (r.status, r.json()) == (503, {"status": "degraded"})
    assert run.request("GET", "/healthz", headers=BEARER).json()["worker_alive"] is False


def test_with_label_discovery_an_unnamed_repository_or_container_wakes_a_pass(
    make: Callable[..., Running],
) -> None:
    """`[agent] discover`: a labelled container may follow any repository, so the hook wakes one whole pass."""
    run = make(discovering=True)
    r = run.request("POST", HOOK, acr_payload(namespace="other", name="thing", tag="v2"))
    assert (r.status, r.json()) == (202, {"queued": "all"})
    assert run.waker.calls[-1][0] is None
    r = run.request("POST", "/v1/update?container=labelled", b"", {"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 202 and run.waker.calls[-1][0] == frozenset({"labelled"})


def test_match_tag_with_a_pattern_wakes_on_a_matching_tag_only(make: Callable[..., Running]) -> None:
    """`match = "tag"`: an entry with `tag = "semver:^1.2"` follows `1.4.0`, not `2.0.0` nor `1.5.0-rc.1`."""
    semver = patterns.parse("semver:^1.2", None, None)
    run = make(targets=(WatchTarget("api", "shop", "api", "1.2.0", semver),), match_tag=True)
    for tag, queued in (("1.4.0", ["api"]), ("2.0.0", []), ("1.5.0-rc.1", [])):
        r = run.request("POST", HOOK, acr_payload(namespace="shop", name="api", tag=tag))
        assert (r.status, r.json()) == (202, {"queued": queued}), tag
