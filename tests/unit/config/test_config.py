"""Config: the example loads; every problem is listed at once with its key path; no silent coercion."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.choices import Edition, Source, Strategy
from agent.config import load, parse
from agent.errors import ConfigError
from agent.secret import Secret, redact

ROOT = Path(__file__).resolve().parents[3]
ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cret-value"}
IMG = "registry.cn-hangzhou.aliyuncs.com/myns/web:latest"


def problems(raw: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse(raw, ENV if env is None else env)
    return e.value.problems


def test_example_file_loads_and_matches_documented_defaults() -> None:
    cfg = load(ROOT / "agent.toml.example", env={**ENV, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret"})
    assert cfg.agent.schedule.interval == 300 and cfg.agent.schedule.jitter == 30
    assert cfg.aliyun.edition is Edition.PERSONAL and cfg.aliyun.access_key_secret == Secret("secret")
    (w,) = cfg.watches
    assert (w.container, w.source, w.strategy, w.min_uptime) == (
        "web",
        Source.ALIYUN,
        Strategy.STOP_FIRST,
        10.0,
    )
    assert str(w.image) == IMG


def test_minimal_config_takes_credentials_from_alibaba_env() -> None:
    cfg = parse({"watch": [{"container": "web", "image": IMG}]}, ENV)
    assert cfg.aliyun.access_key_id == "LTAIid"
    assert cfg.aliyun.access_key_secret == Secret("s3cret-value") and redact("s3cret-value") == "***"


def test_no_key_at_all_leaves_credentials_to_the_chain_but_half_a_key_is_a_problem() -> None:
    cfg = parse({"watch": [{"container": "web", "image": IMG}]}, {})
    assert cfg.aliyun.access_key_id is None and cfg.aliyun.access_key_secret is None
    half = problems(
        {"watch": [{"container": "web", "image": IMG}]}, {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIid"}
    )
    assert any(
        p.startswith("aliyun.access_key_secret: give access_key_id and access_key_secret together")
        for p in half
    ), half


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
        ({"agent": {"cron": "61 * * * *"}}, "agent.cron: invalid cron expression '61 * * * *': Bad minute"),
        ({"agent": {"cron": "* * * * *", "interval": "5m"}}, "agent.cron: give interval or cron, not both"),
        ({"agent": {"interval": 300}}, "agent.interval: expected a string"),
        ({"agent": {"interval": "0s"}}, "agent.interval: must be between 1s and 30d, got '0s'"),
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
    cfg = parse({"aliyun": {"region": "cn-hangzhou"}, "watch": [
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


@pytest.mark.parametrize(
    ("raw", "expected"),
    [  # issue 9 item 13: each of these passed `agent check`, then killed or crashed the daemon
        ({"agent": {"jitter": "99999999999d"}}, "agent.jitter: must be between 0s and 1d, got '99999999999d'"),
        ({"agent": {"interval": "1" * 400 + "s"}}, "agent.interval: must be between 1s and 30d"),
        ({"agent": {"interval": "31d"}}, "agent.interval: must be between 1s and 30d, got '31d'"),
        ({"watch": [{"container": "web", "image": IMG, "hook_timeout": "0s"}]},
         "watch[0].hook_timeout: must be between 1s and 1d, got '0s'"),
        ({"watch": [{"container": "web", "image": IMG, "health": {"tcp": "127.0.0.1:1", "interval": "0s"}}]},
         "watch[0].health.interval: must be between 10ms and 1h, got '0s'"),
        ({"watch": [{"container": "web", "image": IMG, "health": {"tcp": "127.0.0.1:1", "timeout": "0s"}}]},
         "watch[0].health.timeout: must be between 10ms and 1h, got '0s'"),
        ({"watch": [{"container": "web", "image": IMG, "min_uptime": "9" * 30 + "d"}]},
         "watch[0].min_uptime: must be between 0s and 1d"),
        ({"aliyun": {"timeout": "0s"}}, "aliyun.timeout: must be between 100ms and 10m"),
        ({"agent": {"mode": "yolo"}}, "agent.mode: must be 'update' or 'notify' (monitor only), got 'yolo'"),
        ({"watch": [{"container": "web", "image": IMG, "mode": "watch"}]}, "watch[0].mode: must be 'update' or"),
    ],
)  # fmt: skip
def test_out_of_bounds_values_are_named(raw: dict, expected: str) -> None:
    raw = {"watch": [{"container": "web", "image": IMG}], **raw}
    assert any(expected in p for p in problems(raw)), problems(raw)


def test_bounds_keep_the_values_the_docs_and_benchmarks_use() -> None:
    cfg = parse({
        "agent": {"interval": "1s", "jitter": "1d"},
        "webhook": {"listen": "127.0.0.1:1", "token": "t" * 20, "debounce": "0s"},
        "watch": [{"container": "a", "image": IMG, "min_uptime": "0s", "hook_timeout": "1s",
                   "health": {"http": "http://127.0.0.1:1/", "interval": "100ms", "timeout": "10ms"}}],
    }, ENV)  # fmt: skip
    h = cfg.watches[0].health
    assert h is not None and (h.interval, h.timeout) == (0.1, 0.01)
    assert cfg.agent.schedule.jitter == 86400


def test_check_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.commands import main

    path = tmp_path / "agent.toml"
    path.write_text(f'[agent]\njitter = "99999999999d"\n[[watch]]\ncontainer = "web"\nimage = "{IMG}"\n')
    assert main(["check", "-c", str(path)]) == 2
    assert "agent.jitter: must be between 0s and 1d" in capsys.readouterr().err


def test_mode_notify_globally_or_per_watch_entry() -> None:
    cfg = parse({"agent": {"mode": "notify"}, "watch": [
        {"container": "a", "image": IMG}, {"container": "b", "image": IMG, "mode": "update"}]}, ENV)  # fmt: skip
    assert cfg.agent.mode == "notify" and [w.mode for w in cfg.watches] == ["notify", "update"]
    cfg = parse({"watch": [{"container": "a", "image": IMG, "mode": "notify"}]}, ENV)
    assert cfg.agent.mode == "update" and cfg.watches[0].mode == "notify"


def test_notify_on_accepts_would_update_and_tells_it_by_default() -> None:
    raw = {"watch": [{"container": "a", "image": IMG}], "notify": {"urls": ["json://127.0.0.1:1/"]}}
    cfg = parse(raw, ENV)
    assert cfg.notify is not None and "would_update" in cfg.notify.on
    raw["notify"]["on"] = ["would_update"]
    cfg = parse(raw, ENV)
    assert cfg.notify is not None and cfg.notify.on == ("would_update",)


def test_check_shows_the_schedule_run_will_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.cli.commands import main

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\ncron = "0 3 * * 0-2"\njitter = "1m"\n[[watch]]\ncontainer = "web"\nimage = "{IMG}"\n'
    )
    assert main(["check", "--config-only", "-c", str(path)]) == 0
    assert "schedule of `agent run`: cron '0 3 * * 0-2' (CST) (jitter 60s)" in capsys.readouterr().out


def test_pull_limits_default_to_15_minutes_and_60_seconds_and_are_bounded() -> None:
    cfg = parse({"watch": [{"container": "web", "image": IMG}]}, ENV)
    assert (cfg.agent.pull_timeout, cfg.agent.pull_stall) == (900.0, 60.0)
    cfg = parse({"agent": {"pull_timeout": "30s"}, "watch": [{"container": "web", "image": IMG}]}, ENV)
    assert (cfg.agent.pull_timeout, cfg.agent.pull_stall) == (30.0, 30.0)  # the stall window never exceeds it
    got = problems(
        {"agent": {"pull_timeout": "0s", "pull_stall": "2d"}, "watch": [{"container": "web", "image": IMG}]}
    )
    assert got == [
        "agent.pull_timeout: must be between 1s and 1d, got '0s'",
        "agent.pull_stall: must be between 1s and 1d, got '2d'",
    ]
    got = problems(
        {"agent": {"pull_timeout": "10m", "pull_stall": "20m"}, "watch": [{"container": "web", "image": IMG}]}
    )
    assert got == ["agent.pull_stall: must not exceed pull_timeout (10m), got '20m'"]
    got = problems({"agent": {"pull_stall": 60}, "watch": [{"container": "web", "image": IMG}]})
    assert got == ["agent.pull_stall: expected a string, got int 60"]


def test_acr_hosts_are_checked_and_unknown_ones_name_the_known_forms() -> None:
    """The host decides region and edition; a custom domain needs the overrides."""
    ok = parse({"watch": [
        {"container": "a", "image": "registry.cn-shanghai.aliyuncs.com/ns/a"},
        {"container": "b", "image": "acme-registry.cn-beijing.cr.aliyuncs.com/ns/b"},
        {"container": "c", "image": "images.acme.test/ns/c", "source": "aliyun", "instance_id": "cri-abc1"},
    ], "aliyun": {"region": "cn-shanghai"}}, ENV)  # fmt: skip
    assert [w.instance_id for w in ok.watches] == [None, None, "cri-abc1"]
    got = "\n".join(problems({"watch": [
        {"container": "a", "image": "images.acme.test/ns/a", "source": "aliyun"},
        {"container": "b", "image": "registry.cn-shanghai.aliyuncs.com/ns/b", "instance_id": "cri-abc1"},
        {"container": "c", "image": "acme-registry.cn-beijing.cr.aliyuncs.com/ns/c", "instance_id": "acme"},
    ]}))  # fmt: skip
    assert "watch[0].image: cannot tell the ACR region and edition from the host 'images.acme.test'" in got
    assert "<name>-registry[-vpc].<region>.cr.aliyuncs.com" in got
    assert "watch[1].image: registry.cn-shanghai.aliyuncs.com is a personal edition host" in got
    assert "watch[2].instance_id: an enterprise instance id looks like 'cri-...'" in got


def test_service_entries_and_engines() -> None:
    cfg = parse({"watch": [{"service": "api", "image": IMG, "docker_host": "ssh://ops@10.0.0.5"}]}, ENV)
    (w,) = cfg.watches
    assert (w.kind, w.container, w.strategy, w.docker_host) == (
        "service",
        "api",
        "start-first",
        "ssh://ops@10.0.0.5",
    )
    found = problems({"watch": [
        {"service": "api", "container": "web", "image": IMG},
        {"service": "b", "image": IMG, "health": {"tcp": "127.0.0.1:1"}},
        {"container": "c", "image": IMG, "docker_host": "http://x"},
        {"container": "d", "image": IMG, "docker_tls_dir": "/nonexistent"},
    ]})  # fmt: skip
    text = "\n".join(found)
    assert "watch[0].service: give either container or service, not both" in text
    assert "watch[1].health: not for a service entry" in text
    assert "watch[2].docker_host: must start with unix:///, tcp:// or ssh://" in text
    assert "watch[3].docker_tls_dir: only with a tcp:// docker_host" in text


def test_check_says_whether_a_static_key_or_the_chain_gives_the_credentials() -> None:
    from agent.config.load import describe

    static = describe(parse({"watch": [{"container": "web", "image": IMG}]}, ENV))
    assert "ACR credentials: static AccessKey LTAIid" in static and "s3cret" not in static
    chain = describe(parse({"watch": [{"container": "web", "image": IMG}]}, {}))
    assert "ACR credentials: no key given: the Alibaba Cloud credential chain at first use" in chain
    none = describe(parse({"watch": [{"container": "web", "image": IMG}]}, {}), keyless=True)
    assert none.count("ACR credentials") == 1 and "chain at first use" not in none
    assert "ACR credentials: none (no key given, and no source of the Alibaba Cloud credential chain" in none
