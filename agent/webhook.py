"""The HTTP trigger: ACR's trigger (触发器) webhook, a bearer-token update API, /healthz and /metrics.

A request never deploys anything by itself. It only asks the `Waker` to queue a reconcile
for some watch entries; the pass then asks the registry what is really there. The payload is
a hint: its digest is never passed on.

Endpoints (see docs/webhook.md):
    POST /hooks/aliyun/<token>   ACR trigger payload; wakes the entries watching that repository
    POST /v1/update              `Authorization: Bearer <token>`; wakes all, or `?container=name` (repeatable)
    GET  /healthz                no auth; `health()` plus {"status": "ok"}
    GET  /metrics                no auth; Prometheus text format

Built on the stdlib `http.server`, hardened: one request per connection, a whole-request
deadline of `client_timeout`, bodies capped at `max_body`, at most `max_clients` handler
threads (the next clients get a fast 503), JSON errors, no version in `Server:`, and the
token never in a response or a log line.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import ipaddress
import json
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from loguru import logger

from agent.metrics import Metrics

HOOK_PREFIX = "/hooks/aliyun/"
UPDATE_PATH = "/v1/update"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
SERVER_NAME = "cr-agent"

_LINGER_SECONDS = 1.0  # after an early answer, how long to drain an unread request body before closing
_LINGER_BYTES = 1 << 20
# Names and tags from a payload end up in log lines and reasons: no spaces, no control characters.
_NAME = re.compile(r"[^\s/\x00-\x1f\x7f]{1,255}")
_TAG = re.compile(r"[^\s\x00-\x1f\x7f]{1,128}")
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]{1,16}")


class Waker(Protocol):
    def wake(self, containers: frozenset[str] | None, reason: str) -> None:
        """Queue a reconcile for these watch entries (None = all) and return at once."""
        ...


@dataclass(frozen=True)
class WatchTarget:
    """One watch entry, as the server needs it."""

    container: str
    namespace: str
    repository: str
    tag: str


class _Answer(Exception):
    """A finished answer: raised from anywhere in a handler, sent once by the dispatcher."""

    def __init__(
        self,
        status: int,
        payload: dict[str, object] | None = None,
        *,
        outcome: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str = "application/json",
        note: str = "",
    ) -> None:
        self.status = status
        self.outcome = outcome
        self.headers = list(headers)
        self.content_type = content_type
        self.note = note
        if body is None:
            body = (
                json.dumps(payload if payload is not None else {}, default=str, sort_keys=True).encode()
                + b"\n"
            )
        self.body = body
        super().__init__(f"{status} {outcome}")


class _ClientGone(Exception):
    """The connection broke while the request was being read."""


def _error(status: int, message: str, outcome: str, **extra: object) -> _Answer:
    return _Answer(status, {"error": message, **extra}, outcome=outcome, note=message)


def _not_found(outcome: str = "not_found", note: str = "") -> _Answer:
    # The same answer for an unknown path and for a wrong or missing hook token: no hint.
    # (`note` goes to the agent's own log only.)
    return _Answer(HTTPStatus.NOT_FOUND, {"error": "not found"}, outcome=outcome, note=note)


def _method_not_allowed(allow: str) -> _Answer:
    return _Answer(
        HTTPStatus.METHOD_NOT_ALLOWED,
        {"error": f"method not allowed; use {allow}"},
        outcome="method_not_allowed",
        headers=[("Allow", allow)],
    )


def _same_secret(given: str, expected: bytes) -> bool:
    """Constant-time comparison that does not even leak the length (both sides hashed first)."""
    a = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(a, hashlib.sha256(expected).digest())


def _printable(text: str, limit: int = 200) -> str:
    out = "".join(c if c.isprintable() else "?" for c in text)
    return out if len(out) <= limit else out[:limit] + "…"


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); an empty host means every IPv4 interface."""
    m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.%\w]+)\]|([^\[\]:\s]*)):([0-9]{1,5})", listen)
    if not m:
        raise ValueError(f"listen must be host:port or [ipv6]:port, got {listen!r}")
    host = m.group(1) if m.group(1) is not None else (m.group(2) or "0.0.0.0")
    port = int(m.group(3))
    if port > 65535:
        raise ValueError(f"port out of range in {listen!r}")
    return host, port


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


