"""The words of each kind of message, in both languages, as Markdown and as plain text."""

from __future__ import annotations

import pytest

from agent.model import Result, Status
from agent.notify.text import Item, body, item_for, language_from_env, title, trial_message

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMG = "registry.cn-hangzhou.aliyuncs.com/ns/web:v2"
LOGS = "\n".join(f"line {i}" for i in range(1, 31))
ALL = ("updated", "rolled_back", "failed", "would_update", "recovered")

UPDATED = Item("updated", "web", IMG, A, B, seconds=12.34)
ROLLED = Item("rolled_back", "web", IMG, A, B, 75, "health check failed: HTTP 500", LOGS)
FAILED = Item("failed", "web", IMG, A, None, reason="ACR unreachable: timed out")
WOULD = Item("would_update", "web", IMG, A, B)
RECOVERED = Item("recovered", "web", IMG)
BUILD_FAILED = Item("build_failed", "ns/web", build_id="b-42", build_state="FAILED", build_minutes=3,
                    link="https://cr.console.aliyun.com/repository/cn-hangzhou/ns/web/build")  # fmt: skip
BUILD_STUCK = Item("build_stuck", "ns/web", build_id="b-43", build_state="PENDING", build_minutes=45)


@pytest.mark.parametrize(
    ("item", "lang", "expected"),
    [
        (UPDATED, "en", ["web updated (v2)", "aaaaaaaaaaaa → bbbbbbbbbbbb · took 12.3s", "undo: agent rollback web"]),
        (UPDATED, "zh", ["web 已更新 (v2)", "aaaaaaaaaaaa → bbbbbbbbbbbb · 耗时 12.3 秒", "撤销：agent rollback web"]),
        (ROLLED, "en", ["web rolled back (v2)", "took 1m15s", "reason: health check failed: HTTP 500",
                        "retry: agent retry web", "last log lines of the new container:", "| line 30", "| line 21"]),
        (ROLLED, "zh", ["web 已回滚 (v2)", "耗时 1 分 15 秒", "原因：health check failed: HTTP 500",
                        "重试：agent retry web", "新容器的最后几行日志：", "| line 30"]),
        (FAILED, "en", ["web failed (v2)", "aaaaaaaaaaaa → -", "reason: ACR unreachable: timed out", "retry: agent once"]),
        (FAILED, "zh", ["web 失败 (v2)", "原因：ACR unreachable: timed out", "重试：agent once"]),
        (WOULD, "en", ["web update available (v2)", "aaaaaaaaaaaa → bbbbbbbbbbbb"]),
        (WOULD, "zh", ["web 有可用更新 (v2)", "aaaaaaaaaaaa → bbbbbbbbbbbb"]),
        (RECOVERED, "en", ["web recovered (v2)", "works again"]),
        (RECOVERED, "zh", ["web 已恢复 (v2)", "已恢复正常"]),
        (BUILD_FAILED, "en", ["ns/web ACR build failed", "build b-42, FAILED for 3 min",
                              "console: https://cr.console.aliyun.com/repository/cn-hangzhou/ns/web/build"]),
        (BUILD_FAILED, "zh", ["ns/web ACR 构建失败", "构建 b-42，FAILED 已 3 分钟", "控制台：https://cr.console"]),
        (BUILD_STUCK, "en", ["ns/web ACR build stuck", "build b-43, PENDING for 45 min"]),
        (BUILD_STUCK, "zh", ["ns/web ACR 构建卡住", "构建 b-43，PENDING 已 45 分钟"]),
    ],
)  # fmt: skip
def test_each_kind_in_plain_text(item: Item, lang: str, expected: list[str]) -> None:
    text = body([item], lang, markdown=False)
    for part in expected:
        assert part in text, (part, text)
    assert "**" not in text and "`" not in text and "```" not in text


def test_a_rollback_shows_only_the_last_ten_log_lines() -> None:
    text = body([ROLLED], "en", markdown=False)
    assert "line 21" in text and "line 20" not in text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_markdown_bolds_names_and_fences_logs_and_commands(lang: str) -> None:
    md = body([UPDATED, ROLLED], lang, markdown=True)
    assert "**web**" in md and "`v2`" in md and "`agent rollback web`" in md and "`agent retry web`" in md
    assert "```\nline 21" in md and md.count("```") == 2
    assert "\n- `aaaaaaaaaaaa` → `bbbbbbbbbbbb`" in md


@pytest.mark.parametrize(
    ("lang", "prefix", "expected"),
    [
        ("en", "", "cr-agent @ box: 1 updated, 2 failed"),
        ("zh", "", "cr-agent @ box：已更新 1，失败 2"),
        ("en", "[deploy] ", "[deploy] cr-agent @ box: 1 updated, 2 failed"),
        ("zh", "发布 ", "发布 cr-agent @ box：已更新 1，失败 2"),
    ],
)
def test_title_names_the_host_counts_and_prefix(lang: str, prefix: str, expected: str) -> None:
    assert title("box", [UPDATED, FAILED, FAILED], lang, prefix) == expected


