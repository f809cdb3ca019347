"""What the webhook tests share: a started server with a fake waker, raw sockets, the ACR payload."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from loguru import logger
from prometheus_client.parser import text_string_to_metric_families

from agent.metrics import Metrics
from agent.secret import Secret
from agent.webhook import WatchTarget, WebhookServer
from agent.webhook.throttle import FailedAuth
from tests.support import payloads

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
        # these tests send many wrong tokens on purpose; the limit on them is tested in tests/unit/ui/test_status_page.py
        options.setdefault("failed_auth", FailedAuth(limit=10**6))
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