def _linger(sock: socket.socket) -> None:
    """Half-close, then drain what the client still sends, briefly: closing a socket with unread
    data makes the kernel send a reset, and the client could lose the answer we just wrote."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    deadline = time.monotonic() + _LINGER_SECONDS
    drained = 0
    while drained < _LINGER_BYTES:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            sock.settimeout(left)
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        drained += len(chunk)


class _DeadlineReader(io.RawIOBase):
    """Socket reads that share one deadline, so a client trickling a byte at a time still times out."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("client did not send its request in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _LineReader(io.BufferedReader):
    """Remembers the last line read, to tell a header block that ended from one that was cut off."""

    last_line = b""

    def readline(self, size: int | None = -1, /) -> bytes:
        self.last_line = super().readline(-1 if size is None else size)
        return self.last_line


class _SocketWriter(io.BufferedIOBase):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data)


def _busy_response() -> bytes:
    body = b'{"error": "busy: too many concurrent clients, retry shortly"}\n'
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Server: {SERVER_NAME}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # not 0.9: even an answer to garbage gets a status line and headers
    server_version = SERVER_NAME
    sys_version = ""

    # -- connection set-up: one deadline for the whole request -----------------------------
    def setup(self) -> None:
        owner = self.server.owner
        self.connection = self.request
        self.connection.settimeout(owner.client_timeout)
        self._reader = _LineReader(_DeadlineReader(self.connection, time.monotonic() + owner.client_timeout))
        self.rfile = self._reader
        self.wfile = _SocketWriter(self.connection)
        self.close_connection = True
        self._unread_body = False  # the client declared a body we have not read to its end
        self._expect_continue = False
        self._answered = False
        self._kind: str | None = None
        self.path = ""
        self.command = ""

    def finish(self) -> None:
        if self._unread_body:
            _linger(self.connection)
        self.rfile.close()

    def version_string(self) -> str:
        return SERVER_NAME

    # -- the request loop, like the stdlib's but with our timeout handling and dispatch ----
    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                return
            if not self.parse_request():
                return  # parse_request answered through send_error
            if self._reader.last_line not in (b"\r\n", b"\n"):
                # The stdlib takes end-of-file for the end of the headers: a cut request is not a request.
                self._reply(
                    _error(
                        HTTPStatus.BAD_REQUEST, "incomplete request: the headers never ended", "bad_request"
                    )
                )
                return
            # Until it is read to its end, a declared body means: drain before closing (see _linger).
            declared = (self.headers.get("Content-Length") or "").strip()
            self._unread_body = bool(self.headers.get("Transfer-Encoding")) or declared not in ("", "0")
            self._dispatch()
        except TimeoutError:
            # Slow or half-open client. If the answer was already being written, there is nothing to add.
            self._reply(_error(HTTPStatus.REQUEST_TIMEOUT, "request not received in time", "timeout"))

    def handle_expect_100(self) -> bool:
        # Send "100 Continue" only when we decide to read the body, never before authentication.
        self._expect_continue = True
        return True

    # -- routing ------------------------------------------------------------------------
    def _dispatch(self) -> None:
        owner = self.server.owner
        try:
            path = urlsplit(self.path).path
            if path == HEALTH_PATH:
                answer = self._health()
            elif path == METRICS_PATH:
                answer = self._metrics()
            elif path == UPDATE_PATH:
                self._kind = "generic"
                answer = self._update()
            elif path == HOOK_PREFIX.rstrip("/") or path.startswith(HOOK_PREFIX):
                self._kind = "aliyun"
                answer = self._aliyun(unquote(path[len(HOOK_PREFIX) :]))
            else:
                answer = _not_found()
        except _Answer as early:
            answer = early
        except TimeoutError:
            raise
        except _ClientGone as exc:  # reset while we read the body: nobody to answer
            logger.debug("webhook: {} went away: {!r}", self.client_address[0], exc)
            self._count("client_gone")
            self._answered = True
            return
        except Exception as exc:  # noqa: BLE001 - any handler bug becomes a 500; the server keeps running
            logger.opt(exception=exc).error(
                "webhook: {} {} failed: {}", self.command, owner.loggable(self.path), owner.redact(repr(exc))
            )
            answer = _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the agent's log)", "error")
        self._reply(answer)

    def _health(self) -> _Answer:
        if self.command not in ("GET", "HEAD"):
            raise _method_not_allowed("GET, HEAD")
        state: dict[str, object] = {"status": "ok"}
        state.update(self.server.owner.health())
        return _Answer(HTTPStatus.OK, state, outcome="ok")

    def _metrics(self) -> _Answer:
        if self.command not in ("GET", "HEAD"):
            raise _method_not_allowed("GET, HEAD")
        body, content_type = self.server.owner.metrics.render()
        return _Answer(HTTPStatus.OK, body=body, content_type=content_type, outcome="ok")

    def _update(self) -> _Answer:
        owner = self.server.owner
        if self.command != "POST":
            raise _method_not_allowed("POST")
        scheme, _, given = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not _same_secret(given.strip(), owner.token_bytes):
            raise _Answer(
                HTTPStatus.UNAUTHORIZED,
                {"error": "missing or wrong bearer token"},
                outcome="unauthorized",
                headers=[("WWW-Authenticate", f'Bearer realm="{SERVER_NAME}"')],
                note="missing or wrong bearer token",
            )
        wanted: list[str] = []
        for key, value in parse_qsl(urlsplit(self.path).query, keep_blank_values=True):
            if key != "container":
                raise _error(
                    HTTPStatus.BAD_REQUEST,
                    f"unknown query parameter {key!r}; only 'container'",
                    "bad_request",
                )
            if not value:
                raise _error(HTTPStatus.BAD_REQUEST, "container= needs a container name", "bad_request")
            wanted.append(value)
        known = {t.container for t in owner.targets}
        unknown = sorted(set(wanted) - known)
        if unknown:
            names = ", ".join(repr(_printable(n, 100)) for n in unknown)
            raise _error(
                HTTPStatus.NOT_FOUND,
                f"no watch entry for container {names}",
                "unknown_container",
                unknown=unknown,
            )
        self._read_body()  # ignored, but capped and consumed
        containers = frozenset(wanted) if wanted else None
        queued = sorted(containers if containers is not None else known)
        owner.waker.wake(containers, f"api {UPDATE_PATH}")
        what = "all" if containers is None else ", ".join(queued)
        return _Answer(HTTPStatus.ACCEPTED, {"queued": queued}, outcome="accepted", note=f"queued {what}")

    def _aliyun(self, token: str) -> _Answer:
        owner = self.server.owner
        if not token or not _same_secret(token, owner.token_bytes):
            raise _not_found("unauthorized", "wrong or missing hook token")
        if self.command != "POST":
            raise _method_not_allowed("POST")
        self._check_json_content_type()
        body = self._read_body()
        namespace, name, tag = _parse_aliyun(body)
        matching = owner.match(namespace, name, tag)
        image = f"{namespace}/{name}:{tag}"
        if not matching:
            return _Answer(
                HTTPStatus.ACCEPTED,
                {"queued": []},
                outcome="ignored",
                note=f"{image}: no watch entry follows it",
            )
        owner.waker.wake(frozenset(matching), f"aliyun hook {image}")
        queued = sorted(matching)
        return _Answer(
            HTTPStatus.ACCEPTED,
            {"queued": queued},
            outcome="accepted",
            note=f"{image}: queued {', '.join(queued)}",
        )

    # -- request bodies ------------------------------------------------------------------
    def _check_json_content_type(self) -> None:
        raw = self.headers.get("Content-Type")
        media = (raw or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            got = "none" if raw is None else repr(_printable(raw, 100))
            raise _error(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                f"Content-Type must be application/json (charset parameters are fine), got {got}",
                "unsupported_media_type",
            )

    def _read_body(self) -> bytes:
        """The request body, at most `max_body` bytes; 413 as soon as it is known to be larger."""
        try:
            return self._read_framed_body()
        except ConnectionError as exc:
            raise _ClientGone(repr(exc)) from exc

    def _read_framed_body(self) -> bytes:
        limit = self.server.owner.max_body
        lengths = self.headers.get_all("Content-Length") or []
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if encodings:
            if lengths:
                raise _error(
                    HTTPStatus.BAD_REQUEST, "both Content-Length and Transfer-Encoding given", "bad_request"
                )
            coding = ",".join(encodings).strip().lower()
            if coding != "chunked":
                raise _error(
                    HTTPStatus.NOT_IMPLEMENTED, f"unsupported Transfer-Encoding {coding!r}", "bad_request"
                )
            return self._read_chunked(limit)
        if not lengths:
            return b""  # HTTP/1.1: no Content-Length and no Transfer-Encoding means no body
        values = {v.strip() for v in lengths}
        value = values.pop()
        if values or not _DIGITS.fullmatch(value):
            raise _error(HTTPStatus.BAD_REQUEST, "invalid Content-Length", "bad_request")
        if len(value) > 18 or int(value) > limit:
            raise _error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body larger than {limit} bytes",
                "too_large",
                limit=limit,
            )
        size = int(value)
        if size == 0:
            return b""
        self._send_continue()
        data = self.rfile.read(size)
        if len(data) < size:
            raise _error(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length", "bad_request")
        self._unread_body = False
        return data

    def _read_chunked(self, limit: int) -> bytes:
        self._send_continue()
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise _error(HTTPStatus.BAD_REQUEST, "malformed chunked body", "bad_request")
            size_text = line.split(b";", 1)[0].strip().decode("latin-1")
            if not _HEX.fullmatch(size_text):
                raise _error(HTTPStatus.BAD_REQUEST, "malformed chunk size", "bad_request")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(out) + size > limit:
                raise _error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"body larger than {limit} bytes",
                    "too_large",
                    limit=limit,
                )
            data = self.rfile.read(size)
            if len(data) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _error(HTTPStatus.BAD_REQUEST, "malformed chunked body", "bad_request")
            out += data
        for _ in range(64):  # trailer fields, ignored, then the empty line
            line = self.rfile.readline(1024)
            if line in (b"\r\n", b"\n"):
                self._unread_body = False
                return bytes(out)
            if not line.endswith(b"\n"):
                break
        raise _error(HTTPStatus.BAD_REQUEST, "malformed chunked trailer", "bad_request")

    def _send_continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    # -- answers and logs ------------------------------------------------------------------
    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors found by the stdlib parser (bad request line, too many headers...): JSON too."""
        try:
            text = HTTPStatus(code).phrase
        except ValueError:
            text = "error"
        self._reply(_error(code, message or text, "bad_request"))

    def _reply(self, answer: _Answer) -> None:
        if self._answered:
            return
        self._answered = True
        owner = self.server.owner
        self._count(answer.outcome)
        level = "debug" if self._kind is None and answer.status == HTTPStatus.OK else "info"
        if answer.outcome == "unauthorized":
            level = "warning"
        elif answer.status >= 500:
            level = "error"
        self._log(level, answer.status, answer.note)
        body = owner.scrub(answer.body)
        try:
            self.connection.settimeout(owner.client_timeout)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in answer.headers:
                self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError as exc:
            logger.debug("webhook: could not answer {}: {!r}", self.client_address[0], exc)

    def _count(self, outcome: str) -> None:
        if self._kind is not None:
            self.server.owner.metrics.record_hook(self._kind, outcome)

    def _log(self, level: str, status: int, note: str) -> None:
        owner = self.server.owner
        method = _printable(self.command or "-", 20)
        logger.log(
            level.upper(),
            "webhook: {} {} {} from {}{}",
            status,
            method,
            owner.loggable(self.path) or "-",
            self.client_address[0],
            f": {owner.redact(note)}" if note else "",
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per decision is logged by _reply instead

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("webhook: {}", self.server.owner.redact(format % args))


def _parse_aliyun(body: bytes) -> tuple[str, str, str]:
    """(namespace, name, tag) from an ACR trigger payload; 400 naming the problem otherwise."""

    def bad(message: str) -> _Answer:
        return _error(HTTPStatus.BAD_REQUEST, message, "bad_request")

    if not body.strip():
        raise bad("empty body: expected the ACR trigger JSON payload")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise bad(f"malformed JSON: {_printable(str(exc), 120)}") from None
    if not isinstance(payload, dict):
        raise bad("payload must be a JSON object")
    repo = payload.get("repository")
    if not isinstance(repo, dict):
        raise bad("missing field 'repository' (an object)")
    namespace, name = repo.get("namespace"), repo.get("name")
    if not (isinstance(namespace, str) and namespace and isinstance(name, str) and name):
        full = repo.get("repo_full_name")
        if not isinstance(full, str) or not full:
            raise bad(
                "missing field 'repository.namespace' and 'repository.name' (or 'repository.repo_full_name')"
            )
        namespace, _, name = full.partition("/")
        if not namespace or not name or "/" in name:
            raise bad("field 'repository.repo_full_name' must be <namespace>/<name>")
    push = payload.get("push_data")
    if not isinstance(push, dict):
        raise bad("missing field 'push_data' (an object)")
    tag = push.get("tag")
    if not isinstance(tag, str) or not tag:
        raise bad("missing field 'push_data.tag' (a string)")
    if not _NAME.fullmatch(namespace):
        raise bad("field 'repository.namespace' is not a valid name")
    if not _NAME.fullmatch(name):
        raise bad("field 'repository.name' is not a valid name")
    if not _TAG.fullmatch(tag):
        raise bad("field 'push_data.tag' is not a valid tag")
    return namespace, name, tag


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a bounded number of handler threads and no reverse DNS at bind."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, owner: WebhookServer) -> None:
        self.address_family = family
        self.owner = owner
        self._slots = threading.BoundedSemaphore(owner.max_clients)
        self._reject_slots = threading.BoundedSemaphore(owner.max_clients)
        self._lock = threading.Lock()
        self._handlers: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__(address, _Handler)

    def serve(self) -> None:
        """Accept until wake() is called. Unlike serve_forever(), no polling: stop() is immediate."""
        self.timeout = 0  # handle_request() below only runs when a connection is already waiting
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_r in ready:
                    return
                self.handle_request()

    def wake(self) -> None:
        """Make serve() return."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # HTTPServer's version calls getfqdn(): a DNS query, and slow
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            self._spawn(self._serve, request, client_address)
        elif self._reject_slots.acquire(blocking=False):
            self._spawn(self._refuse, request, client_address)
        else:  # a flood: even the "busy" answers are at their limit
            self.owner.metrics.record_hook("unknown", "busy")
            self.shutdown_request(request)

    def _spawn(self, target: Callable[[Any, Any], None], request: Any, client_address: Any) -> None:
        def run() -> None:
            try:
                target(request, client_address)
            finally:
                with self._lock:
                    self._handlers.discard(thread)
                    self._sockets.discard(request)

        thread = threading.Thread(target=run, name="cr-agent-webhook", daemon=True)
        with self._lock:
            self._handlers.add(thread)
            self._sockets.add(request)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: Any, client_address: Any) -> None:
        try:
            self.owner.metrics.record_hook("unknown", "busy")
            logger.warning(
                "webhook: 503 to {}: {} requests already in progress",
                client_address[0],
                self.owner.max_clients,
            )
            request.settimeout(_LINGER_SECONDS)
            request.sendall(_busy_response())
            _linger(request)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)
            self._reject_slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.opt(exception=True).debug("webhook: connection from {} ended with an error", client_address[0])

    def cut_connections(self) -> list[threading.Thread]:
        """Shut every open client connection (blocked reads return at once); the handler threads."""
        with self._lock:
            sockets, threads = list(self._sockets), list(self._handlers)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return threads


