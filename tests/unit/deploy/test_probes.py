"""Health probes: HTTP status must match; TCP must connect; failures say what was seen."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

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
