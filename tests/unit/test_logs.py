"""Logs: secrets never reach a line; --log-json lines are flat objects whose field and event names are pinned."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from loguru import logger

from agent import logs, secret
from agent.reconcile.run import reconcile
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.unit.reconcile.test_plan import A, B, make_ctx

SECRET = "-".join(["topsecret", "value", "1"])  # not a literal, so tracebacks cannot quote it
IMG = "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"

# Pinned: log shippers filter on these names, so renaming one is a breaking change (docs/operations.md).
FIELDS = ["event", "container", "image", "status", "from_digest", "to_digest"]
EVENTS = {"plan.up_to_date", "plan.skipped", "plan.failed", "plan.would_update", "plan.update",
          "pull.start", "pull.failed", "replace.step", "pass.result"}  # fmt: skip
# The daemon's own lines (no container), with the fields bench/ reads from them (bench/common.py AGENT_EVENTS).
DAEMON_EVENTS = {"server.listening": ("server", "host", "port"), "wake.queued": ("reason", "containers"),
                 "pass.start": ("reason",)}  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_logging():  # type: ignore[no-untyped-def]
    yield
    logs.setup("INFO")


def json_lines(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


@pytest.mark.parametrize("as_json", [False, True])
def test_registered_secrets_are_redacted_from_messages_and_exceptions(capsys, as_json: bool) -> None:
    logs.setup("DEBUG", json=as_json)
    secret.register(SECRET)
    logger.info("token is {}", SECRET)
    logger.bind(error=f"it was {SECRET}").info("a field")
    try:
        raise ValueError("bad key " + SECRET)
    except ValueError:
        logger.exception("failed")
    err = capsys.readouterr().err
    assert SECRET not in err
    assert "token is ***" in err and "bad key ***" in err
    assert secret.redact(f"x {SECRET} y") == "x *** y"


def test_json_lines_are_flat_with_level_time_message_and_the_decision_fields(capsys) -> None:
    logs.setup("INFO", json=True)
    logs.decision("WARNING", "plan.skipped", "{}: skipped: {}", "web", "gone", container="web", image=IMG,
                  status="skipped", from_digest=A, to_digest=B)  # fmt: skip
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("a crash")
    skipped, crash = json_lines(capsys.readouterr().err)
    assert list(skipped) == ["time", "level", "message", *FIELDS]
    assert skipped["level"] == "WARNING" and skipped["message"] == "web: skipped: gone"
    assert (skipped["event"], skipped["container"], skipped["image"]) == ("plan.skipped", "web", IMG)
    assert (skipped["status"], skipped["from_digest"], skipped["to_digest"]) == ("skipped", A, B)
    assert skipped["time"][10] == "T" and skipped["time"][-6] in "+-"  # ISO 8601 with the UTC offset
    assert crash["level"] == "ERROR" and "RuntimeError: boom" in crash["exception"]


def test_every_decision_of_a_pass_carries_the_pinned_fields_and_event_names(tmp_path: Path, capsys) -> None:
    from agent.errors import RuntimeFault

    rt = FakeRuntime(fail={"pull": RuntimeFault("manifest unknown")})
    for name, digest in (("same", B), ("new", A), ("watchonly", A), ("broken", A)):  # vpc: no local copy of B
        rt.add(name, "sha256:" + name[0] * 64, (f"registry-vpc.cn-hangzhou.aliyuncs.com/ns/web@{digest}",))
    watches = [{"container": n, "image": IMG, "min_uptime": "0s"} for n in ("same", "new")]
    watches.append({"container": "ghost", "image": IMG, "optional": True})
    watches.append({"container": "watchonly", "image": IMG, "mode": "notify"})
    watches.append({"container": "broken", "image": IMG.replace("web", "nope")})
    ctx = make_ctx(tmp_path, watches, FakeRegistry({"ns/web": {"latest": B}}), rt)
    logs.setup("DEBUG", json=True)
    reconcile(ctx)
    rt.fail.clear()
    reconcile(ctx)
    lines = json_lines(capsys.readouterr().err)
    decisions = [line for line in lines if line.get("container")]
    assert {d["event"] for d in decisions} == EVENTS
    for d in decisions:
        assert all(k in d for k in FIELDS), d
        assert d["image"] is not None and d["message"].startswith(d["container"] + ":"), d
    results = [d for d in decisions if d["event"] == "pass.result"]
    assert [(d["container"], d["status"]) for d in results[5:]] == [
        ("same", "up_to_date"), ("new", "updated"), ("ghost", "skipped"), ("watchonly", "would_update"),
        ("broken", "failed"),
    ]  # fmt: skip
    new = results[6]
    assert (new["from_digest"], new["to_digest"]) == (A, B)
    steps = [d for d in decisions if d["event"] == "replace.step"]
    assert steps and all((d["container"], d["from_digest"], d["to_digest"]) == ("new", A, B) for d in steps)
    named = [d["step"] for d in steps if d.get("step")]  # the journal's steps, each a line of its own
    assert {"created", "started", "health_wait", "healthy"} <= set(named), named
    done = [line for line in lines if line.get("event") == "pass.done"]
    assert len(done) == 2 and done[1]["updated"] == 1 and done[1]["would_update"] == 1


def test_people_get_no_per_container_summary_lines(tmp_path: Path, capsys) -> None:
    logs.setup("INFO")
    logs.decision("INFO", "pass.result", "web: updated", container="web", image=IMG, status="updated")
    logs.decision(
        "INFO", "plan.up_to_date", "web: up to date", container="web", image=IMG, status="up_to_date"
    )
    err = capsys.readouterr().err
    assert "web: up to date" in err and "web: updated" not in err


def test_the_daemon_lines_carry_their_pinned_events_and_fields(tmp_path: Path, capsys) -> None:
    """Listening, a queued wake-up and the pass it starts: bench/ reads these from --log-json by name."""
    from agent.daemon import Coordinator
    from agent.metrics import Metrics
    from agent.model import Report
    from agent.runlock import RunLock
    from agent.secret import Secret
    from agent.webhook import WebhookServer
    from tests.support.wait import wait_until

    logs.setup("INFO", json=True)
    coord = Coordinator(lambda only: Report(()), RunLock(tmp_path / "lock"), debounce=0)
    coord.start_worker()
    server = WebhookServer("127.0.0.1:0", token=Secret("t" * 32), targets=(), waker=coord, health=dict,
                           metrics=Metrics())  # fmt: skip
    try:
        server.start()
        port = server.address[1]
        coord.wake(frozenset({"web", "api"}), "api /v1/update")
        wait_until(lambda: coord.passes == 1, 10, "the pass the wake-up queued")
    finally:
        server.stop()
        coord.stop.set()
        coord.join()
    lines = {d["event"]: d for d in json_lines(capsys.readouterr().err) if d.get("event")}
    assert set(DAEMON_EVENTS) <= set(lines), sorted(lines)
    for event, fields in DAEMON_EVENTS.items():
        assert all(lines[event].get(f) is not None for f in fields), lines[event]
    listening, queued = lines["server.listening"], lines["wake.queued"]
    assert (listening["server"], listening["port"]) == ("webhook", port)
    assert (queued["reason"], queued["containers"]) == ("api /v1/update", "api, web")
    assert lines["pass.start"]["reason"] == "wake-up"


def test_bench_reads_a_replacement_timeline_from_the_json_lines(tmp_path: Path, capsys) -> None:
    """bench/downtime's phases come from these events (plan.update, replace.step's `step`, pass.done)."""
    from tests.support.events import agent_timeline

    rt = FakeRuntime()
    rt.add("new", "sha256:" + "n" * 64, (f"registry-vpc.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    watches = [{"container": "new", "image": IMG, "min_uptime": "0s"}]
    ctx = make_ctx(tmp_path, watches, FakeRegistry({"ns/web": {"latest": B}}), rt)
    logs.setup("DEBUG", json=True)
    reconcile(ctx)
    tl = agent_timeline(capsys.readouterr().err, "new")
    assert list(tl)[0] == "replacing" and {
        "stop_old",
        "start_new",
        "health_wait",
        "healthy",
        "pass_done",
    } <= set(tl)
    assert tl["replacing"] <= tl["stop_old"] <= tl["start_new"] <= tl["healthy"] <= tl["pass_done"]


def test_a_line_logged_after_the_setup_stream_was_closed_reaches_the_current_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A straggler thread logging after a test (or a supervisor) replaced and closed stderr."""
    first, now = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.setup()
    first.close()
    monkeypatch.setattr(sys, "stderr", now)
    logger.info("late line")
    logs.setup()
    assert "| INFO    | late line" in now.getvalue() and "Logging error" not in now.getvalue()


def test_last_words_reach_fd_2_in_the_configured_format_without_loguru(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """What a signal handler says before os._exit: no loguru lock (the interrupted code may hold it)."""
    logs.setup("INFO", json=True)
    logs.last_words("WARNING", "SIGTERM received again: exiting now")
    (line,) = capfd.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "SIGTERM received again: exiting now"
    assert json.loads(line)["level"] == "WARNING" and "T" in json.loads(line)["time"]
    logs.setup("INFO", json=False)
    logs.last_words("INFO", "SIGTERM received: finishing the current step, then stopping")
    assert (
        capfd.readouterr()
        .err.rstrip()
        .endswith("| INFO    | SIGTERM received: finishing the current step, then stopping")
    )