class WebhookServer:
    """The webhook HTTP server. `start()` listens and serves in a daemon thread; `stop()` ends it."""

    def __init__(
        self,
        listen: str,
        *,
        token: str,
        targets: Sequence[WatchTarget],
        waker: Waker,
        health: Callable[[], dict[str, object]],
        metrics: Metrics,
        match_tag: bool = False,
        max_body: int = 64 * 1024,
        client_timeout: float = 10.0,
        max_clients: int = 64,
    ) -> None:
        if not token:
            raise ValueError("webhook token must not be empty")
        if max_body < 1 or max_clients < 1 or client_timeout <= 0:
            raise ValueError("max_body, max_clients and client_timeout must be positive")
        self._host, self._port = parse_listen(listen)
        self._token = token
        self.token_bytes = token.encode("utf-8", "surrogateescape")
        self.targets = tuple(targets)
        self.waker = waker
        self.health = health
        self.metrics = metrics
        self.match_tag = match_tag
        self.max_body = max_body
        self.client_timeout = client_timeout
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"WebhookServer(listen={self._host}:{self._port}, targets={len(self.targets)})"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Bind, listen and serve in a daemon thread. Returns once the socket is listening."""
        with self._lock:
            if self._httpd is not None or self._stopped:
                raise RuntimeError("a WebhookServer can be started only once")
            family, host = _resolve(self._host, self._port)
            try:
                httpd = _Server((host, self._port), family, self)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"webhook: cannot listen on {self._host}:{self._port}: {exc.strerror}"
                ) from exc
            self._httpd = httpd
            self._thread = threading.Thread(target=httpd.serve, name="cr-agent-webhook-accept", daemon=True)
            self._thread.start()
        host, port = self.address
        logger.info("webhook: listening on {}:{} ({} watch entries)", host, port, len(self.targets))

    def stop(self) -> None:
        """Stop accepting, cut open connections and join the threads. Safe to call more than once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.wake()
        thread.join()
        httpd.server_close()
        deadline = time.monotonic() + 5.0
        for handler in httpd.cut_connections():
            handler.join(max(0.0, deadline - time.monotonic()))
        logger.info("webhook: stopped")

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): with port 0 in `listen`, the port the OS chose."""
        if self._httpd is None:
            raise RuntimeError("the webhook server is not started")
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    # -- used by the handlers -------------------------------------------------------------
    def match(self, namespace: str, name: str, tag: str) -> set[str]:
        """Containers whose watch entry follows `namespace/name` (and `tag`, with match_tag)."""
        return {
            t.container
            for t in self.targets
            if t.namespace == namespace and t.repository == name and (not self.match_tag or t.tag == tag)
        }

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    def scrub(self, body: bytes) -> bytes:
        """Last line of defence: the token never leaves in a response body."""
        if self.token_bytes in body:
            logger.warning("webhook: a response contained the token; it was replaced with ***")
            body = body.replace(self.token_bytes, b"***")
        return body

    def loggable(self, raw_path: str) -> str:
        """The request path as logged: the hook token (right or wrong) becomes ***."""
        path = urlsplit(raw_path).path if raw_path else ""
        if path.startswith(HOOK_PREFIX):
            return HOOK_PREFIX + "***"
        return _printable(self.redact(raw_path))
