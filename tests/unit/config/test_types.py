"""Issue 10: config parses into StrEnums and Secrets; one redact() masks every registered secret."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agent import secret
from agent.choices import Edition, Match, Source, Strategy
from agent.cli.commands import main
from agent.config import Config, parse
from agent.errors import ConfigError
from agent.secret import Secret, redact

IMG = "registry.cn-hangzhou.aliyuncs.com/myns/web:latest"
# Built, not literal, so a traceback quoting this file cannot show them.
KEY_SECRET, STS, TOKEN, PASSWORD = (
    "-".join(["s3cret", w, "0123456789"]) for w in ("key", "sts", "hook", "pw")
)
HOOK_URL, NOTIFY_URL = f"https://hc-ping.com/{'ab' * 10}", f"tgram://bot:{'cd' * 10}/123"
RAW = {
    "agent": {"heartbeat_url": HOOK_URL},
    "aliyun": {"access_key_id": "LTAIid", "access_key_secret": KEY_SECRET, "security_token": STS},
    "watch": [{"container": "web", "image": IMG}],
    "registry_auth": {"127.0.0.1:5000": {"username": "u", "password": PASSWORD}},
    "webhook": {"listen": "127.0.0.1:1", "token": TOKEN, "match": "tag"},
    "notify": {"urls": [NOTIFY_URL]},
}
VALUES = (KEY_SECRET, STS, TOKEN, PASSWORD, HOOK_URL, NOTIFY_URL)


def full() -> Config:
    return parse(RAW, {})


def test_repr_str_fstring_and_json_of_a_config_never_show_a_secret() -> None:
    cfg = full()
    as_json = json.dumps(dataclasses.asdict(cfg), default=str)
    shown = [repr(cfg), str(cfg), f"{cfg}", f"{cfg.webhook}", as_json, repr(dataclasses.asdict(cfg))]
    for text in shown:
        for value in VALUES:
            assert value not in text
    assert "***" in as_json


def test_config_holds_secrets_as_secret_and_reveals_them_on_demand() -> None:
    cfg = full()
    assert cfg.webhook is not None and cfg.notify is not None and cfg.agent.heartbeat_url is not None
    held = [cfg.aliyun.access_key_secret, cfg.aliyun.security_token, cfg.registry_auth["127.0.0.1:5000"].password,
            cfg.webhook.token, cfg.agent.heartbeat_url, *cfg.notify.urls]  # fmt: skip
    assert all(isinstance(s, Secret) for s in held)
    assert sorted(s.reveal() for s in held if s) == sorted(VALUES)


def test_every_secret_of_a_config_is_masked_by_the_one_redact() -> None:
    full()
    text = " | ".join(VALUES)
    assert redact(text) == " | ".join(["***"] * len(VALUES))


def test_a_secret_is_never_shown_and_compares_by_value() -> None:
    s = Secret("hunter2-hunter2")
    assert (str(s), repr(s), f"{s}", f"{s:>20}", str([s])) == (
        "***",
        "Secret('***')",
        "***",
        "***",
        "[Secret('***')]",
    )
    assert s == Secret("hunter2-hunter2") and s != Secret("other-value") and s != "hunter2-hunter2"
    with pytest.raises(TypeError):
        json.dumps({"token": s})


def test_reset_forgets_registered_secrets_and_short_values_are_not_registered() -> None:
    secret.register("abc", "long-enough-value")
    assert redact("abc long-enough-value") == "abc ***"
    secret.reset()
    assert redact("long-enough-value") == "long-enough-value"


def test_a_longer_secret_is_masked_whole_when_it_contains_a_shorter_one() -> None:
    secret.register("token-1234", "token-1234-extended")
    assert redact("a token-1234-extended b") == "a *** b"


def test_choices_are_parsed_into_enums() -> None:
    cfg = full()
    w = cfg.watches[0]
    assert w.source is Source.ALIYUN and w.strategy is Strategy.STOP_FIRST
    assert cfg.aliyun.edition is Edition.PERSONAL
    assert cfg.webhook is not None and cfg.webhook.match is Match.TAG
    service = parse({"watch": [{"service": "api", "image": "127.0.0.1:5000/ns/api:1"}]}, {})
    assert (
        service.watches[0].source is Source.REGISTRY and service.watches[0].strategy is Strategy.START_FIRST
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"watch": [{"container": "a", "image": IMG, "source": "acr"}]},
         "watch[0].source: must be 'aliyun' or 'registry', got 'acr'"),
        ({"watch": [{"container": "a", "image": IMG, "strategy": "rolling"}]},
         "watch[0].strategy: must be 'stop-first' or 'start-first', got 'rolling'"),
        ({"watch": [{"container": "a", "image": IMG}], "aliyun": {"edition": "basic"}},
         "aliyun.edition: must be 'personal' or 'enterprise', got 'basic'"),
        ({"watch": [{"container": "a", "image": IMG}],
          "webhook": {"listen": "127.0.0.1:1", "token": "t" * 20, "match": "all"}},
         "webhook.match: must be 'any' or 'tag', got 'all'"),
    ],
)  # fmt: skip
def test_a_bad_choice_names_the_key_and_the_allowed_values(raw: dict, expected: str) -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret-value"}
    with pytest.raises(ConfigError) as e:
        parse(raw, env)
    assert expected in e.value.problems


def test_agent_check_exits_2_on_a_bad_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[[watch]]\ncontainer = "web"\nimage = "127.0.0.1:5000/ns/web:1"\nstrategy = "blue-green"\n'
    )
    assert main(["check", "-c", str(path)]) == 2
    assert (
        "watch[0].strategy: must be 'stop-first' or 'start-first', got 'blue-green'"
        in capsys.readouterr().err
    )


def test_adapters_raise_our_errors_not_value_error() -> None:
    """Issue 10: webhook payloads and listen addresses fail with AgentError subclasses."""
    from agent.errors import AgentError
    from agent.webhook.acr import BadPayload, parse_push
    from agent.webhook.listen import parse_listen

    with pytest.raises(BadPayload) as bad:
        parse_push(b"{")
    with pytest.raises(ConfigError) as listen:
        parse_listen("nope", "metrics.listen")
    for e in (bad.value, listen.value):
        assert isinstance(e, AgentError) and not isinstance(e, ValueError)
    assert "metrics.listen: must be host:port" in str(listen.value)
