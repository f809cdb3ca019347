"""A TLS front for the local docker-registry that answers for every ACR registry host name.

Like ACR's registries, it speaks the Bearer token flow (`WWW-Authenticate: Bearer realm=.../_auth`) and
takes only credentials valid for the host asked: a temporary token issued for that host's region or
instance (`accepts`), or the fixed login (the user's own registry password, what `docker login` would
store). Anonymous callers get a token that reads only public repositories (`public`). A temporary token
whose RAM user may not pull (`pull_denied`) logs in but is refused manifests and blobs (403 DENIED).
It forwards everything else to the backend.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support import acr_world, env

_REPO_PATH = re.compile(r"^/v2/(?P<repo>.+?)/(?P<kind>manifests|blobs|tags)/")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "authorization", "host"}


class RegistryFront:
    def __init__(
        self,
        accepts: Callable[[str, str, str], bool],
        *,
        host: str = acr_world.REGISTRY_IP,
        port: int = 443,
        backend: str = env.REGISTRY,
    ) -> None:
        self.accepts = accepts  # (scope, user, password) -> bool
        self.public: Callable[[str], bool] = lambda repo: False  # anonymous pulls of this ns/repo
        self.pull_denied: Callable[[str], bool] = lambda password: False  # a token without cr:PullRepository
        self._bearer: dict[
            str, tuple[str, str, float]
        ] = {}  # token -> (host, who, expiry); who: login|anonymous|<password>
        self.backend = backend
        self.requests: Counter[str] = Counter()  # "<host> <METHOD> <path>"
        self.refused: Counter[str] = Counter()  # host -> 401s for wrong credentials
        self._lock = threading.Lock()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(acr_world.CERT_FILE, acr_world.KEY_FILE)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self), bind_and_activate=False)
        self._server.allow_reuse_address = True
        self._server.daemon_threads = True
        self._server.server_bind()
        self._server.server_activate()
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> RegistryFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()

    def count(self, key: str, refused: bool = False) -> None:
        with self._lock:
            (self.refused if refused else self.requests)[key] += 1

    def who(self, host: str, scope: str, authorization: str) -> str | None:
        """Whose credentials these are on `host`: "login", a temporary token's password, "anonymous"; None: refused."""
        kind, _, value = authorization.partition(" ")
        if kind.lower() == "bearer":
            with self._lock:
                issued = self._bearer.get(value.strip())
            ok = issued is not None and issued[0] == host and issued[2] > time.time()
            return issued[1] if ok and issued is not None else None
        if kind.lower() != "basic":
            return "anonymous" if not authorization else None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        if (user, password) == (env.REGISTRY_USER, env.REGISTRY_PASSWORD):
            return "login"
        return password if self.accepts(scope, user, password) else None

    def issue(self, host: str, who: str) -> str:
        token = "bearer-" + secrets.token_hex(12)
        with self._lock:
            self._bearer[token] = (host, who, time.time() + 300)
        return token


def send_reply(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes = b""
) -> None:
    """One whole answer with Content-Length (no body for HEAD)."""
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _handler_for(front: RegistryFront) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"front": front})


class _Handler(BaseHTTPRequestHandler):
    front: RegistryFront
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        send_reply(self, status, headers, body)

    def _forward(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        scope = acr_world.scope_of(host)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if scope is None:
            return self._reply(404, {}, f"no registry {host!r} here\n".encode())
        if self.path.startswith("/_auth"):
            return self._token(host, scope)
        m = _REPO_PATH.match(self.path.split("?")[0])
        reading = self.command in ("GET", "HEAD")
        who = self.front.who(host, scope, self.headers.get("Authorization", ""))
        if (
            who == "anonymous"
            and not (m and reading and self.front.public(m["repo"]))
            and self.path != "/v2/"
        ):
            who = None
        if who is None or (who == "anonymous" and not self.headers.get("Authorization")):
            self.front.count(host, refused=bool(self.headers.get("Authorization")))
            challenge = f'Bearer realm="https://{host}/_auth",service="{host}"'
            if m:
                challenge += f',scope="repository:{m["repo"]}:{"pull" if reading else "pull,push"}"'
            denied = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            return self._reply(
                401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, denied
            )
        if m and m["kind"] != "tags" and who not in ("login", "anonymous") and self.front.pull_denied(who):
            self.front.count(host, refused=True)
            denied = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
            return self._reply(403, {"Content-Type": "application/json"}, denied)
        self.front.count(f"{host} {self.command} {self.path.split('?')[0]}")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        headers["Accept"] = ", ".join(self.headers.get_all("Accept") or [])  # docker sends one per type
        raw = f"{env.REGISTRY_USER}:{env.REGISTRY_PASSWORD}".encode()
        headers.update({"Authorization": "Basic " + base64.b64encode(raw).decode(), "Host": host})
        headers["X-Forwarded-Proto"] = "https"
        conn = http.client.HTTPConnection(self.front.backend, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP | {"content-length"}}
            self._reply(resp.status, out, payload)
        finally:
            conn.close()

    def _token(self, host: str, scope: str) -> None:
        """The token service: any valid login, or none (anonymous: public repositories only)."""
        authorization = self.headers.get("Authorization", "")
        who = (
            self.front.who(host, scope, authorization) if authorization.lower().startswith("basic ") else None
        )
        if who is None and authorization:
            self.front.count(host, refused=True)
            return self._reply(
                401, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
            )
        token = self.front.issue(host, who or "anonymous")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": 300,
            "scope": query.get("scope", [""])[0],
        }
        self._reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
