"""What the HTTP server and its app exchange: requests, replies, routes. No I/O here."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    """A request head, and its body once read. Header names are lower case."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    peer: str
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


@dataclass(frozen=True)
class Reply:
    """An answer. `outcome` names it for metrics; `note` explains it in the log, never to the client."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    outcome: str = "ok"
    note: str = ""


def json_reply(
    status: int,
    payload: Mapping[str, object],
    *,
    outcome: str = "ok",
    note: str = "",
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    body = json.dumps(dict(payload), default=str, sort_keys=True).encode() + b"\n"
    return Reply(status, body, headers=headers, outcome=outcome, note=note)


def error_reply(status: int, message: str, outcome: str, **extra: object) -> Reply:
    return json_reply(status, {"error": message, **extra}, outcome=outcome, note=message)


@dataclass(frozen=True)
class Route:
    """What to do with a request whose head has arrived."""

    lane: str
    answer: Callable[[Request], Reply] | None = None  # runs in the lane, once the body is read
    early: Reply | None = None  # or: answer now, without reading the body
    kind: str | None = None  # the app's own tag, handed back in `done`


class App(Protocol):
    def route(self, head: Request) -> Route: ...

    def done(self, peer: str, head: Request | None, route: Route | None, reply: Reply | None) -> None:
        """One exchange finished: `reply` was sent (None: the client went away first)."""
        ...


def render(reply: Reply, *, server: str, head_only: bool) -> bytes:
    """The response bytes: status line, our fixed headers, the reply's, the body."""
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [
        f"HTTP/1.1 {reply.status} {phrase}",
        f"Server: {server}",
        f"Content-Type: {reply.content_type}",
        f"Content-Length: {len(reply.body)}",
        "Cache-Control: no-store",
        *(f"{k}: {v}" for k, v in reply.headers),
        "Connection: close",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + reply.body
