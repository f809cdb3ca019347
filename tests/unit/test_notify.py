"""Notifications go out through real apprise to a JSON webhook on loopback, one message per pass."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from loguru import logger

from agent.config import parse
from agent.errors import ConfigError
from agent.model import Report, Result, Status
from agent.notify import Notifier

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


class Sink:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        sink = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                sink.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def report(*statuses: Status) -> Report:
    return Report(tuple(Result(f"c{i}", "img", st, A, B, "boom" if st is Status.ROLLED_BACK else None)
                        for i, st in enumerate(statuses)))  # fmt: skip


def test_a_pass_with_updates_and_rollbacks_sends_one_failure_message(sink: Sink) -> None:
    Notifier([sink.url]).on_pass(report(Status.UPDATED, Status.ROLLED_BACK, Status.UP_TO_DATE), 1.0)
    (body,) = sink.bodies
    assert "1 updated, 1 rolled back" in body["title"] and body["type"] == "failure"
    assert "c0: updated aaaaaaaaaaaa → bbbbbbbbbbbb" in body["message"] and "boom" in body["message"]
    assert "c2" not in body["message"]


def test_a_quiet_pass_sends_nothing(sink: Sink) -> None:
    Notifier([sink.url]).on_pass(report(Status.UP_TO_DATE, Status.SKIPPED), 1.0)
    assert sink.bodies == []


def test_an_unreachable_target_is_logged_never_raised() -> None:
    lines: list[str] = []
    sink_id = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        Notifier(["json://127.0.0.1:9/nothing"]).on_pass(report(Status.UPDATED), 1.0)
    finally:
        logger.remove(sink_id)
    assert any(line.startswith("notification failed") for line in lines), lines
    assert not any("127.0.0.1:9" in line for line in lines)  # the URL (tokens) stays out of the log


def test_notify_config_validation_and_secret_urls() -> None:
    w = {"watch": [{"container": "a", "image": "127.0.0.1:5000/ns/a"}]}
    cfg = parse(
        {**w, "notify": {"urls_env": "URLS", "on": ["failed"]}}, {"URLS": "tgram://bot:tok/123, json://h/x"}
    )
    assert cfg.notify is not None and cfg.notify.urls == ("tgram://bot:tok/123", "json://h/x")
    assert "tgram://bot:tok/123" in cfg.secrets and "tok" not in repr(cfg)
    with pytest.raises(ConfigError) as e:
        parse({**w, "notify": {"urls": ["not a url"], "on": ["exploded"]}}, {})
    assert any("notify.urls[0]" in p for p in e.value.problems)
    assert any("notify.on[0]: unknown event 'exploded'" in p for p in e.value.problems)
