"""agent.toml → frozen dataclasses. Validated whole: one ConfigError lists every problem."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.compat import tomllib
from agent.durations import parse_duration
from agent.errors import ConfigError
from agent.model import ImageRef, RepoKey
from agent.patterns import TagPattern
from agent.patterns import parse as parse_pattern

DEFAULT_PATHS = (Path("agent.toml"), Path("/etc/cr-agent/agent.toml"))
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_REGION = re.compile(r"^[a-z]{2}-[a-z0-9-]+$")
ENV_KEY_ID = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_ID")
ENV_KEY_SECRET = ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIYUN_ACCESS_KEY_SECRET")
ENV_STS_TOKEN = ("ALIBABA_CLOUD_SECURITY_TOKEN",)


@dataclass(frozen=True)
class Schedule:
    interval: float | None = 300.0
    cron: str | None = None
    jitter: float = 0.0


MODES = ("update", "notify")  # notify: monitor only, never pull or replace


@dataclass(frozen=True)
class AgentSettings:
    schedule: Schedule = field(default_factory=Schedule)
    state_dir: Path = Path("/var/lib/cr-agent")
    parallel_pulls: int = 4
    keep_images: int = 3
    mode: str = "update"
    pull_timeout: float = 900.0  # a pull's overall deadline
    pull_stall: float = 60.0  # abort a pull that moved no bytes for this long
    self_update: bool = False  # update the agent's own container, last, through a helper container
    discover: str | None = None  # "labels" or "all": watch containers by their labels (agent/discover.py)
    heartbeat_url: str | None = field(default=None, repr=False)  # dead-man's switch (healthchecks.io style)


@dataclass(frozen=True)
class AliyunSettings:
    """Credentials, and overrides: region/edition/instance_id only for what the image host cannot say."""

    region: str | None = None  # custom domains only: ACR hosts name their region
    edition: str = "personal"  # custom domains only
    instance_id: str | None = None  # enterprise hosts: skips ListInstance discovery
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    timeout: float = 10.0
    retries: int = 3
    ca_file: str | None = None  # a private CA for the API (else $ALIBABA_CLOUD_CA_BUNDLE, else bundled CAs)


@dataclass(frozen=True)
class RegistryAuth:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class HealthSpec:
    http: str | None = None
    expect_status: int = 200
    tcp: str | None = None
    timeout: float = 5.0
    interval: float = 1.0


@dataclass(frozen=True)
class Watch:
    container: str
    image: ImageRef
    source: str  # "aliyun" or "registry"
    strategy: str = "stop-first"  # or start-first (opt-in: two instances overlap)
    health: HealthSpec | None = None
    min_uptime: float = 10.0
    health_timeout: float = 120.0
    start_stopped: bool = False
    pre_update: str | None = None
    post_update: str | None = None
    hook_timeout: float = 60.0
    mode: str = "update"  # [agent] mode unless the entry sets its own
    instance_id: str | None = None  # the enterprise instance (cri-...) of this image's host
    optional: bool = False  # a missing container is skipped quietly instead of failing the pass
    pattern: TagPattern | None = None  # follow the newest matching tag instead of one fixed tag
    origin: str = "config"  # "config" ([[watch]]) or "labels" (discovered)
    given: frozenset[str] = frozenset()  # the settings the entry or the labels set; the rest are defaults
    watch_builds: bool = False  # tell failed and stuck ACR builds of this repository
    service: str | None = None  # a Swarm service entry (then `container` holds the same name)
    docker_host: str | None = None  # the engine: unix://, tcp:// (TLS from docker_tls_dir) or ssh://
    docker_tls_dir: Path | None = None

    @property
    def kind(self) -> str:
        return "service" if self.service else "container"


@dataclass(frozen=True)
class WebhookSettings:
    listen: str
    token: str = field(repr=False)
    match: str = "any"  # any tag of a watched repo, or only the watched tag
    debounce: float = 0.5


@dataclass(frozen=True)
class MetricsSettings:
    listen: str  # /metrics and /healthz for `agent run`, with or without [webhook]


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[str, ...] = field(repr=False)
    on: tuple[str, ...] = ("updated", "rolled_back", "failed", "would_update", "recovered")
    language: str = "en"  # "zh" by default when the system locale is Chinese
    title_prefix: str = ""  # e.g. a DingTalk robot's security keyword
    repeat_after: float = 6 * 3600.0  # tell a failure that stays the same again after this long
    stuck_after: float = 30 * 60.0  # an ACR build queued or building longer than this is stuck


@dataclass(frozen=True)
class Config:
    agent: AgentSettings
    aliyun: AliyunSettings
    watches: tuple[Watch, ...]
    registry_auth: Mapping[str, RegistryAuth] = field(default_factory=dict)
    webhook: WebhookSettings | None = None
    path: Path | None = None
    notify: NotifySettings | None = None
    metrics: MetricsSettings | None = None
    build_watch: tuple[RepoKey, ...] = ()  # ACR repositories whose builds are watched

    @property
    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        out = [self.aliyun.access_key_secret, self.aliyun.security_token, self.agent.heartbeat_url]
        out += [a.password for a in self.registry_auth.values()]
        if self.webhook:
            out.append(self.webhook.token)
        if self.notify:
            out += list(self.notify.urls)
        return [s for s in out if s]


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, msg: str) -> None:
        self.items.append(f"{path}: {msg}")


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
    cfg = parse(raw, os.environ if env is None else env)
    return replace(cfg, path=path)


def parse(raw: Mapping[str, Any], env: Mapping[str, str]) -> Config:
    p = _Problems()
    known = {"agent", "aliyun", "watch", "registry_auth", "webhook", "notify", "metrics", "build_watch"}
    _unknown(p, "", raw, known)
    agent = _agent(p, _table(p, "agent", raw.get("agent", {})))
    pull_timeout, pull_stall = _pull_limits(p, raw.get("agent"))
    agent = replace(agent, pull_timeout=pull_timeout, pull_stall=pull_stall)
    watches = _watches(p, raw.get("watch", []), agent.mode, agent.discover is not None)
    needs_aliyun = any(w.source == "aliyun" for w in watches) or bool(raw.get("build_watch"))
    aliyun = _aliyun(p, _table(p, "aliyun", raw.get("aliyun", {})), env, needs_aliyun)
    _acr_hosts(p, watches, aliyun)
    auth = _registry_auth(p, _table(p, "registry_auth", raw.get("registry_auth", {})), env)
    webhook = _webhook(p, raw.get("webhook"), env)
    notify = _notify(p, raw.get("notify"), env)
    metrics = _metrics(p, raw.get("metrics"))
    from agent.config_builds import build_repos

    builds = build_repos(p, raw.get("build_watch", []), watches, notify is not None)
    if p.items:
        raise ConfigError(p.items)
    return Config(agent, aliyun, watches, auth, webhook, None, notify, metrics, builds)


def _table(p: _Problems, path: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    p.add(path, "must be a table")
    return {}


def _unknown(p: _Problems, path: str, table: Mapping[str, Any], known: set[str]) -> None:
    for key in table:
        if key not in known:
            where = f"{path}.{key}" if path else key
            p.add(where, f"unknown key (known: {', '.join(sorted(known))})")


def _get(
    p: _Problems, path: str, table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any
) -> Any:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) and kind is not bool:
        p.add(f"{path}.{key}", f"expected {_kind_name(kind)}, got a boolean")
        return default
    if not isinstance(value, kind):
        p.add(f"{path}.{key}", f"expected {_kind_name(kind)}, got {type(value).__name__} {value!r}")
        return default
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", dict: "a table", float: "a number"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


_DAY = 86400.0


def _duration(
    p: _Problems,
    path: str,
    table: Mapping[str, Any],
    key: str,
    default: float,
    low: float = 0.0,
    high: float = 30 * _DAY,
) -> float:
    """A duration within [low, high]; the default `high` keeps every timer far from overflowing."""
    value = _get(p, path, table, key, str, None)
    if value is None:
        return default
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        p.add(f"{path}.{key}", str(e))
        return default
    if not low <= seconds <= high:
        shown = value if len(value) <= 40 else value[:20] + "…" + value[-4:]
        p.add(f"{path}.{key}", f"must be between {_span(low)} and {_span(high)}, got {shown!r}")
        return default
    return seconds


def _span(seconds: float) -> str:
    for unit, size in (("d", _DAY), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds else "0s"


def _secret(
    p: _Problems, path: str, table: Mapping[str, Any], key: str, env: Mapping[str, str]
) -> str | None:
    """`key` inline, or `key_env` naming an environment variable."""
    inline = _get(p, path, table, key, str, None)
    env_name = _get(p, path, table, f"{key}_env", str, None)
    if inline and env_name:
        p.add(f"{path}.{key}", f"give {key} or {key}_env, not both")
    if env_name:
        value = env.get(env_name)
        if not value:
            p.add(f"{path}.{key}_env", f"environment variable {env_name} is not set")
        return value or None
    return inline or None


def _agent(p: _Problems, t: dict[str, Any]) -> AgentSettings:
    known = {"interval", "cron", "jitter", "state_dir", "parallel_pulls", "keep_images", "mode",
             "self_update", "discover", "heartbeat_url"}  # fmt: skip
    _unknown(p, "agent", t, known | _PULL_KEYS)
    cron = _get(p, "agent", t, "cron", str, None)
    interval: float | None = None
    if "interval" in t and cron is not None:
        p.add("agent.cron", "give interval or cron, not both")
    if cron is not None:
        from agent.schedule import parse_cron

        try:
            parse_cron(cron)
        except ValueError as e:
            p.add("agent.cron", str(e))
    else:
        interval = _duration(p, "agent", t, "interval", 300.0, low=1.0)
    jitter = _duration(p, "agent", t, "jitter", 0.0, high=_DAY)
    mode = _mode(p, "agent", t, "update")
    state_dir = _get(p, "agent", t, "state_dir", str, "/var/lib/cr-agent")
    parallel = _get(p, "agent", t, "parallel_pulls", int, 4)
    if not 1 <= parallel <= 32:
        p.add("agent.parallel_pulls", "must be between 1 and 32")
    keep = _get(p, "agent", t, "keep_images", int, 3)
    if not 0 <= keep <= 100:
        p.add("agent.keep_images", "must be between 0 and 100")
    self_update = _get(p, "agent", t, "self_update", bool, False)
    discover = _get(p, "agent", t, "discover", str, None)
    if discover not in (None, "labels", "all"):
        p.add("agent.discover", f"must be 'labels' or 'all', got {discover!r}")
        discover = None
    heartbeat = _get(p, "agent", t, "heartbeat_url", str, None)
    if heartbeat is not None and not re.match(r"^https?://[^/\s]+", heartbeat):
        p.add("agent.heartbeat_url", "expected an http:// or https:// URL, e.g. https://hc-ping.com/<uuid>")
    return AgentSettings(
        Schedule(interval, cron, jitter), Path(state_dir), parallel, keep, mode,
        self_update=self_update, discover=discover, heartbeat_url=heartbeat,
    )  # fmt: skip


def _mode(p: _Problems, path: str, t: Mapping[str, Any], default: str) -> str:
    mode: str = _get(p, path, t, "mode", str, default)
    if mode not in MODES:
        p.add(f"{path}.mode", f"must be 'update' or 'notify' (monitor only), got {mode!r}")
        return default
    return mode


_PULL_KEYS = {"pull_timeout", "pull_stall"}


def _pull_limits(p: _Problems, t: Any) -> tuple[float, float]:
    """`pull_timeout` and `pull_stall` of [agent] (1s–1d each); the stall window never exceeds the deadline."""
    if not isinstance(t, dict):
        return AgentSettings.pull_timeout, AgentSettings.pull_stall
    timeout = _duration(p, "agent", t, "pull_timeout", AgentSettings.pull_timeout, low=1.0, high=_DAY)
    stall = _duration(p, "agent", t, "pull_stall", min(AgentSettings.pull_stall, timeout), low=1.0, high=_DAY)
    if stall > timeout:
        p.add("agent.pull_stall", f"must not exceed pull_timeout ({_span(timeout)}), got {t['pull_stall']!r}")
        stall = timeout
    return timeout, stall


def _aliyun(p: _Problems, t: dict[str, Any], env: Mapping[str, str], needed: bool) -> AliyunSettings:
    known = {"region", "edition", "instance_id", "access_key_id", "access_key_secret", "security_token"}
    known |= {
        "access_key_id_env",
        "access_key_secret_env",
        "security_token_env",
        "endpoint",
        "timeout",
        "retries",
        "ca_file",
    }
    _unknown(p, "aliyun", t, known)
    region = _get(p, "aliyun", t, "region", str, None)
    if region is not None and not _REGION.match(region):
        p.add("aliyun.region", f"not a region id: {region!r} (e.g. 'cn-hangzhou')")
    edition = _get(p, "aliyun", t, "edition", str, "personal")
    if edition not in ("personal", "enterprise"):
        p.add("aliyun.edition", f"must be 'personal' or 'enterprise', got {edition!r}")
    instance_id = _get(p, "aliyun", t, "instance_id", str, None)
    _check_instance_id(p, "aliyun.instance_id", instance_id)
    ca_file = _get(p, "aliyun", t, "ca_file", str, None)
    if ca_file is not None and not os.path.isfile(ca_file):
        p.add("aliyun.ca_file", f"no such file: {ca_file!r} (a PEM bundle of CA certificates)")
    key_id = _secret(p, "aliyun", t, "access_key_id", env) or _first_env(env, ENV_KEY_ID)
    key_secret = _secret(p, "aliyun", t, "access_key_secret", env) or _first_env(env, ENV_KEY_SECRET)
    token = _secret(p, "aliyun", t, "security_token", env) or _first_env(env, ENV_STS_TOKEN)
    if needed and not (key_id and key_secret):
        p.add(
            "aliyun.access_key_id",
            "missing credentials: set access_key_id and access_key_secret (or _env), "
            "or the environment variables ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        )
    endpoint = _get(p, "aliyun", t, "endpoint", str, None)
    if endpoint is not None and not re.match(r"^(https?://)?[A-Za-z0-9.\-\[\]:]+/?$", endpoint):
        p.add("aliyun.endpoint", f"expected a host[:port] or http(s)://host[:port], got {endpoint!r}")
    timeout = _duration(p, "aliyun", t, "timeout", 10.0, low=0.1, high=600.0)
    retries = _get(p, "aliyun", t, "retries", int, 3)
    if not 0 <= retries <= 10:
        p.add("aliyun.retries", "must be between 0 and 10")
    return AliyunSettings(
        region, edition, instance_id, key_id, key_secret, token, endpoint, timeout, retries, ca_file
    )


def _check_instance_id(p: _Problems, path: str, value: str | None) -> None:
    if value is not None and not re.match(r"^cri-[a-z0-9]+$", value):
        p.add(path, f"an enterprise instance id looks like 'cri-...', got {value!r}")


def _acr_hosts(p: _Problems, watches: tuple[Watch, ...], aliyun: AliyunSettings) -> None:
    """Every ACR watch must name a host whose region, edition and instance can be found."""
    from agent.registries.acr_hosts import parse_host

    for i, w in enumerate(watches):
        if w.source != "aliyun":
            continue
        try:
            parse_host(
                w.image.host, region=aliyun.region, instance_id=w.instance_id, edition=aliyun.edition,
                default_instance_id=aliyun.instance_id,
            )  # fmt: skip
        except ValueError as e:
            p.add(f"watch[{i}].image", str(e))


def _first_env(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def _registry_auth(p: _Problems, t: dict[str, Any], env: Mapping[str, str]) -> dict[str, RegistryAuth]:
    out = {}
    for host, entry in t.items():
        path = f'registry_auth."{host}"'
        if not isinstance(entry, dict):
            p.add(path, "must be a table with username and password or password_env")
            continue
        _unknown(p, path, entry, {"username", "password", "password_env"})
        user = _get(p, path, entry, "username", str, None)
        password = _secret(p, path, entry, "password", env)
        if not user:
            p.add(f"{path}.username", "required")
        if not password and "password_env" not in entry:
            p.add(f"{path}.password", "required (or password_env)")
        if user and password:
            out[host] = RegistryAuth(user, password)
    return out


def _webhook(p: _Problems, value: Any, env: Mapping[str, str]) -> WebhookSettings | None:
    if value is None:
        return None
    t = _table(p, "webhook", value)
    _unknown(p, "webhook", t, {"listen", "token", "token_env", "match", "debounce"})
    listen = _listen(p, "webhook", t, "0.0.0.0:7023")
    token = _secret(p, "webhook", t, "token", env)
    if not token and "token_env" not in t:
        p.add("webhook.token", "required (or token_env): the secret part of the hook URL")
    elif token and len(token) < 16:
        p.add("webhook.token", "too short: use at least 16 random characters (e.g. `openssl rand -hex 16`)")
    match = _get(p, "webhook", t, "match", str, "any")
    if match not in ("any", "tag"):
        p.add("webhook.match", f"must be 'any' or 'tag', got {match!r}")
    debounce = _duration(p, "webhook", t, "debounce", 0.5, high=3600.0)
    if listen is None or not token:
        return None
    return WebhookSettings(listen, token, match, debounce)


def _listen(p: _Problems, section: str, t: dict[str, Any], example: str) -> str | None:
    listen: str | None = _get(p, section, t, "listen", str, None)
    if listen is None:
        p.add(f"{section}.listen", f'required, e.g. "{example}"')
    elif (
        not re.match(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):\d{1,5}$", listen)
        or int(listen.rsplit(":", 1)[1]) > 65535
    ):
        p.add(f"{section}.listen", f"expected host:port, got {listen!r}")
        return None
    return listen


def _metrics(p: _Problems, value: Any) -> MetricsSettings | None:
    if value is None:
        return None
    t = _table(p, "metrics", value)
    _unknown(p, "metrics", t, {"listen"})
    listen = _listen(p, "metrics", t, "127.0.0.1:9814")
    return MetricsSettings(listen) if listen else None


_EVENTS = ("updated", "rolled_back", "failed", "would_update", "recovered", "skipped", "up_to_date")


def _notify(p: _Problems, value: Any, env: Mapping[str, str]) -> NotifySettings | None:
    if value is None:
        return None
    t = _table(p, "notify", value)
    _unknown(
        p, "notify", t, {"urls", "urls_env", "on", "language", "title_prefix", "repeat_after", "stuck_after"}
    )
    urls: list[str] = []
    listed = _get(p, "notify", t, "urls", list, [])
    if not all(isinstance(u, str) for u in listed):
        p.add("notify.urls", "must be a list of strings")
        listed = []
    urls += listed
    env_name = _get(p, "notify", t, "urls_env", str, None)
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
    on = _get(p, "notify", t, "on", list, list(_EVENTS[:5]))
    for i, e in enumerate(on):
        if e not in _EVENTS:
            p.add(f"notify.on[{i}]", f"unknown event {e!r} (known: {', '.join(_EVENTS)})")
    from agent.notify_text import LANGUAGES, language_from_env

    language = _get(p, "notify", t, "language", str, language_from_env(env))
    if language not in LANGUAGES:
        p.add("notify.language", f"must be 'zh' or 'en', got {language!r}")
    prefix = _get(p, "notify", t, "title_prefix", str, "")
    repeat = _duration(p, "notify", t, "repeat_after", 6 * 3600.0, low=60.0)
    stuck = _duration(p, "notify", t, "stuck_after", 1800.0, low=60.0)
    return NotifySettings(tuple(urls), tuple(on), language, prefix, repeat, stuck)


def _watches(p: _Problems, value: Any, default_mode: str, discovering: bool = False) -> tuple[Watch, ...]:
    if not isinstance(value, list):
        p.add("watch", "must be an array of tables ([[watch]])")
        return ()
    if not value and not discovering:
        p.add("watch", "no [[watch]] entries: nothing to keep updated (or set [agent] discover)")
    out: list[Watch] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(value):
        path = f"watch[{i}]"
        if not isinstance(entry, dict):
            p.add(path, "must be a table")
            continue
        w = _watch(p, path, entry, default_mode)
        if w is None:
            continue
        if w.container in seen:
            p.add(f"{path}.container", f"{w.container!r} is already watched by watch[{seen[w.container]}]")
        seen[w.container] = i
        out.append(w)
    return tuple(out)


_WATCH_KEYS = {
    "container", "image", "source", "strategy", "health", "min_uptime", "health_timeout",
    "start_stopped", "pre_update", "post_update", "hook_timeout", "mode", "instance_id", "optional", "tag", "tag_regex", "sort",
    "watch_builds",
    "service", "docker_host", "docker_tls_dir",
}  # fmt: skip
_NOT_FOR_SERVICES = (
    "health",
    "start_stopped",
    "pre_update",
    "post_update",
)  # Swarm's HEALTHCHECK gates tasks


def _watch(p: _Problems, path: str, t: dict[str, Any], default_mode: str = "update") -> Watch | None:
    _unknown(p, path, t, _WATCH_KEYS)
    ok = True
    container = _get(p, path, t, "container", str, None)
    service = _get(p, path, t, "service", str, None)
    key = "service" if service is not None else "container"
    if container is not None and service is not None:
        p.add(f"{path}.service", "give either container or service, not both")
        ok = False
    container = container if service is None else service
    if container is None:
        p.add(f"{path}.container", "required: the name of the container (or `service`) to keep updated")
        ok = False
    elif not _CONTAINER_NAME.match(container):
        p.add(f"{path}.{key}", f"not a valid {key} name: {container!r}")
        ok = False
    for k in _NOT_FOR_SERVICES if service is not None else ():
        if k in t:
            p.add(
                f"{path}.{k}", "not for a service entry: Swarm's HEALTHCHECK and its rollback gate each task"
            )
    docker_host, tls_dir = _engine(p, path, t)
    image_text = _get(p, path, t, "image", str, None)
    image = None
    if image_text is None:
        p.add(f"{path}.image", "required, e.g. registry.cn-hangzhou.aliyuncs.com/ns/repo:latest")
    else:
        try:
            image = ImageRef.parse(image_text)
        except ValueError as e:
            p.add(f"{path}.image", str(e))
    source = _get(p, path, t, "source", str, None)
    if source is not None and source not in ("aliyun", "registry"):
        p.add(f"{path}.source", f"must be 'aliyun' or 'registry', got {source!r}")
        source = None
    if source is None:
        source = "aliyun" if image is None or image.host.endswith(".aliyuncs.com") else "registry"
    strategy = _get(p, path, t, "strategy", str, "start-first" if service else "stop-first")
    if strategy not in ("stop-first", "start-first"):
        p.add(f"{path}.strategy", f"must be 'stop-first' or 'start-first', got {strategy!r}")
    health = _health(p, f"{path}.health", t.get("health"))
    min_uptime = _duration(p, path, t, "min_uptime", 10.0, high=_DAY)
    health_timeout = _duration(p, path, t, "health_timeout", 120.0, low=1.0, high=_DAY)
    start_stopped = _get(p, path, t, "start_stopped", bool, False)
    pre = _get(p, path, t, "pre_update", str, None)
    post = _get(p, path, t, "post_update", str, None)
    hook_timeout = _duration(p, path, t, "hook_timeout", 60.0, low=1.0, high=_DAY)
    mode = _mode(p, path, t, default_mode)
    instance_id = _get(p, path, t, "instance_id", str, None)
    _check_instance_id(p, f"{path}.instance_id", instance_id)
    optional = _get(p, path, t, "optional", bool, False)
    image, pattern = _tag(p, path, t, image)
    builds = _get(p, path, t, "watch_builds", bool, False)
    if not ok or image is None or container is None:
        return None
    return Watch(
        container, image, source, strategy, health, min_uptime, health_timeout,
        start_stopped, pre, post, hook_timeout, mode, instance_id, optional, pattern, "config", frozenset(t),
        builds,
        service, docker_host, tls_dir,
    )  # fmt: skip


def _tag(
    p: _Problems, path: str, t: dict[str, Any], image: ImageRef | None
) -> tuple[ImageRef | None, TagPattern | None]:
    """`tag` (a fixed tag, or "semver:<range>"), `tag_regex` and `sort`."""
    tag = _get(p, path, t, "tag", str, None)
    regex = _get(p, path, t, "tag_regex", str, None)
    sort = _get(p, path, t, "sort", str, None)
    try:
        pattern = parse_pattern(tag, regex, sort)
    except ValueError as e:
        p.add(f"{path}.{'tag_regex' if regex is not None else 'tag'}", str(e))
        return image, None
    if pattern is None and tag is not None and image is not None:
        try:
            image = ImageRef.parse(f"{image.repository}:{tag}")
        except ValueError as e:
            p.add(f"{path}.tag", str(e))
    return image, pattern


def watch_from_table(path: str, table: dict[str, Any], default_mode: str) -> tuple[Watch | None, list[str]]:
    """One watch entry validated like [[watch]]; problems are named from `path` (a label prefix too)."""
    p = _Problems()
    w = _watch(p, path, table, default_mode)
    return (None if p.items else w), p.items


def _engine(p: _Problems, path: str, t: dict[str, Any]) -> tuple[str | None, Path | None]:
    host = _get(p, path, t, "docker_host", str, None)
    tls = _get(p, path, t, "docker_tls_dir", str, None)
    if host is not None and not host.startswith(("unix:///", "tcp://", "ssh://")):
        p.add(f"{path}.docker_host", f"must start with unix:///, tcp:// or ssh://, got {host!r}")
        host = None
    if tls is not None and (host is None or not host.startswith("tcp://")):
        p.add(f"{path}.docker_tls_dir", "only with a tcp:// docker_host")
    if tls is not None and not Path(tls).is_dir():
        p.add(f"{path}.docker_tls_dir", f"not a directory: {tls!r} (it holds ca.pem, cert.pem, key.pem)")
    return host, Path(tls) if tls is not None else None


def _health(p: _Problems, path: str, value: Any) -> HealthSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        p.add(path, 'must be a table, e.g. { http = "http://127.0.0.1:8080/healthz" }')
        return None
    _unknown(p, path, value, {"http", "expect_status", "tcp", "timeout", "interval"})
    http = _get(p, path, value, "http", str, None)
    tcp = _get(p, path, value, "tcp", str, None)
    if bool(http) == bool(tcp):
        p.add(path, "give exactly one of http or tcp")
    if http and not re.match(r"^https?://[^/\s]+", http):
        p.add(f"{path}.http", f"expected an http:// or https:// URL, got {http!r}")
    if tcp and not re.match(r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$", tcp):
        p.add(f"{path}.tcp", f"expected host:port, got {tcp!r}")
    status = _get(p, path, value, "expect_status", int, 200)
    if not 100 <= status <= 599:
        p.add(f"{path}.expect_status", "must be an HTTP status code")
    timeout = _duration(p, path, value, "timeout", 5.0, low=0.01, high=3600.0)
    interval = _duration(p, path, value, "interval", 1.0, low=0.01, high=3600.0)
    return HealthSpec(http, status, tcp, timeout, interval)


def describe(cfg: Config, redact: Callable[[str], str] = lambda s: s) -> str:
    """A short human summary for `agent check`."""
    lines = [f"config {cfg.path}: {len(cfg.watches)} watch entr{'y' if len(cfg.watches) == 1 else 'ies'}"]
    from agent.discover import describe as line

    lines += [f"  {line(w)}" for w in cfg.watches]
    if cfg.agent.discover:
        lines.append(f"  discover = {cfg.agent.discover!r}: containers opt in with labels (cr-agent.enable)")
    return redact("\n".join(lines))
