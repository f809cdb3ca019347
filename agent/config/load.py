"""agent.toml → Config: every section validated, one ConfigError listing every problem."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.choices import LANGUAGES, Edition, Match, Source, language_from_env
from agent.compat import tomllib
from agent.config.access import GOOD_TOKEN, MAKE_TOKEN, metrics_of, trusted_proxies
from agent.config.builds import build_repos
from agent.config.cron import parse_cron
from agent.config.envvalues import CleanEnv
from agent.config.fields import (
    DAY,
    Problems,
    check_instance_id,
    choice,
    duration,
    first_env,
    inline_or_env,
    listen_addr,
    mode_of,
    span,
    table_of,
    typed,
    unknown,
)
from agent.config.labels import describe as line
from agent.config.schema import (
    DEFAULT_INTERVAL,
    EVENTS,
    AgentSettings,
    AliyunSettings,
    Config,
    NotifySettings,
    RegistryAuth,
    Schedule,
    Watch,
    WebhookSettings,
)
from agent.config.signatures import describe as signatures
from agent.config.signatures import signatures_section
from agent.config.watches import watches_of
from agent.errors import ConfigError
from agent.registries.acr_hosts import parse_host
from agent.secret import Secret, redact

DEFAULT_PATHS = (Path("agent.toml"), Path("/etc/cr-agent/agent.toml"))
_REGION = re.compile(r"^[a-z]{2}-[a-z0-9-]+$")
ENV_KEY_ID = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_ID")
ENV_KEY_SECRET = ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIYUN_ACCESS_KEY_SECRET")
ENV_STS_TOKEN = ("ALIBABA_CLOUD_SECURITY_TOKEN",)


def find_config(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for p in DEFAULT_PATHS:
        if p.is_file():
            return p
    raise ConfigError(
        [f"no config file: tried {', '.join(str(p) for p in DEFAULT_PATHS)} (give one with -c PATH)"]
    )


def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate `path`; raise ConfigError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read: {e}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    clean = CleanEnv(os.environ if env is None else env)
    cfg = parse(raw, clean)
    return replace(cfg, path=path, warnings=tuple(clean.warnings()))


def parse(raw: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    p = Problems()
    known = {"agent", "aliyun", "watch", "registry_auth", "webhook", "notify", "metrics", "build_watch"}
    known.add("signatures")
    unknown(p, "", raw, known)
    agent = _agent(p, table_of(p, "agent", raw.get("agent", {})))
    pull_timeout, pull_stall = _pull_limits(p, raw.get("agent"))
    agent = replace(agent, pull_timeout=pull_timeout, pull_stall=pull_stall)
    watches = watches_of(p, raw.get("watch", []), agent.mode, agent.discover is not None)
    # a static key is optional: without one, the credential chain; with none, ACR watches are followed
    # through the registry. Half a key is a mistake wherever ACR is asked.
    needs_aliyun = bool(raw.get("build_watch")) or any(w.source is Source.ALIYUN for w in watches)
    aliyun = _aliyun(p, table_of(p, "aliyun", raw.get("aliyun", {})), env, needs_aliyun)
    _acr_hosts(p, watches, aliyun)
    auth = _registry_auth(p, table_of(p, "registry_auth", raw.get("registry_auth", {})), env)
    webhook = _webhook(p, raw.get("webhook"), env)
    notify = _notify(p, raw.get("notify"), env)
    metrics = metrics_of(p, raw.get("metrics"), env)

    builds = build_repos(p, raw.get("build_watch", []), watches, notify is not None)

    signatures = signatures_section(p, raw.get("signatures"))
    if p.items:
        raise ConfigError(p.items)
    return Config(agent, aliyun, watches, auth, webhook, None, notify, metrics, builds, signatures)


def _agent(p: Problems, t: dict[str, Any]) -> AgentSettings:
    known = {"interval", "cron", "jitter", "state_dir", "parallel_pulls", "keep_images", "mode",
             "self_update", "discover", "heartbeat_url"}  # fmt: skip
    unknown(p, "agent", t, known | _PULL_KEYS)
    cron = typed(p, "agent", t, "cron", str, None)
    interval: float | None = None
    if "interval" in t and cron is not None:
        p.add("agent.cron", "give interval or cron, not both")
    if cron is not None:
        try:
            parse_cron(cron)
        except ValueError as e:
            p.add("agent.cron", str(e))
    else:
        interval = duration(p, "agent", t, "interval", DEFAULT_INTERVAL, low=1.0)
    jitter = duration(p, "agent", t, "jitter", Schedule.jitter, high=DAY)
    mode = mode_of(p, "agent", t, AgentSettings.mode)
    state_dir = typed(p, "agent", t, "state_dir", str, str(AgentSettings.state_dir))
    parallel = typed(p, "agent", t, "parallel_pulls", int, AgentSettings.parallel_pulls)
    if not 1 <= parallel <= 32:
        p.add("agent.parallel_pulls", "must be between 1 and 32")
    keep = typed(p, "agent", t, "keep_images", int, AgentSettings.keep_images)
    if not 0 <= keep <= 100:
        p.add("agent.keep_images", "must be between 0 and 100")
    self_update = typed(p, "agent", t, "self_update", bool, AgentSettings.self_update)
    discover = typed(p, "agent", t, "discover", str, None)
    if discover not in (None, "labels", "all"):
        p.add("agent.discover", f"must be 'labels' or 'all', got {discover!r}")
        discover = None
    heartbeat = typed(p, "agent", t, "heartbeat_url", str, None)
    if heartbeat is not None and not re.match(r"^https?://[^/\s]+", heartbeat):
        p.add("agent.heartbeat_url", "expected an http:// or https:// URL, e.g. https://hc-ping.com/<uuid>")
    return AgentSettings(
        Schedule(interval, cron, jitter),
        Path(state_dir),
        parallel,
        keep,
        mode,
        self_update=self_update,
        discover=discover,
        heartbeat_url=Secret(heartbeat) if heartbeat else None,
    )


_PULL_KEYS = {"pull_timeout", "pull_stall"}


def _pull_limits(p: Problems, t: Any) -> tuple[float, float]:
    """`pull_timeout` and `pull_stall` of [agent] (1s–1d each); the stall window never exceeds the deadline."""
    if not isinstance(t, dict):
        return AgentSettings.pull_timeout, AgentSettings.pull_stall
    timeout = duration(p, "agent", t, "pull_timeout", AgentSettings.pull_timeout, low=1.0, high=DAY)
    stall = duration(p, "agent", t, "pull_stall", min(AgentSettings.pull_stall, timeout), low=1.0, high=DAY)
    if stall > timeout:
        p.add("agent.pull_stall", f"must not exceed pull_timeout ({span(timeout)}), got {t['pull_stall']!r}")
        stall = timeout
    return timeout, stall


def _aliyun(p: Problems, t: dict[str, Any], env: Mapping[str, str], needed: bool) -> AliyunSettings:
    known = {"region", "edition", "instance_id", "access_key_id", "access_key_secret", "security_token"}
    known |= {
        "access_key_id_env",
        "access_key_secret_env",
        "security_token_env",
        "endpoint",
        "timeout",
        "retries",
        "ca_file",
        "api_network",
    }
    unknown(p, "aliyun", t, known)
    region = typed(p, "aliyun", t, "region", str, None)
    if region is not None and not _REGION.match(region):
        p.add("aliyun.region", f"not a region id: {region!r} (e.g. 'cn-hangzhou')")
    edition = choice(p, "aliyun", t, "edition", Edition) or AliyunSettings.edition
    instance_id = typed(p, "aliyun", t, "instance_id", str, None)
    check_instance_id(p, "aliyun.instance_id", instance_id)
    ca_file = typed(p, "aliyun", t, "ca_file", str, None)
    if ca_file is not None and not os.path.isfile(ca_file):
        p.add("aliyun.ca_file", f"no such file: {ca_file!r} (a PEM bundle of CA certificates)")
    key_id = inline_or_env(p, "aliyun", t, "access_key_id", env) or first_env(env, ENV_KEY_ID)
    key_secret = inline_or_env(p, "aliyun", t, "access_key_secret", env) or first_env(env, ENV_KEY_SECRET)
    token = inline_or_env(p, "aliyun", t, "security_token", env) or first_env(env, ENV_STS_TOKEN)
    if needed and bool(key_id) != bool(key_secret):  # neither: the credential chain (docs/acr.md)
        p.add(
            "aliyun.access_key_secret" if key_id else "aliyun.access_key_id",
            "give access_key_id and access_key_secret together (or _env, or ALIBABA_CLOUD_ACCESS_KEY_ID / "
            "_SECRET), or neither to take credentials from the Alibaba Cloud credential chain",
        )
    endpoint = typed(p, "aliyun", t, "endpoint", str, None)
    if endpoint is not None and not re.match(r"^(https?://)?[A-Za-z0-9.\-\[\]:]+/?$", endpoint):
        p.add("aliyun.endpoint", f"expected a host[:port] or http(s)://host[:port], got {endpoint!r}")
    timeout = duration(p, "aliyun", t, "timeout", AliyunSettings.timeout, low=0.1, high=600.0)
    retries = typed(p, "aliyun", t, "retries", int, AliyunSettings.retries)
    if not 0 <= retries <= 10:
        p.add("aliyun.retries", "must be between 0 and 10")
    network = typed(p, "aliyun", t, "api_network", str, AliyunSettings.api_network)
    if network not in ("auto", "public", "vpc"):
        p.add("aliyun.api_network", f"must be 'auto', 'public' or 'vpc', got {network!r}")
    return AliyunSettings(
        region,
        edition,
        instance_id,
        key_id,
        _secret(key_secret),
        _secret(token),
        endpoint,
        timeout,
        retries,
        ca_file,
        network,
    )


def _acr_hosts(p: Problems, watches: tuple[Watch, ...], aliyun: AliyunSettings) -> None:
    """Every ACR watch must name a host whose region, edition and instance can be found."""

    for i, w in enumerate(watches):
        if w.source is not Source.ALIYUN:
            continue
        try:
            parse_host(
                w.image.host,
                region=w.region or aliyun.region,
                instance_id=w.instance_id,
                edition=aliyun.edition,
                default_instance_id=aliyun.instance_id,
            )
        except ValueError as e:
            p.add(f"watch[{i}].image", str(e))


def _registry_auth(p: Problems, t: dict[str, Any], env: Mapping[str, str]) -> dict[str, RegistryAuth]:
    out = {}
    for host, entry in t.items():
        path = f'registry_auth."{host}"'
        if not isinstance(entry, dict):
            p.add(path, "must be a table with username and password or password_env")
            continue
        unknown(p, path, entry, {"username", "password", "password_env"})
        user = typed(p, path, entry, "username", str, None)
        password = inline_or_env(p, path, entry, "password", env)
        if not user:
            p.add(f"{path}.username", "required")
        if not password and "password_env" not in entry:
            p.add(f"{path}.password", "required (or password_env)")
        if user and password:
            out[host] = RegistryAuth(user, Secret(password))
    return out


def _webhook(p: Problems, value: Any, env: Mapping[str, str]) -> WebhookSettings | None:
    if value is None:
        return None
    t = table_of(p, "webhook", value)
    unknown(p, "webhook", t, {"listen", "token", "token_env", "match", "debounce", "trusted_proxies"})
    listen = listen_addr(p, "webhook", t, "0.0.0.0:7023")
    token = inline_or_env(p, "webhook", t, "token", env)
    if not token and "token_env" not in t:
        p.add("webhook.token", "required (or token_env): the secret part of the hook URL")
    elif token and len(token) < 16:
        p.add("webhook.token", f"too short: use at least {GOOD_TOKEN} random characters, e.g. {MAKE_TOKEN}")
    match = choice(p, "webhook", t, "match", Match) or WebhookSettings.match
    debounce = duration(p, "webhook", t, "debounce", WebhookSettings.debounce, high=3600.0)
    proxies = trusted_proxies(p, "webhook", t)
    if listen is None or not token:
        return None
    return WebhookSettings(listen, Secret(token), match, debounce, proxies)


def _notify(p: Problems, value: Any, env: Mapping[str, str]) -> NotifySettings | None:
    if value is None:
        return None
    t = table_of(p, "notify", value)
    unknown(
        p, "notify", t, {"urls", "urls_env", "on", "language", "title_prefix", "repeat_after", "stuck_after"}
    )
    urls: list[str] = []
    listed = typed(p, "notify", t, "urls", list, [])
    if not all(isinstance(u, str) for u in listed):
        p.add("notify.urls", "must be a list of strings")
        listed = []
    urls += listed
    env_name = typed(p, "notify", t, "urls_env", str, None)
    if env_name:
        if not env.get(env_name):
            p.add("notify.urls_env", f"environment variable {env_name} is not set")
        urls += [u for u in re.split(r"[\s,]+", env.get(env_name, "")) if u]
    for i, u in enumerate(listed):
        if not re.match(r"^[a-z][a-z0-9+.-]*://", u):
            p.add(
                f"notify.urls[{i}]",
                "not an apprise URL (scheme://...), see https://github.com/caronc/apprise/wiki",
            )
    if not urls and not env_name:
        p.add("notify.urls", "give at least one apprise URL (or urls_env)")
    on = typed(p, "notify", t, "on", list, list(NotifySettings.on))
    for i, e in enumerate(on):
        if e not in EVENTS:
            p.add(f"notify.on[{i}]", f"unknown event {e!r} (known: {', '.join(EVENTS)})")

    language = typed(p, "notify", t, "language", str, language_from_env(env))
    if language not in LANGUAGES:
        p.add("notify.language", f"must be 'zh' or 'en', got {language!r}")
    prefix = typed(p, "notify", t, "title_prefix", str, NotifySettings.title_prefix)
    repeat = duration(p, "notify", t, "repeat_after", NotifySettings.repeat_after, low=60.0)
    stuck = duration(p, "notify", t, "stuck_after", NotifySettings.stuck_after, low=60.0)
    return NotifySettings(tuple(Secret(u) for u in urls), tuple(on), language, prefix, repeat, stuck)


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def describe(cfg: Config, *, keyless: bool = False) -> str:
    """A short human summary for `agent check`; `keyless`: no key, and no source of the chain set up here."""
    lines = [f"config {cfg.path}: {len(cfg.watches)} watch entr{'y' if len(cfg.watches) == 1 else 'ies'}"]
    lines += [f"  {line(w)}" for w in cfg.watches]
    if cfg.agent.discover:
        lines.append(f"  discover = {cfg.agent.discover!r}: containers opt in with labels (cr-agent.enable)")
    if any(w.source is Source.ALIYUN for w in cfg.watches) or cfg.build_watch:
        a = cfg.aliyun
        if a.access_key_id and a.access_key_secret:
            token = " with an STS token" if a.security_token else ""
            lines.append(f"  ACR credentials: static AccessKey {a.access_key_id}{token}")
        elif keyless:
            lines.append(
                "  ACR credentials: none (no key given, and no source of the Alibaba Cloud credential chain is "
                "set up here): images on ACR hosts are followed through the registry (public images, or the "
                "docker config's login); set a key to use the ACR API"
            )
        else:
            lines.append(
                "  ACR credentials: no key given: the Alibaba Cloud credential chain at first use "
                "(`agent check --online` names the source)"
            )

    lines += signatures(cfg)
    return redact("\n".join(lines))
