"""Build records of both editions, read defensively; one notice per failed or stuck build, across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from loguru import logger

from agent.notify.book import NoticeBook
from agent.notify.buildwatch import Build, BuildWatch, read_builds

NOW = 1_800_000_000.0
MS = int(NOW * 1000)

PERSONAL = {"data": {"builds": [
    {"buildId": "b-1", "buildStatus": "FAILED", "startTime": MS - 600_000, "endTime": MS, "image": {"tag": "v1"}},
    {"buildId": "b-2", "buildStatus": "BUILDING", "startTime": MS - 3_600_000, "image": {"tag": "v2"}},
    {"buildId": "b-3", "buildStatus": "SUCCESS", "startTime": MS - 60_000},
], "total": 3}, "requestId": "r"}  # fmt: skip
ENTERPRISE = {"BuildRecords": [
    {"BuildRecordId": "e-1", "BuildStatus": "FAILED", "StartTime": str(MS - 60_000), "EndTime": str(MS),
     "Image": {"RepoNamespaceName": "ns", "RepoName": "web", "ImageTag": "latest", "RepoId": "crr-1"}},
    {"BuildRecordId": "e-2", "BuildStatus": "PENDING", "StartTime": str(MS - 1_900_000)},
    {"BuildRecordId": "e-3", "BuildStatus": "PENDING", "StartTime": str(MS - 60_000)},
], "TotalCount": "3", "IsSuccess": True}  # fmt: skip


def test_personal_records_lowercase_keys() -> None:
    assert read_builds(PERSONAL, "ns/web") == [
        Build("b-1", "FAILED", NOW - 600, "v1"), Build("b-2", "BUILDING", NOW - 3600, "v2"),
        Build("b-3", "SUCCESS", NOW - 60, None),
    ]  # fmt: skip


def test_enterprise_records_capitalised_keys_and_string_times() -> None:
    (first, *_) = read_builds(ENTERPRISE, "ns/web")
    assert first == Build("e-1", "FAILED", NOW - 60, "latest")


@pytest.mark.parametrize(
    ("body", "warning"),
    [
        ({"data": {"nothing": []}}, "unrecognised ACR build list"),
        ("not even a dict", "unrecognised ACR build list"),
        (
            {"data": {"builds": [{"buildStatus": "FAILED"}, {"buildId": "x"}, 7]}},
            "3 unrecognised ACR build record(s)",
        ),
    ],
)
def test_unknown_shapes_are_a_warning_not_a_crash(body: object, warning: str) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        assert read_builds(body, "ns/web") == []
    finally:
        logger.remove(sink)
    assert any(warning in line for line in lines), lines


def test_one_notice_per_failed_or_stuck_build_across_restarts(tmp_path: Path) -> None:
    def watch() -> BuildWatch:
        return BuildWatch(NoticeBook(tmp_path), stuck_after=1800.0, clock=lambda: NOW)

    builds = read_builds(PERSONAL, "ns/web") + read_builds(ENTERPRISE, "ns/web")
    items = watch().news("ns/web", builds, "https://console/build")
    assert [(i.kind, i.build_id, i.build_minutes) for i in items] == [
        ("build_failed", "b-1", 10), ("build_stuck", "b-2", 60), ("build_failed", "e-1", 1), ("build_stuck", "e-2", 31),
    ]  # fmt: skip
    assert items[0].link == "https://console/build" and items[0].image == "ns/web:v1"
    assert watch().news("ns/web", builds, None) == []  # a restart: the same records are not news


def test_a_stuck_build_that_then_fails_is_told_again_as_failed(tmp_path: Path) -> None:
    w = BuildWatch(NoticeBook(tmp_path), stuck_after=1800.0, clock=lambda: NOW)
    assert [i.kind for i in w.news("r", [Build("x", "BUILDING", NOW - 2000)], None)] == ["build_stuck"]
    assert [i.kind for i in w.news("r", [Build("x", "FAILED", NOW - 2000)], None)] == ["build_failed"]


def test_old_records_are_history_not_news(tmp_path: Path) -> None:
    w = BuildWatch(NoticeBook(tmp_path), stuck_after=1800.0, clock=lambda: NOW)
    assert (
        w.news("r", [Build("old", "FAILED", NOW - 2 * 86400), Build("young", "PENDING", NOW - 60)], None)
        == []
    )


ACR = "registry.cn-hangzhou.aliyuncs.com"
ENV = {"ALIYUN_ACCESS_KEY_ID": "i", "ALIYUN_ACCESS_KEY_SECRET": "s"}
NOTIFY = {"urls": ["json://127.0.0.1:1/x"]}


def test_config_collects_each_watched_repository_once() -> None:
    from agent.config import parse
    from agent.model import RepoKey

    cfg = parse({
        "watch": [{"container": "a", "image": f"{ACR}/ns/web:latest", "watch_builds": True},
                  {"container": "b", "image": f"{ACR}/ns/web:v2", "watch_builds": True},
                  {"container": "c", "image": f"{ACR}/ns/api:latest"}],
        "build_watch": [{"repository": "ns/base"}, {"repository": "registry.cn-shanghai.aliyuncs.com/ns/tool"}],
        "notify": {**NOTIFY, "stuck_after": "45m"},
    }, ENV)  # fmt: skip
    assert cfg.build_watch == (
        RepoKey(ACR, "ns", "web"), RepoKey(ACR, "ns", "base"), RepoKey("registry.cn-shanghai.aliyuncs.com", "ns", "tool"),
    )  # fmt: skip
    assert cfg.notify is not None and cfg.notify.stuck_after == 2700


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"build_watch": [{"repository": "ns/x"}]}, "build_watch: watching ACR builds needs [notify] urls"),
        ({"build_watch": [{}], "notify": NOTIFY}, "build_watch[0].repository: required"),
        ({"build_watch": [{"repository": "NS/x"}], "notify": NOTIFY}, "upper-case letters are not allowed"),
        (
            {"build_watch": [{"repository": "ns/x", "tag": "v"}], "notify": NOTIFY},
            "build_watch[0].tag: unknown key",
        ),
        (
            {"build_watch": {"repository": "ns/x"}, "notify": NOTIFY},
            "build_watch: must be an array of tables",
        ),
        ({"notify": {**NOTIFY, "stuck_after": "10s"}}, "notify.stuck_after: must be between 1m and 30d"),
    ],
)
def test_config_problems(raw: dict, problem: str) -> None:
    from agent.config import parse
    from agent.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        parse({"watch": [{"container": "a", "image": f"{ACR}/ns/web:latest"}], **raw}, ENV)
    assert problem in str(e.value)


def test_watch_builds_needs_an_acr_source() -> None:
    from agent.config import parse
    from agent.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        parse(
            {
                "watch": [{"container": "a", "image": "127.0.0.1:5000/ns/a", "watch_builds": True}],
                "notify": NOTIFY,
            },
            {},
        )
    assert "watch[0].watch_builds: only ACR repositories" in str(e.value)
