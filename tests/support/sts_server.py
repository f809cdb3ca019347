"""Temporary keys that expire, on loopback: a credentials URI and the ECS instance metadata protocol.

The keys are the fake ACR's own (`FakeAcr.issue_sts`), so the fake refuses them once they expire.
A key is handed out until it has less than `rotate_before` seconds left; then a new one is made.

    GET /credentials                                  -> {"Code": "Success", "AccessKeyId", ..., "Expiration"}
    PUT /latest/api/token  (X-aliyun-ecs-metadata-token-ttl-seconds)           -> a metadata token
    GET /latest/meta-data/ram/security-credentials/   (X-aliyun-ecs-metadata-token) -> the role name
    GET /latest/meta-data/ram/security-credentials/<role>                       -> the role's keys

Requests in proxy form (`GET http://100.100.100.200/...`) are answered too: a test that serves the metadata
protocol also points HTTP_PROXY here, so nothing it sends can leave the machine.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

META = "/latest/meta-data/ram/security-credentials/"


class StsServer:
    def __init__(self, fake: Any, *, ttl: float = 3600.0, rotate_before: float = 0.0, skew: float = 0.0,
                 role: str = "my-role") -> None:  # fmt: skip
        """`skew`: say each key expires this much later than the fake ACR will take it (a clock off, a key
        revoked early): the agent learns it has expired only from the API's answer."""
        self.fake, self.ttl, self.rotate_before, self.skew, self.role = fake, ttl, rotate_before, skew, role
        self.issued: list[tuple[str, str, str, float]] = []  # (key id, secret, token, expiry)
        self.requests: list[tuple[str, str]] = []  # (method, path as sent: proxy form keeps its host)
        self.metadata_tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def keys(self) -> dict[str, Any]:
        with self._lock:
            if not self.issued or self.issued[-1][3] - time.time() < max(self.rotate_before, 0.001):
                self.issued.append(self.fake.issue_sts(self.ttl))
            key_id, secret, token, expiry = self.issued[-1]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry + self.skew))
        return {"Code": "Success", "AccessKeyId": key_id, "AccessKeySecret": secret, "SecurityToken": token,
                "Expiration": stamp, "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


def _handler(server: StsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: str | dict[str, Any]) -> None:
            raw = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _path(self) -> str:
            with server._lock:
                server.requests.append((self.command, self.path))
            return urllib.parse.urlsplit(self.path).path  # the proxy form's path too

        def do_PUT(self) -> None:
            if self._path() != "/latest/api/token" or not self.headers.get(
                "X-aliyun-ecs-metadata-token-ttl-seconds"
            ):
                return self._send(400, "bad token request")
            token = uuid.uuid4().hex
            with server._lock:
                server.metadata_tokens.add(token)
            self._send(200, token)

        def do_GET(self) -> None:
            path = self._path()
            if path == "/credentials":
                return self._send(200, server.keys())
            if not path.startswith(META):
                return self._send(404, "not found")
            if self.headers.get("X-aliyun-ecs-metadata-token") not in server.metadata_tokens:
                return self._send(401, "IMDSv2: a metadata token is required")  # token-less (v1) refused
            role = path[len(META) :]
            if not role:
                return self._send(200, server.role)
            if role != server.role:
                return self._send(404, "no such role")
            self._send(200, server.keys())

    return Handler
