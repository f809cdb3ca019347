"""The endpoints, as functions from a request to a reply, with auth in one place (`_Auth`).

    POST /hooks/aliyun/<token>   ACR trigger payload; wakes the entries watching that repository
    POST /v1/update              `Authorization: Bearer <token>`; wakes all, or `?container=name` (repeatable)
    GET  /healthz                liveness (200 or 503); the details with the bearer token, or on a
                                 loopback [metrics] listener
    GET  /metrics                Prometheus text format

A request never deploys anything by itself: it asks the `Waker` to queue a reconcile.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qsl, unquote

from loguru import logger

from agent.config.patterns import TagPattern, matches
from agent.metrics import Metrics
from agent.secret import Secret, redact
from agent.webhook.acr import BadPayload, parse_push, printable
from agent.webhook.messages import Reply, Request, Route, error_reply, json_reply

HOOK_PREFIX = "/hooks/aliyun/"
UPDATE_PATH = "/v1/update"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
PROBE, HOOK = "probe", "hook"  # the worker lanes: health and metrics never wait behind hooks
UNAUTHORIZED_LOG_INTERVAL = 60.0


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
    pattern: TagPattern | None = None  # with match = "tag", a pushed tag matching it counts

    def follows(self, tag: str) -> bool:
        return tag == self.tag if self.pattern is None else matches(self.pattern, tag)


# The same answer for an unknown path and for a wrong or missing hook token: no hint.
_NOT_FOUND = json_reply(HTTPStatus.NOT_FOUND, {"error": "not found"}, outcome="not_found")


def _method_not_allowed(allow: str) -> Reply:
    return json_reply(
        HTTPStatus.METHOD_NOT_ALLOWED,
        {"error": f"method not allowed; use {allow}"},
        outcome="method_not_allowed",
        headers=(("Allow", allow),),
    )


class _Auth:
    """The one place that knows the token: constant-time checks that do not even leak its length."""

    def __init__(self, token: Secret | None) -> None:
        self._token = token.reveal() if token else ""
        self._digest = hashlib.sha256(self._token.encode("utf-8", "surrogateescape")).digest()

    def _same(self, given: str) -> bool:
        a = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        return bool(self._token) and hmac.compare_digest(a, self._digest)

    def bearer(self, request: Request) -> bool:
        scheme, _, given = (request.header("authorization") or "").strip().partition(" ")
        return scheme.lower() == "bearer" and self._same(given.strip())

    def path_token(self, given: str) -> bool:
        return bool(given) and self._same(given)


class _Throttle:
    """At most one log line per key and interval; counts what it kept quiet."""

    def __init__(self, interval: float, max_keys: int = 1024) -> None:
        self.interval = interval
        self._max_keys = max_keys
        self._seen: dict[str, tuple[float, int]] = {}

    def check(self, key: str) -> int | None:
        """None: stay quiet. Otherwise log, mentioning this many lines kept quiet since the last."""
        now = time.monotonic()
        last, quiet = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.interval:
            self._seen[key] = (last, quiet + 1)
            return None
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        if len(self._seen) > self._max_keys:
            del self._seen[next(iter(self._seen))]
        return quiet


class Routes:
    """The app behind the HTTP server: routing, auth, hooks, health and metrics, counting and logging."""

    def __init__(
        self,
        *,
        token: Secret | None,
        targets: Sequence[WatchTarget],
        waker: Waker | None,
        health: Callable[[], dict[str, object]],
        metrics: Metrics,
        match_tag: bool = False,
        open_details: bool = False,
        log_name: str = "webhook",
        discovering: bool = False,
    ) -> None:
        self._auth = _Auth(token)
        self._targets = tuple(targets)
        self._waker = waker  # None: no hook endpoints (the [metrics] listener)
        self._health = health
        self._metrics = metrics
        self._match_tag = match_tag
        self._discovering = discovering  # containers may be watched by their labels: names are not all known
        self._open_details = open_details
        self._name = log_name
        self._throttle = _Throttle(UNAUTHORIZED_LOG_INTERVAL)

    def retarget(self, targets: Sequence[WatchTarget], discovering: bool) -> None:
        """After a config reload (SIGHUP): the entries a hook wakes from now on."""
        self._targets, self._discovering = tuple(targets), discovering

    # -- routing ------------------------------------------------------------------------
    def route(self, head: Request) -> Route:
        route = self._route(head)
        answer = route.answer
        if answer is not None:
            route = replace(route, answer=lambda request: self._scrub(answer(request)))
        return route if route.early is None else replace(route, early=self._scrub(route.early))

    def _route(self, head: Request) -> Route:
        path = head.path
        if path in (HEALTH_PATH, METRICS_PATH):
            if head.method not in ("GET", "HEAD"):
                return Route(PROBE, early=_method_not_allowed("GET, HEAD"))
            return Route(PROBE, self.health if path == HEALTH_PATH else self.metrics)
        if self._waker is None:
            return Route(HOOK, early=_NOT_FOUND)
        if path == UPDATE_PATH:
            return Route(HOOK, self.update, early=self.screen_update(head), kind="generic")
        if path == HOOK_PREFIX.rstrip("/") or path.startswith(HOOK_PREFIX):
            return Route(HOOK, self.aliyun, early=self.screen_aliyun(head), kind="aliyun")
        return Route(HOOK, early=_NOT_FOUND)

    def _scrub(self, reply: Reply) -> Reply:
        """Last line of defence: no secret (the token, a password...) leaves in a response body."""
        text = reply.body.decode("utf-8", "surrogateescape")
        clean = redact(text)
        if clean != text:
            logger.warning("{}: a response contained a secret; it was replaced with ***", self._name)
            reply = replace(reply, body=clean.encode("utf-8", "surrogateescape"))
        return reply

    # -- health and metrics -------------------------------------------------------------
    def health(self, request: Request) -> Reply:
        state = self._health()
        healthy = state.get("healthy") is not False and state.get("status", "ok") == "ok"
        status = "ok" if healthy else str(state.get("status", "unhealthy"))
        if status == "ok" and not healthy:
            status = "unhealthy"
        body: dict[str, object] = {"status": status}
        if self._open_details or self._auth.bearer(request):
            body = {**state, "status": status}
        code = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return json_reply(code, body, outcome="ok" if healthy else "unhealthy")

    def metrics(self, request: Request) -> Reply:
        body, content_type = self._metrics.render()
        return Reply(HTTPStatus.OK, body, content_type=content_type)

    # -- the update API -----------------------------------------------------------------
    def _wanted(self, request: Request) -> list[str]:
        return [v for _, v in parse_qsl(request.query, keep_blank_values=True)]

    def screen_update(self, head: Request) -> Reply | None:
        """Everything the update API can refuse before the body is read."""
        if head.method != "POST":
            return _method_not_allowed("POST")
        if not self._auth.bearer(head):
            return json_reply(
                HTTPStatus.UNAUTHORIZED,
                {"error": "missing or wrong bearer token"},
                outcome="unauthorized",
                note="missing or wrong bearer token",
                headers=(("WWW-Authenticate", 'Bearer realm="cr-agent"'),),
            )
        for key, value in parse_qsl(head.query, keep_blank_values=True):
            if key != "container":
                message = f"unknown query parameter {key!r}; only 'container'"
                return error_reply(HTTPStatus.BAD_REQUEST, message, "bad_request")
            if not value:
                return error_reply(HTTPStatus.BAD_REQUEST, "container= needs a container name", "bad_request")
        unknown = sorted(set(self._wanted(head)) - {t.container for t in self._targets})
        if unknown and not self._discovering:
            names = ", ".join(repr(printable(n, 100)) for n in unknown)
            message = f"no watch entry for container {names}"
            return error_reply(HTTPStatus.NOT_FOUND, message, "unknown_container", unknown=unknown)
        return None

    def update(self, request: Request) -> Reply:
        assert self._waker is not None
        wanted = self._wanted(request)
        containers = frozenset(wanted) if wanted else None
        queued = sorted(containers if containers is not None else {t.container for t in self._targets})
        self._waker.wake(containers, f"api {UPDATE_PATH}")
        what = "all" if containers is None else ", ".join(queued)
        return json_reply(HTTPStatus.ACCEPTED, {"queued": queued}, outcome="accepted", note=f"queued {what}")

    # -- the ACR hook -------------------------------------------------------------------
    def screen_aliyun(self, head: Request) -> Reply | None:
        if not self._auth.path_token(unquote(head.path[len(HOOK_PREFIX) :])):
            return replace(_NOT_FOUND, outcome="unauthorized", note="wrong or missing hook token")
        if head.method != "POST":
            return _method_not_allowed("POST")
        raw = head.header("content-type")
        if (raw or "").split(";", 1)[0].strip().lower() != "application/json":
            got = "none" if raw is None else repr(printable(raw, 100))
            message = f"Content-Type must be application/json (charset parameters are fine), got {got}"
            return error_reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, message, "unsupported_media_type")
        return None

    def aliyun(self, request: Request) -> Reply:
        assert self._waker is not None
        try:
            namespace, name, tag = parse_push(request.body)
        except BadPayload as exc:
            return error_reply(HTTPStatus.BAD_REQUEST, str(exc), "bad_request")
        image = f"{namespace}/{name}:{tag}"
        matching = sorted(
            t.container
            for t in self._targets
            if t.namespace == namespace and t.repository == name and (not self._match_tag or t.follows(tag))
        )
        if not matching and self._discovering:  # a labelled container may follow it: one whole pass
            self._waker.wake(None, f"aliyun hook {image}")
            note = f"{image}: no [[watch]] entry follows it; queued a pass for labelled containers"
            return json_reply(HTTPStatus.ACCEPTED, {"queued": "all"}, outcome="accepted", note=note)
        if not matching:
            note = f"{image}: no watch entry follows it"
            return json_reply(HTTPStatus.ACCEPTED, {"queued": []}, outcome="ignored", note=note)
        self._waker.wake(frozenset(matching), f"aliyun hook {image}")
        note = f"{image}: queued {', '.join(matching)}"
        return json_reply(HTTPStatus.ACCEPTED, {"queued": matching}, outcome="accepted", note=note)

    # -- counting and logging -----------------------------------------------------------
    def done(self, peer: str, head: Request | None, route: Route | None, reply: Reply | None) -> None:
        kind = route.kind if route is not None else None
        if reply is None:
            self._count(kind, "client_gone")
            logger.debug("{}: {} went away before the answer", self._name, peer)
            return
        refused = reply.outcome in ("busy", "head_too_large", "timeout", "evicted")
        if kind is None and refused:
            kind = "unknown"  # refused before routing: still worth counting
        self._count(kind, reply.outcome)
        level = "DEBUG" if kind is None and reply.status == HTTPStatus.OK else "INFO"
        note = reply.note
        if reply.outcome == "unauthorized" or refused or head is None:
            # What a flood or a scan produces: one line per peer and interval, then a count.
            quiet = self._throttle.check(
                peer if reply.outcome == "unauthorized" else f"{peer} {reply.outcome}"
            )
            if quiet is None:
                return
            if quiet:
                note += f" ({quiet} more from this address in the last {self._throttle.interval:g}s)"
        if reply.outcome in ("unauthorized", "busy"):
            level = "WARNING"
        elif reply.status >= 500 and reply.status != HTTPStatus.SERVICE_UNAVAILABLE:
            level = "ERROR"
        logger.log(
            level,
            "{}: {} {} {} from {}{}",
            self._name,
            reply.status,
            printable(head.method, 20) if head else "-",
            self._loggable(head.target) if head else "-",
            peer,
            f": {redact(note)}" if note else "",
        )

    def _count(self, kind: str | None, outcome: str) -> None:
        if kind is not None:
            self._metrics.record_hook(kind, outcome)

    def _loggable(self, target: str) -> str:
        """The request target as logged: the hook token (right or wrong) becomes ***."""
        if target.startswith(HOOK_PREFIX):
            return HOOK_PREFIX + "***"
        return printable(redact(target))
