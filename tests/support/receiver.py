"""Real HTTP receivers on loopback: one that records every request, one that never answers."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    content_type: str
    raw: bytes

    @property
    def data(self) -> dict[str, Any]:
        """The body: JSON (apprise json://) or a form (apprise form://), as a dict."""
        if "json" in self.content_type:
            return dict(json.loads(self.raw))
        if "urlencoded" in self.content_type:
            return {k: v[0] for k, v in urllib.parse.parse_qs(self.raw.decode()).items()}
        raise AssertionError(f"unexpected content type {self.content_type!r}")

    @property
    def text(self) -> str:
        return self.raw.decode()


class Receiver:
    """Records requests in order; answers `status` (200 by default)."""

    def __init__(self, status: int = 200) -> None:
        self.hits: list[Hit] = []
        self.status = status
        self._cv = threading.Condition()
        rec = self

        class H(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length", 0) or 0)
                hit = Hit(self.command, self.path, self.headers.get("Content-Type", ""), self.rfile.read(n))
                with rec._cv:  # recorded before the answer, so a client's sequence keeps its order
                    rec.hits.append(hit)
                    rec._cv.notify_all()
                self.send_response(rec.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _any  # noqa: N815

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, scheme: str = "http", path: str = "/hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def wait(self, n: int, timeout: float = 10.0) -> list[Hit]:
        with self._cv:
            if not self._cv.wait_for(lambda: len(self.hits) >= n, timeout):
                raise AssertionError(f"expected {n} requests within {timeout} s, got {len(self.hits)}")
            return list(self.hits)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BlackHole:
    """A listening socket that never accepts: connections hang in the backlog, nothing answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()