def test_a_reminder_says_since_when() -> None:
    from dataclasses import replace

    again = replace(FAILED, since="2026-11-29 12:00")
    assert "failing since 2026-11-29 12:00 (reminder)" in body([again], "en", False)
    assert "自 2026-11-29 12:00 起一直失败（提醒）" in body([again], "zh", False)


def test_pass_duration_closes_the_message() -> None:
    assert body([UPDATED], "en", False, 3.0).endswith("pass took 3.0s")
    assert body([UPDATED], "zh", False, 3.0).endswith("本轮耗时 3.0 秒")


@pytest.mark.parametrize(
    ("result", "events", "kind"),
    [
        (Result("web", IMG, Status.UPDATED, A, B, seconds=4.5), ALL, "updated"),
        (Result("web", IMG, Status.UPDATED, A, B), ("failed",), None),
        (Result("web", IMG, Status.UP_TO_DATE, B, B), ALL, None),
        (
            Result("web", IMG, Status.SKIPPED, B, B, "quarantined"),
            (*ALL, "skipped"),
            "skipped",
        ),  # told when asked for
        (Result("web", IMG, Status.WOULD_UPDATE, A, B, seen_before=True), ALL, None),
        (Result("web", IMG, Status.UP_TO_DATE, B, B, recovered="interrupted"), ALL, "recovered"),
        (Result("web", IMG, Status.FAILED, A, None, "boom"), ALL, "failed"),
    ],
)
def test_item_for_a_result(result: Result, events: tuple[str, ...], kind: str | None) -> None:
    item = item_for(result, events)
    assert (item.kind if item else None) == kind


def test_item_keeps_seconds_and_only_a_rollbacks_logs() -> None:
    rolled = item_for(Result("w", IMG, Status.ROLLED_BACK, A, B, "x", logs="out", seconds=2), ALL)
    failed = item_for(Result("w", IMG, Status.FAILED, A, B, "x", logs="out"), ALL)
    assert rolled is not None and rolled.logs == "out" and rolled.seconds == 2.0
    assert failed is not None and failed.logs is None


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "C"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_language_follows_the_system_locale(env: dict[str, str], lang: str) -> None:
    assert language_from_env(env) == lang


def test_test_message_in_both_languages() -> None:
    assert trial_message("box", "en", "[k] ") == (
        "[k] cr-agent @ box: test message",
        "cr-agent on box can reach this channel.",
    )
    assert trial_message("box", "zh")[0] == "cr-agent @ box：测试消息"


@pytest.mark.parametrize("status", [Status.SKIPPED, Status.UP_TO_DATE])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_event_notify_on_accepts_is_told(status: Status, lang: str) -> None:
    from agent.config import EVENTS as _EVENTS

    assert status.value in _EVENTS  # `[notify] on` accepts it, so a message must say it
    r = Result("web", "127.0.0.1:5000/ns/web:latest", status, None, None, "pre_update hook failed (exit 1)")
    item = item_for(r, {status.value})
    assert item is not None
    text = body([item], lang, False)
    assert "web" in text and ("pre_update hook failed" in text or status is Status.UP_TO_DATE)


@pytest.mark.parametrize(("lang", "words"), [("en", ("repository", "source")), ("zh", ("仓库", "源码"))])
def test_an_update_shows_the_new_images_version_and_repository(lang: str, words: tuple[str, str]) -> None:
    from agent.model import Version

    v = Version("v1.4.2", "3f2a9c1d" + "0" * 32, "https://git.example.com/shop/web")
    it = item_for(Result("web", IMG, Status.UPDATED, A, B, seconds=3.0, version=v), ALL)
    assert it is not None
    text = body([it], lang, markdown=False)
    assert "aaaaaaaaaaaa → bbbbbbbbbbbb · v1.4.2 (3f2a9c1)" in text
    assert f"{words[0]}{'：' if lang == 'zh' else ': '}registry.cn-hangzhou.aliyuncs.com/ns/web\n" in text
    assert f"{words[1]}{'：' if lang == 'zh' else ': '}https://git.example.com/shop/web" in text
    assert "`v1.4.2 (3f2a9c1)`" in body([it], lang, markdown=True)


def test_version_reads_the_oci_labels_and_says_nothing_without_them() -> None:
    from agent.model import Version

    assert (
        Version.from_labels({}) is None
        and Version.from_labels({"org.opencontainers.image.source": "x"}) is None
    )
    v = Version.from_labels(
        {"org.opencontainers.image.version": "1.2", "org.opencontainers.image.revision": "abcdef0123"}
    )
    assert v is not None and str(v) == "1.2 (abcdef0)"
    assert str(Version(revision="release-7")) == "release-7"
    r = Result("web", IMG, Status.UPDATED, version=v).as_json()
    assert r["version"] == {
        "version": "1.2",
        "revision": "abcdef0123",
        "source": None,
        "text": "1.2 (abcdef0)",
    }
