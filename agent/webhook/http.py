"""HTTP/1.1 for small JSON APIs, with no agent knowledge: one event loop reads requests, worker lanes answer.

h11 parses the request (head, Content-Length or chunked body); this module adds what a server exposed
to the internet needs around it:

- the whole request head is capped (`max_head`) before it is buffered: 431 past it;
- bodies are capped (`max_body`): 413 as soon as the declared or received size is over;
- one deadline (`timeout`) for the whole request, however slowly it trickles in: then a clean 408;
- `Expect: 100-continue` is answered only once the app's `Route` lets the body be read;
- reading is done by one selector thread, so a slow client costs a socket and at most `max_head`
  bytes, never a thread; answers are computed in bounded worker lanes (`lanes`), so a stuck lane
  (hooks) never delays another (health, metrics): a full lane answers 503 at once;
- at most `max_connections` open connections and `max_per_ip` per client address: under that
  pressure the connection idle longest while still sending its request is closed (408) to make room;
- one request per connection; after an early answer, unread input is drained briefly before closing,
  so the client reads the answer instead of a reset.

The app (`App`) maps a request head to a `Route`: an early `Reply`, or a function from the full
`Request` to a `Reply`, and the lane that runs it. It hears about every finished exchange in `done`.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus

import h11
from loguru import logger

from agent.webhook.lanes import Lane
from agent.webhook.listen import bind
from agent.webhook.messages import App, Reply, Request, Route, error_reply, render

_LINGER_SECONDS = 1.0  # after an early answer, how long to drain unread input before closing
_LINGER_BYTES = 1 << 20
_RECV = 8192  # small reads keep h11's buffer within max_head + _RECV


@dataclass(frozen=True)
class Limits:
    max_head: int = 16 * 1024
    max_body: int = 64 * 1024
    timeout: float = 10.0
    max_connections: int = 256
    max_per_ip: int = 32
    lanes: Mapping[str, int] = field(default_factory=lambda: {"probe": 8, "hook": 16})


_READING, _WORKING, _WRITING, _LINGERING, _CLOSED = "reading", "working", "writing", "lingering", "closed"


class _Conn:
    def __init__(self, sock: socket.socket, peer: str, limits: Limits) -> None:
        self.sock = sock
        self.peer = peer
        self.parser = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)
        self.state = _READING
        self.deadline = time.monotonic() + limits.timeout
        self.last_active = time.monotonic()
        self.head: Request | None = None
        self.route: Route | None = None
        self.body = bytearray()
        self.out = b""
        self.complete = False  # the whole request was read
        self.drained = 0
        self.received = 0  # bytes received before the head was complete
        self.then = _LINGERING  # the state to enter once `out` is sent


class Server:
    """Listens on (host, port) and serves `app`. `start()` returns once listening; `stop()` ends it."""

    def __init__(self, host: str, port: int, app: App, limits: Limits, *, name: str) -> None:
        self._host, self._port = host, port
        self._app = app
        self._limits = limits
        self._name = name
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._conns: set[_Conn] = set()
        self._per_ip: dict[str, int] = {}
        self._lanes = {lane: Lane(f"{name}-{lane}", n) for lane, n in limits.lanes.items()}
        self._posted: deque[tuple[_Conn, Reply]] = deque()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise RuntimeError("the server is not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._listener = bind(self._host, self._port)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._loop, name=f"{self._name}-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every connection, wait briefly for the workers. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(5.0)
        deadline = time.monotonic() + 5.0
        for lane in self._lanes.values():
            lane.stop(deadline)
        self._wake_r.close()
        self._wake_w.close()
        self._selector.close()

    # -- the loop ---------------------------------------------------------------------
    def _loop(self) -> None:
        assert self._listener is not None
        try:
            while not self._stopping:
                now = time.monotonic()
                deadlines = [c.deadline for c in self._conns if c.state != _WORKING]
                timeout = max(0.0, min(deadlines) - now) if deadlines else None
                for key, mask in self._selector.select(timeout):
                    try:
                        self._on_event(key, mask)
                    except Exception:  # noqa: BLE001 - a bug costs one connection, never the server
                        logger.opt(exception=True).error("{}: internal error; connection closed", self._name)
                        if isinstance(key.data, _Conn):
                            self._close(key.data)
                self._expire(time.monotonic())
        finally:
            self._selector.unregister(self._listener)
            self._listener.close()
            for conn in list(self._conns):
                self._close(conn)

    def _on_event(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.fileobj is self._listener:
            self._accept()
        elif key.fileobj is self._wake_r:
            self._take_posted()
        elif mask & selectors.EVENT_WRITE:
            self._flush(key.data)
        else:
            self._on_readable(key.data)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            sock, address = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        conn = _Conn(sock, str(address[0]), self._limits)
        if not self._make_room(conn.peer):
            busy = self._busy("too many open connections")
            self._app.done(conn.peer, None, None, busy)
            self._send_and_close(conn, busy)
            return
        self._conns.add(conn)
        self._per_ip[conn.peer] = self._per_ip.get(conn.peer, 0) + 1
        self._selector.register(sock, selectors.EVENT_READ, conn)

    def _make_room(self, peer: str) -> bool:
        """Under pressure, close the connection idle longest while still sending its request."""
        limits = self._limits
        if self._per_ip.get(peer, 0) >= limits.max_per_ip:
            pool = [c for c in self._conns if c.peer == peer]
        elif len(self._conns) >= limits.max_connections:
            pool = list(self._conns)
        else:
            return True
        idle = [c for c in pool if c.state == _READING]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.last_active)
        self._answer(victim, error_reply(HTTPStatus.REQUEST_TIMEOUT, "closed to make room", "evicted"))
        if victim in self._conns:  # the answer is still being written: stop counting it now
            self._close(victim)
        return True

    def _busy(self, why: str) -> Reply:
        return replace(
            error_reply(HTTPStatus.SERVICE_UNAVAILABLE, f"busy: {why}, retry shortly", "busy"),
            headers=(("Retry-After", "1"),),
        )

    def _send_and_close(self, conn: _Conn, reply: Reply) -> None:
        with contextlib.suppress(OSError):
            conn.sock.send(render(reply, server=self._name, head_only=False))
        conn.sock.close()

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns if c.state != _WORKING and c.deadline <= now]:
            if conn.state == _READING:
                reply = error_reply(HTTPStatus.REQUEST_TIMEOUT, "request not received in time", "timeout")
                self._answer(conn, reply)
            else:
                self._close(conn)

    # -- reading ----------------------------------------------------------------------
    def _on_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV if conn.state == _READING else 65536)
        except BlockingIOError:
            return
        except OSError:
            self._gone(conn)
            return
        if conn.state == _LINGERING:
            conn.drained += len(data)
            if not data or conn.drained >= _LINGER_BYTES:
                self._close(conn)
            return
        if conn.state != _READING:
            return
        conn.last_active = time.monotonic()
        if conn.head is None:
            conn.received += len(data)
        conn.parser.receive_data(data)
        try:
            self._advance(conn)
        except h11.RemoteProtocolError as exc:
            self._answer(conn, self._protocol_error(conn, exc, eof=not data))

    def _protocol_error(self, conn: _Conn, exc: h11.RemoteProtocolError, *, eof: bool) -> Reply:
        if eof and conn.head is None:
            return error_reply(
                HTTPStatus.BAD_REQUEST, "incomplete request: the headers never ended", "bad_request"
            )
        if eof:
            return error_reply(HTTPStatus.BAD_REQUEST, "body shorter than declared", "bad_request")
        if exc.error_status_hint == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
            limit = self._limits.max_head
            return error_reply(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"request head larger than {limit} bytes",
                "head_too_large",
                limit=limit,
            )
        outcome = "not_implemented" if exc.error_status_hint == HTTPStatus.NOT_IMPLEMENTED else "bad_request"
        return error_reply(exc.error_status_hint, str(exc), outcome)

    def _advance(self, conn: _Conn) -> None:
        while conn.state == _READING:
            event = conn.parser.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.ConnectionClosed):
                self._close(conn)  # closed before sending anything
            elif isinstance(event, h11.Request):
                # h11 caps only an incomplete head: a whole one that arrived at once is measured here.
                if conn.received - len(conn.parser.trailing_data[0]) > self._limits.max_head:
                    raise h11.RemoteProtocolError(
                        "head too large", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
                    )
                self._on_head(conn, event)
            elif isinstance(event, h11.Data):
                conn.body += event.data
                if len(conn.body) > self._limits.max_body:
                    self._answer(conn, self._too_large())
            elif isinstance(event, h11.EndOfMessage):
                conn.complete = True
                self._dispatch(conn)

    def _on_head(self, conn: _Conn, event: h11.Request) -> None:
        head = Request(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("latin-1"),
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers),
            peer=conn.peer,
        )
        conn.head = head
        try:
            conn.route = route = self._app.route(head)
        except Exception as exc:  # noqa: BLE001 - an app bug is a 500, the server goes on
            self._answer(conn, self._internal_error(head, exc))
            return
        if route.early is not None:
            self._answer(conn, route.early)
            return
        lengths = head.header_all("content-length")
        if lengths and head.header_all("transfer-encoding"):
            reply = error_reply(
                HTTPStatus.BAD_REQUEST, "both Content-Length and Transfer-Encoding given", "bad_request"
            )
            self._answer(conn, reply)
        elif lengths and int(lengths[0]) > self._limits.max_body:
            self._answer(conn, self._too_large())
        elif conn.parser.they_are_waiting_for_100_continue:
            conn.out = b"HTTP/1.1 100 Continue\r\n\r\n"
            self._flush(conn, then=_READING)

    def _too_large(self) -> Reply:
        limit = self._limits.max_body
        return error_reply(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {limit} bytes", "too_large", limit=limit
        )

    def _internal_error(self, head: Request, exc: Exception) -> Reply:
        logger.opt(exception=exc).error("{}: {} failed: {!r}", self._name, head.method, exc)
        return error_reply(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the agent's log)", "error")

    def _gone(self, conn: _Conn) -> None:
        if conn.head is not None and conn.state == _READING:
            self._app.done(conn.peer, conn.head, conn.route, None)
        self._close(conn)

    # -- answering --------------------------------------------------------------------
    def _dispatch(self, conn: _Conn) -> None:
        route, answer = conn.route, conn.route.answer if conn.route else None
        assert conn.head is not None and route is not None and answer is not None
        request = replace(conn.head, body=bytes(conn.body))

        def work() -> Callable[[], None]:
            try:
                reply = answer(request)
            except Exception as exc:  # noqa: BLE001 - any handler bug becomes a 500
                reply = self._internal_error(request, exc)
            return lambda: self._post(conn, reply)

        if not self._lanes[route.lane].submit(work):
            self._answer(conn, self._busy(f"too many {route.lane} requests in progress"))
            return
        conn.state = _WORKING
        self._selector.unregister(conn.sock)

    def _post(self, conn: _Conn, reply: Reply) -> None:
        """From a worker: hand the reply to the loop, which writes it."""
        with self._lock:
            self._posted.append((conn, reply))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _take_posted(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)
        with self._lock:
            posted, self._posted = list(self._posted), deque()
        for conn, reply in posted:
            if conn in self._conns:
                self._selector.register(conn.sock, selectors.EVENT_READ, conn)
                self._answer(conn, reply)

    def _answer(self, conn: _Conn, reply: Reply) -> None:
        head = conn.head
        self._app.done(conn.peer, head, conn.route, reply)
        conn.out += render(reply, server=self._name, head_only=head is not None and head.method == "HEAD")
        conn.deadline = time.monotonic() + self._limits.timeout
        self._flush(conn, then=_LINGERING)

    def _flush(self, conn: _Conn, then: str | None = None) -> None:
        """Send what is pending; once all is sent, enter `then` (by default the state set before)."""
        if then is not None:
            conn.then = then
        then = conn.then
        try:
            sent = conn.sock.send(conn.out) if conn.out else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            conn.state = _WRITING
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        conn.state = then
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
        if then == _LINGERING:
            if conn.complete:
                self._close(conn)
                return
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            conn.deadline = time.monotonic() + _LINGER_SECONDS

    def _close(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        self._conns.discard(conn)
        left = self._per_ip.get(conn.peer, 1) - 1
        if left:
            self._per_ip[conn.peer] = left
        else:
            self._per_ip.pop(conn.peer, None)
        if conn.state != _WORKING:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        conn.state = _CLOSED
        conn.sock.close()
