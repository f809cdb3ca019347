"""The update API, /healthz, /metrics, headers and secrets, and the [metrics] listener.

The Waker is a hand-written fake that records its calls (and can block or fail on demand).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from agent.metrics import Metrics
from agent.model import Report
from agent.secret import Secret
from agent.webhook import MetricsServer
from agent.webhook.listen import is_loopback
from tests.support.wait import wait_until
from tests.unit.webhook.support import (
    BEARER,
    HOOK,
    JSON,
    TOKEN,
    FakeWaker,
    Running,
    acr_payload,
)

# -- the update API -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ],
)
def test_update_without_the_right_bearer_gets_401_with_www_authenticate(
    make: Callable[..., Running], headers: dict[str, str]
) -> None:
    """A missing, wrong or non-Bearer Authorization is 401 with `WWW-Authenticate: Bearer` and wakes nothing."""
    run = make()
    r = run.request("POST", "/v1/update", b"", headers)
    assert r.status == 401
    assert (r.header("WWW-Authenticate") or "").startswith("Bearer")
    assert run.waker.calls == []
    assert run.hook_count("generic", "unauthorized") == 1.0


def test_update_with_the_bearer_wakes_everything(make: Callable[..., Running]) -> None:
    """POST /v1/update with the right bearer wakes all entries (containers=None) and lists them."""
    run = make()
    r = run.request("POST", "/v1/update", None, {"Authorization": f"bearer {TOKEN}"})
    assert (r.status, r.json()) == (202, {"queued": ["web", "web-canary", "worker"]})
    assert run.waker.calls == [(None, "api /v1/update")]
    assert run.hook_count("generic", "accepted") == 1.0


def test_update_with_container_parameters_wakes_only_those(make: Callable[..., Running]) -> None:
    """`?container=` is repeatable and wakes exactly the named entries."""
    run = make()
    r = run.request("POST", "/v1/update?container=worker&container=web&container=web", b"{}", BEARER)
    assert (r.status, r.json()) == (202, {"queued": ["web", "worker"]})
    assert run.waker.calls == [(frozenset({"web", "worker"}), "api /v1/update")]


def test_update_naming_an_unknown_container_gets_404_naming_it_and_wakes_nothing(
    make: Callable[..., Running],
) -> None:
    """One unknown name refuses the whole request (404, JSON naming it): nothing is woken."""
    run = make()
    r = run.request("POST", "/v1/update?container=web&container=ghost", None, BEARER)
    assert r.status == 404
    assert r.json()["unknown"] == ["ghost"] and "ghost" in str(r.json()["error"])
    assert run.waker.calls == []


@pytest.mark.parametrize("query", ["containers=web", "container=", "container=web&force=1"])
def test_update_with_a_bad_query_gets_400_and_wakes_nothing(make: Callable[..., Running], query: str) -> None:
    """A misspelt or empty parameter is refused rather than silently waking everything."""
    run = make()
    r = run.request("POST", f"/v1/update?{query}", None, BEARER)
    assert r.status == 400
    assert run.waker.calls == []


def test_update_body_over_max_body_gets_413(make: Callable[..., Running]) -> None:
    """The update API applies the same body cap as the hook."""
    run = make(max_body=16)
    r = run.request("POST", "/v1/update", b"x" * 17, BEARER)
    assert r.status == 413
    assert run.waker.calls == []


# -- health, metrics, headers, secrets ----------------------------------------------------


def test_healthz_without_auth_is_liveness_only(make: Callable[..., Running]) -> None:
    """GET /healthz needs no auth, and then says only whether the agent is alive: no names, no errors."""
    run = make(health=lambda: {"last_pass": {"results": {"web": "failed"}, "error": "boom"}, "queued": 0})
    r = run.request("GET", "/healthz")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.json() == {"status": "ok"}
    head = run.request("HEAD", "/healthz")
    assert (head.status, head.body) == (200, b"")


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_healthz_with_a_wrong_token_is_liveness_only(
    make: Callable[..., Running], headers: dict[str, str]
) -> None:
    """A wrong or non-Bearer Authorization on /healthz gets the liveness answer, not the details."""
    run = make(health=lambda: {"last_pass": "x"})
    assert run.request("GET", "/healthz", headers=headers).json() == {"status": "ok"}


def test_healthz_with_the_bearer_returns_the_health_state_plus_status_ok(
    make: Callable[..., Running],
) -> None:
    """With `Authorization: Bearer <token>`, /healthz answers health() merged with {"status": "ok"}."""
    run = make(health=lambda: {"last_pass": "2024-01-01T00:00:00Z", "queued": 0})
    r = run.request("GET", "/healthz", headers=BEARER)
    assert r.status == 200
    assert r.json() == {"status": "ok", "last_pass": "2024-01-01T00:00:00Z", "queued": 0}


@pytest.mark.parametrize(
    "state", [{"healthy": False, "error": "the scheduler thread died"}, {"status": "degraded"}]
)
def test_healthz_answers_503_when_health_reports_unhealthy(
    make: Callable[..., Running], state: dict[str, object]
) -> None:
    """A dead scheduler or worker (health() says healthy: false, or a non-ok status) turns /healthz 503."""
    run = make(health=lambda: state)
    r = run.request("GET", "/healthz")
    assert r.status == 503
    assert r.json()["status"] in ("unhealthy", "degraded") and "error" not in r.json()
    detailed = run.request("GET", "/healthz", headers=BEARER)
    assert detailed.status == 503 and detailed.json()["status"] != "ok"


def test_metrics_endpoint_serves_prometheus_text_without_auth(make: Callable[..., Running]) -> None:
    """GET /metrics answers metrics.render(), with prometheus_client's content type, and counts the hooks."""
    run = make()
    run.request("POST", HOOK, acr_payload())
    r = run.request("GET", "/metrics")
    assert r.status == 200
    assert r.header("Content-Type") == CONTENT_TYPE_LATEST
    assert b'cr_agent_webhook_requests_total{kind="aliyun",outcome="accepted"} 1.0' in r.body


