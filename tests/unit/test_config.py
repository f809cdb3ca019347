"""Config: the example loads; every problem is listed at once with its key path; no silent coercion."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load, parse
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret-value"}
IMG = "registry.cn-hangzhou.aliyuncs.com/myns/web:latest"


def problems(raw: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse(raw, ENV if env is None else env)
    return e.value.problems


def test_example_file_loads_and_matches_documented_defaults() -> None:
    cfg = load(ROOT / "agent.toml.example", env={"CR_AGENT_AK_ID": "id", "CR_AGENT_AK_SECRET": "secret"})
    assert cfg.agent.schedule.interval == 300 and cfg.agent.schedule.jitter == 30
    assert cfg.aliyun.edition == "personal" and cfg.aliyun.access_key_secret == "secret"
    (w,) = cfg.watches
    assert (w.container, w.source, w.strategy, w.min_uptime) == ("web", "aliyun", "stop-first", 10.0)
    assert str(w.image) == IMG


def test_minimal_config_takes_credentials_from_alibaba_env() -> None:
    cfg = parse({"watch": [{"container": "web", "image": IMG}]}, ENV)
    assert cfg.aliyun.access_key_id == "LTAIid"
    assert "s3cret-value" in cfg.secrets


def test_every_problem_is_listed_at_once_with_its_key_path() -> None:
    raw = {
        "agent": {"interval": "5 minutes", "colour": "blue"},
        "aliyun": {"edition": "enterprise"},
        "watch": [
            {"container": "web", "image": "registry.cn-hangzhou.aliyuncs.com/MyNs/web:latest"},
            {"image": IMG},
            {"container": "db", "image": IMG, "strategy": "yolo", "healthh": {}},
        ],
    }
    got = "\n".join(problems(raw, {}))
    for expected in (
        "agent.interval: not a duration: '5 minutes'",
        "agent.colour: unknown key",
        "aliyun.instance_id: required for the enterprise edition",
        "aliyun.access_key_id: missing credentials",
        "watch[0].image: upper-case letters are not allowed in a repository name ('MyNs')",
        "watch[1].container: required",
        "watch[2].strategy: must be 'stop-first' or 'start-first'",
        "watch[2].healthh: unknown key",
    ):
        assert expected in got, got


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"agent": {"cron": "*/5 * * *"}}, "agent.cron: a cron expression has 5 fields"),
        ({"agent": {"cron": "61 * * * *"}}, "agent.cron: invalid cron expression"),
        ({"agent": {"cron": "* * * * *", "interval": "5m"}}, "agent.cron: give interval or cron, not both"),
        ({"agent": {"interval": 300}}, "agent.interval: expected a string"),
        ({"agent": {"interval": "0s"}}, "agent.interval: must be at least 1s"),
        ({"agent": {"parallel_pulls": True}}, "agent.parallel_pulls: expected an integer, got a boolean"),
        ({"aliyun": {"region": "Hangzhou"}}, "aliyun.region: not a region id"),
        ({"aliyun": {"endpoint": "ftp://x y"}}, "aliyun.endpoint"),
        ({"webhook": {"listen": "0.0.0.0:7023", "token": "short"}}, "webhook.token: too short"),
        ({"webhook": {"listen": "nowhere", "token": "x" * 20}}, "webhook.listen: expected host:port"),
        (
            {"webhook": {"listen": ":7023", "token_env": "NOPE"}},
            "webhook.token_env: environment variable NOPE is not set",
        ),
        (
            {"registry_auth": {"r.example.com": {"username": "u"}}},
            'registry_auth."r.example.com".password: required',
        ),
    ],
)
def test_bad_values_are_named(raw: dict, expected: str) -> None:
    raw = {"watch": [{"container": "web", "image": IMG}], **raw}
    assert any(expected in p for p in problems(raw)), problems(raw)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("myns/web:latest", "must start with a registry host"),
        ("registry.cn-hangzhou.aliyuncs.com/web:latest", "<namespace>/<repository>"),
        ("registry.cn-hangzhou.aliyuncs.com/a/b/c:latest", "<namespace>/<repository>"),
        ("registry.cn-hangzhou.aliyuncs.com/ns/web@sha256:" + "a" * 64, "not a digest"),
        ("registry.cn-hangzhou.aliyuncs.com/ns/web:bad tag", "invalid tag"),
    ],
)
def test_bad_image_references(image: str, expected: str) -> None:
    got = problems({"watch": [{"container": "web", "image": image}]})
    assert any(expected in p for p in got), got


def test_duplicate_containers_and_empty_watch_list() -> None:
    assert any("already watched by watch[0]" in p for p in problems(
        {"watch": [{"container": "web", "image": IMG}, {"container": "web", "image": IMG}]}))  # fmt: skip
    assert any("no [[watch]] entries" in p for p in problems({"watch": []}))


def test_source_defaults_by_host_and_can_be_forced_for_local_registries() -> None:
    cfg = parse({"watch": [
        {"container": "a", "image": "127.0.0.1:5000/ns/a:latest"},
        {"container": "b", "image": "127.0.0.1:5000/ns/b:latest", "source": "aliyun"},
    ]}, ENV)  # fmt: skip
    assert [w.source for w in cfg.watches] == ["registry", "aliyun"]


def test_local_registry_watch_needs_no_aliyun_credentials() -> None:
    cfg = parse({"watch": [{"container": "a", "image": "127.0.0.1:5000/ns/a"}]}, {})
    assert cfg.watches[0].image.tag == "latest"


def test_health_probe_needs_exactly_one_kind() -> None:
    got = problems({"watch": [{"container": "a", "image": IMG, "health": {"timeout": "1s"}}]})
    assert any("watch[0].health: give exactly one of http or tcp" in p for p in got)
    cfg = parse({"watch": [{"container": "a", "image": IMG, "health": {"tcp": "127.0.0.1:5432"}}]}, ENV)
    assert cfg.watches[0].health is not None and cfg.watches[0].health.tcp == "127.0.0.1:5432"


def test_secrets_never_appear_in_repr_or_errors() -> None:
    cfg = parse(
        {"watch": [{"container": "a", "image": IMG}], "webhook": {"listen": ":1", "token": "t" * 20}}, ENV
    )
    assert "s3cret-value" not in repr(cfg) and "t" * 20 not in repr(cfg)
    got = problems(
        {
            "watch": [{"container": "a", "image": IMG}],
            "aliyun": {"access_key_secret": "hunter2hunter2", "bogus": 1},
        }
    )
    assert all("hunter2" not in p for p in got)


def test_unreadable_and_invalid_toml_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
