"""The answers behind `GET /`, `/api/status` and `/ui/*` (the access rules are in webhook/routes.py).

Each answer reads the data once through `data` (snapshot.py: state.db only, no Docker or registry call).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from agent.webhook.messages import Reply, Request, error_reply

# No inline script, no inline style, nothing from another origin; the SVG uses presentation attributes.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_ASSETS = {"status.css": "text/css; charset=utf-8", "refresh.js": "text/javascript; charset=utf-8"}
_STATIC = Path(__file__).parent / "static"


class StatusPage:
    """The page in `language` (None: the browser's Accept-Language), from the data `data` returns."""

    def __init__(self, data: Callable[[], dict[str, Any]], language: str | None = None) -> None:
        self._data = data
        self._language = language
        self._assets: dict[str, bytes] = {}

    def answer(self, request: Request) -> Reply:
        path = request.path
        if path.startswith("/ui/"):
            return self._asset(path[len("/ui/") :])
        if path == "/api/status":
            body = json.dumps(self._data(), indent=1, sort_keys=True, default=str).encode() + b"\n"
            return Reply(HTTPStatus.OK, body, headers=HEADERS)
        from agent.ui.page import render  # Jinja2: built on the first request
        from agent.ui.words import from_accept_language  # with the page

        lang = self._language or from_accept_language(request.header("accept-language"))
        query = dict(parse_qsl(request.query))
        html = render(
            self._data(), lang, fragment=query.get("fragment") == "1", open_entry=query.get("open", "")
        )
        return Reply(HTTPStatus.OK, html.encode(), content_type="text/html; charset=utf-8", headers=HEADERS)

    def _asset(self, name: str) -> Reply:
        if name not in _ASSETS:
            return error_reply(HTTPStatus.NOT_FOUND, "not found", "not_found")
        if name not in self._assets:
            self._assets[name] = (_STATIC / name).read_bytes()
        return Reply(HTTPStatus.OK, self._assets[name], content_type=_ASSETS[name], headers=HEADERS)