def test_the_server_header_names_no_version(make: Callable[..., Running]) -> None:
    """`Server:` is the plain name `cr-agent`, with no Python or library version."""
    run = make()
    for r in (run.request("GET", "/healthz"), run.request("GET", "/nope"), run.request("POST", HOOK, b"{")):
        assert r.header("Server") == "cr-agent"


def test_the_token_never_appears_in_any_response_header_or_log_line(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """Across good and bad requests of every kind, the token is in no body, no header and no log line."""
    run = make(waker=FakeWaker())
    run.request("POST", HOOK, acr_payload())
    run.request("POST", HOOK, acr_payload(namespace="x", name="y"))
    run.request("POST", HOOK, b"{", JSON)
    run.request("POST", HOOK, json.dumps(acr_payload()).encode(), {"Content-Type": TOKEN})
    run.request("POST", HOOK + "?" + TOKEN, acr_payload())
    run.request("GET", HOOK)
    run.request("POST", HOOK + "x", acr_payload())
    run.request("POST", "/hooks/aliyun/" + TOKEN[:-1], acr_payload())
    run.request("POST", "/v1/update", None, BEARER)
    run.request("POST", f"/v1/update?container={TOKEN}", None, BEARER)
    run.request("POST", "/v1/update", None, {"Authorization": f"Bearer {TOKEN}x"})
    run.request("GET", "/healthz")
    run.request("GET", "/metrics")
    run.request("GET", f"/{TOKEN}")
    bad_tag = acr_payload(tag=TOKEN + " x")
    run.request("POST", HOOK, bad_tag)
    assert len(run.responses) == 15
    for r in run.responses:
        assert TOKEN.encode() not in r.body
        assert all(TOKEN not in k and TOKEN not in v for k, v in r.headers)
    assert logs
    assert not [line for line in logs if TOKEN in line]
    assert any("/hooks/aliyun/***" in line for line in logs)


def test_a_token_leaking_through_health_is_scrubbed_from_the_response(make: Callable[..., Running]) -> None:
    """Last line of defence: if health() ever returned the token, the response carries *** instead."""
    run = make(health=lambda: {"oops": f"listen with {TOKEN}"})
    r = run.request("GET", "/healthz", headers=BEARER)
    assert r.status == 200
    assert r.json()["oops"] == "listen with ***"


def test_each_request_decision_is_logged_once_with_the_token_redacted(
    make: Callable[..., Running], logs: list[str]
) -> None:
    """An accepted hook leaves exactly one log line: status, redacted path, repository and what was queued."""
    run = make()
    run.request("POST", HOOK, acr_payload())
    lines = [line for line in logs if "webhook: 202" in line]
    assert len(lines) == 1, logs
    assert "/hooks/aliyun/*** " in lines[0]
    assert "shop/web:v9" in lines[0] and "web, web-canary" in lines[0]


# -- the [metrics] listener ----------------------------------------------------------------


def test_the_metrics_listener_on_loopback_shows_health_details_and_metrics_and_no_hooks() -> None:
    """[metrics] on 127.0.0.1: /healthz details without a token, /metrics, and 404 for the hook endpoints."""
    metrics = Metrics()
    server = MetricsServer("127.0.0.1:0", health=lambda: {"passes": 3}, metrics=metrics, token=Secret(TOKEN))
    server.start()
    try:
        run = Running(server, FakeWaker(), metrics)  # type: ignore[arg-type]
        assert run.request("GET", "/healthz").json() == {"status": "ok", "passes": 3}
        r = run.request("GET", "/metrics")
        assert r.status == 200 and r.header("Content-Type") == CONTENT_TYPE_LATEST
        assert run.request("POST", HOOK, acr_payload()).status == 404
        assert run.request("POST", "/v1/update", None, BEARER).status == 404
        assert run.waker.calls == []
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.5", False), ("::", False), ("example.com", False)],
)  # fmt: skip
def test_only_a_loopback_metrics_listener_counts_as_private(host: str, loopback: bool) -> None:
    """Details without a token only where no one else can connect."""
    assert is_loopback(host) is loopback


def test_healthz_turns_503_when_the_daemons_worker_thread_dies(
    make: Callable[..., Running], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wired to the real Coordinator: once its scheduler's thread is dead, /healthz answers 503 to everyone."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from agent.daemon import Coordinator
    from agent.runlock import RunLock

    coord = Coordinator(lambda only: Report(()), RunLock(tmp_path / "agent.lock"))

    # the scheduler's thread (wake-ups run on it) ends at once, as if it had died
    monkeypatch.setattr(BackgroundScheduler, "_main_loop", lambda self: None)
    run = make(health=coord.health)
    assert run.request("GET", "/healthz").status == 200
    coord.start_worker()
    wait_until(lambda: not coord.health()["worker_alive"], 5, "the scheduler's thread to end")
    r = run.request("GET", "/healthz")
    assert (r.status, r.json()) == (503, {"status": "degraded"})
    assert run.request("GET", "/healthz", headers=BEARER).json()["worker_alive"] is False
