"""Health probes: HTTP status must match; TCP must connect; failures say what was seen."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from agent.config import HealthSpec
from agent.deploy.probes import probe


class _H(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *a: object) -> None:
        pass


def test_http_and_tcp_probes(monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # must be ignored
    server = HTTPServer(("127.0.0.1", 0), _H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        assert probe(HealthSpec(http=f"http://127.0.0.1:{port}/healthz")) == (
            True, f"GET http://127.0.0.1:{port}/healthz: HTTP 200 (expected 200)")  # fmt: skip
        ok, seen = probe(HealthSpec(http=f"http://127.0.0.1:{port}/other"))
        assert not ok and "HTTP 503 (expected 200)" in seen
        assert probe(HealthSpec(http=f"http://127.0.0.1:{port}/other", expect_status=503))[0]
        assert probe(HealthSpec(tcp=f"127.0.0.1:{port}"))[0]
    finally:
        server.shutdown()
        server.server_close()
    ok, seen = probe(HealthSpec(tcp=f"127.0.0.1:{port}", timeout=1))
    assert not ok and "refused" in seen.lower()


def test_a_long_health_wait_says_every_ten_seconds_how_long_is_left(capsys) -> None:  # type: ignore[no-untyped-def]
    """Twenty quiet seconds look like a hang: the gate tells its progress and the remaining deadline."""

    from agent import logs
    from agent.config import Watch
    from agent.deploy.gate import wait_healthy
    from agent.errors import HealthFailed
    from agent.model import ImageRef
    from tests.support.fakes import FakeContainer, FakeRuntime

    rt = FakeRuntime()
    rt.containers["n"] = FakeContainer("n", "web", "img", "i", running=True, health="starting")
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    w = Watch(container="web", image=ImageRef.parse("h.io/ns/web:v1"), source="registry", health_timeout=30.0)
    logs.setup("INFO", json=True)
    try:
        with pytest.raises(HealthFailed):
            wait_healthy(
                rt, w, "n", probe=lambda h: (False, ""), clock=clock, stop=threading.Event(), poll=0.0
            )
    finally:
        logs.setup("INFO")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    said = [x["message"] for x in lines if x.get("step") == "health_wait"]
    assert (
        said[0]
        == "web: waiting for the new container to prove itself (its HEALTHCHECK, else running for 10s), up to 30s"
    )
    assert any(
        m.startswith("web: still waiting for health (HEALTHCHECK starting); ") and m.endswith("s left")
        for m in said[1:]
    )
