"""Notifications through real apprise to real HTTP receivers on loopback (json:// and form://)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from agent.cli.commands import main
from agent.config import NotifySettings, parse
from agent.errors import ConfigError
from agent.model import Report, Result, Status
from agent.notify.book import NoticeBook
from agent.notify.send import Notifier, fingerprint
from agent.reconcile.run import reconcile
from agent.secret import redact
from tests.support.fakes import FakeRegistry, FakeRuntime
from tests.support.receiver import BlackHole, Receiver

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMG = "registry.cn-hangzhou.aliyuncs.com/ns/web:latest"


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink_id = logger.add(lines.append, level="WARNING", format="{message}")
    yield lines
    logger.remove(sink_id)


def settings(*urls: str, **kw: object) -> NotifySettings:
    return NotifySettings(tuple(urls), **kw)  # type: ignore[arg-type]


def report(*statuses: Status) -> Report:
    return Report(tuple(
        Result(f"c{i}", IMG, st, A, B, "health check failed", logs="boot\npanic: no config", seconds=3.2)
        if st is Status.ROLLED_BACK else Result(f"c{i}", IMG, st, A, B)
        for i, st in enumerate(statuses)
    ))  # fmt: skip


def test_one_json_message_per_pass_with_every_told_container(rx: Receiver) -> None:
    Notifier(settings(rx.url("json")), host="box").on_pass(
        report(Status.UPDATED, Status.ROLLED_BACK, Status.UP_TO_DATE), 7.0
    )
    (hit,) = rx.wait(1)
    msg = hit.data
    assert msg["title"] == "cr-agent @ box: 1 updated, 1 rolled back" and msg["type"] == "failure"
    assert "c0 updated (latest)" in msg["message"] and "undo: agent rollback c0" in msg["message"]
    assert "reason: health check failed" in msg["message"] and "| panic: no config" in msg["message"]
    assert "retry: agent retry c1" in msg["message"] and "pass took 7.0s" in msg["message"]
    assert "c2" not in msg["message"]


def test_form_message_in_chinese_with_the_title_prefix(rx: Receiver) -> None:
    s = settings(rx.url("form"), language="zh", title_prefix="【发布】")
    Notifier(s, host="box").on_pass(report(Status.UPDATED), 1.0)
    (hit,) = rx.wait(1)
    assert "urlencoded" in hit.content_type
    assert hit.data["title"] == "【发布】cr-agent @ box：已更新 1"
    assert "撤销：agent rollback c0" in hit.data["message"] and hit.data["type"] == "success"


def test_a_quiet_pass_sends_nothing(rx: Receiver) -> None:
    n = Notifier(settings(rx.url("json")))
    n.on_pass(report(Status.UP_TO_DATE, Status.SKIPPED), 1.0)
    n.on_pass(report(Status.UPDATED), 1.0)  # a later message proves the quiet one was not merely slow
    (hit,) = rx.wait(1)
    assert "1 updated" in hit.data["title"]


def test_failing_notifiers_are_logged_without_url_and_the_others_still_get_it(
    rx: Receiver, hole: BlackHole, warnings: list[str]
) -> None:
    refusing = Receiver(status=500)
    try:
        urls = (f"json://127.0.0.1:{hole.port}/tok3n", refusing.url("json", "/s3cret"), rx.url("json"))
        t0 = time.monotonic()
        outcome = Notifier(settings(*urls), timeout=1.0).send(
            Notifier(settings()).select(report(Status.UPDATED))
        )
        elapsed = time.monotonic() - t0
    finally:
        refusing.close()
    assert [ok for ok, _ in outcome] == [False, False, True]
    assert "no answer within 1 s" in outcome[0][1] and "refused" in outcome[1][1]
    assert elapsed < 3.5  # the black hole alone would hold apprise for its own 4 s read timeout
    assert any("URL #1 (json://…)" in w for w in warnings) and any("URL #2 (json://…)" in w for w in warnings)
    assert not any("tok3n" in w or "s3cret" in w or str(hole.port) in w for w in warnings), warnings
    assert len(rx.wait(1)) == 1


def test_a_failing_notifier_never_breaks_the_deploy(tmp_path: Path, hole: BlackHole) -> None:
    cfg = parse(
        {"agent": {"state_dir": str(tmp_path)},
         "watch": [{"container": "a", "image": "registry.cn-hangzhou.aliyuncs.com/ns/web:latest", "min_uptime": "0s"}]},
        {"ALIYUN_ACCESS_KEY_ID": "i", "ALIYUN_ACCESS_KEY_SECRET": "s"},
    )  # fmt: skip
    from agent.deploy import Deployer
    from agent.reconcile.run import Context
    from agent.state import State

    rt = FakeRuntime()
    rt.add("a", "sha256:" + "1" * 64, (f"registry.cn-hangzhou.aliyuncs.com/ns/web@{A}",))
    state = State(tmp_path)
    notifier = Notifier(settings(f"json://127.0.0.1:{hole.port}/x", "nosuchscheme://x"), timeout=0.5)
    ctx = Context(cfg, {"aliyun": FakeRegistry({"ns/web": {"latest": B}})}, rt, state, Deployer(rt, state),
                  notifier.on_pass)  # fmt: skip
    (r,) = reconcile(ctx).results
    assert r.status is Status.UPDATED and isinstance(r.seconds, float)


def failing(error: str = "registry lookup failed: ACR unreachable (request 5f3a9c11de)") -> Report:
    return Report((Result("web", IMG, Status.FAILED, A, None, error),))


def test_a_repeated_failure_is_told_first_then_after_repeat_after_then_on_recovery_across_restarts(
    tmp_path: Path, rx: Receiver
) -> None:
    now = [1_000_000.0]

    def agent() -> Notifier:  # a fresh process: a new book on the same state_dir
        return Notifier(
            settings(rx.url("json"), repeat_after=3600.0), NoticeBook(tmp_path), clock=lambda: now[0]
        )

    agent().on_pass(failing(), 1)
    rx.wait(1)
    now[0] += 600
    agent().on_pass(failing("registry lookup failed: ACR unreachable (request 77aa00bb12)"), 1)  # same way
    now[0] += 600
    agent().on_pass(failing(), 1)
    now[0] += 2400  # an hour after it was told
    agent().on_pass(failing(), 1)
    second = rx.wait(2)[1].data["message"]
    assert "failing since" in second and "(reminder)" in second
    agent().on_pass(failing("tag 'latest' not found in ns/web"), 1)  # another way: news at once
    assert "tag 'latest' not found" in rx.wait(3)[2].data["message"]
    ok = Report((Result("web", IMG, Status.UP_TO_DATE, A, A),))
    agent().on_pass(ok, 1)
    agent().on_pass(ok, 1)
    agent().on_pass(report(Status.UPDATED), 1)  # a later message proves the second recovery was not sent
    hits = rx.wait(5)
    assert hits[3].data["title"].endswith("1 recovered") and "works again" in hits[3].data["message"]
    assert "1 updated" in hits[4].data["title"] and len(rx.hits) == 5


def test_a_failure_not_told_is_not_remembered(tmp_path: Path, rx: Receiver) -> None:
    n = Notifier(settings(rx.url("json"), on=("updated", "recovered")), NoticeBook(tmp_path))
    n.on_pass(failing(), 1)
    n.on_pass(Report((Result("web", IMG, Status.UP_TO_DATE, A, A),)), 1)
    n.on_pass(report(Status.UPDATED), 1)
    (hit,) = rx.wait(1)
    assert "recovered" not in hit.data["title"]


def test_fingerprint_ignores_ids_and_numbers() -> None:
    assert fingerprint("timed out after 10 s (request 5f3a9c11de)") == fingerprint(
        "timed out after 12 s (request 0c11d2e3ff)"
    )
    assert fingerprint("tag missing") != fingerprint("ACR unreachable")


def test_notify_test_reports_each_url(
    tmp_path: Path, rx: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    refusing = Receiver(status=500)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "{tmp_path}"\n[[watch]]\ncontainer = "a"\nimage = "127.0.0.1:5000/ns/a"\n'
        f'[notify]\nurls = ["{rx.url("json")}", "{refusing.url("form", "/t0ken")}"]\nlanguage = "zh"\n'
    )
    try:
        code = main(["notify-test", "-c", str(cfg)])
    finally:
        refusing.close()
    out = capsys.readouterr().out
    assert code == 1
    assert "#1 json://…  ok: sent" in out and "#2 form://…  FAILED" in out and "t0ken" not in out
    (hit,) = rx.wait(1)
    assert hit.data["title"].endswith("测试消息")


def test_notify_test_without_a_notify_section_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[[watch]]\ncontainer = "a"\nimage = "127.0.0.1:5000/ns/a"\n')
    assert main(["notify-test", "-c", str(cfg)]) == 2


W = {"watch": [{"container": "a", "image": "127.0.0.1:5000/ns/a"}]}


def test_notify_config_validation_and_secret_urls() -> None:
    cfg = parse(
        {**W, "notify": {"urls_env": "URLS", "on": ["failed"]}}, {"URLS": "tgram://bot:tok/123, json://h/x"}
    )
    assert cfg.notify is not None
    assert tuple(u.reveal() for u in cfg.notify.urls) == ("tgram://bot:tok/123", "json://h/x")
    assert redact("tgram://bot:tok/123") == "***" and "bot:tok" not in repr(cfg)
    with pytest.raises(ConfigError) as e:
        parse(
            {
                **W,
                "notify": {"urls": ["not a url"], "on": ["exploded"], "language": "fr", "repeat_after": "5s"},
            },
            {},
        )
    problems = "\n".join(e.value.problems)
    assert "notify.urls[0]" in problems and "notify.on[0]: unknown event 'exploded'" in problems
    assert "notify.language: must be 'zh' or 'en', got 'fr'" in problems
    assert "notify.repeat_after: must be between 1m and 30d" in problems


@pytest.mark.parametrize(("env", "lang"), [({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "C.UTF-8"}, "en")])
def test_the_default_language_follows_the_locale(env: dict[str, str], lang: str) -> None:
    cfg = parse({**W, "notify": {"urls": ["json://h/x"]}}, env)
    assert cfg.notify is not None and cfg.notify.language == lang and cfg.notify.repeat_after == 6 * 3600
    assert cfg.notify.on == ("updated", "rolled_back", "failed", "would_update", "recovered")


def test_a_notifier_in_a_container_says_docker_exec_in_its_commands(rx: Receiver) -> None:
    Notifier(settings(rx.url("json")), host="box", agent="docker exec cr-agent agent").on_pass(
        report(Status.UPDATED, Status.ROLLED_BACK), 1.0
    )
    (hit,) = rx.wait(1)
    assert "undo: docker exec cr-agent agent rollback c0" in hit.data["message"]
    assert "retry: docker exec cr-agent agent retry c1" in hit.data["message"]
