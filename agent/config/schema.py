"""The validated configuration: frozen dataclasses, each default written once, here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from agent.choices import Edition, Match, Source, Strategy
from agent.config.patterns import TagPattern
from agent.model import ImageRef, RepoKey
from agent.secret import Secret


def _coerce(obj: object, **kinds: Callable[[Any], object]) -> None:
    """Plain strings given for typed fields (by code, not config) become their type: a Secret, a choice."""
    for name, kind in kinds.items():
        value = getattr(obj, name)
        if isinstance(value, str) and not isinstance(value, Secret | Enum):
            object.__setattr__(obj, name, kind(value))


MODES = ("update", "notify")  # notify: monitor only, never pull or replace
EVENTS = ("updated", "rolled_back", "failed", "would_update", "recovered", "skipped", "up_to_date")


DEFAULT_INTERVAL = 300.0  # seconds between passes, without [agent] interval or cron


@dataclass(frozen=True)
class Schedule:
    interval: float | None = DEFAULT_INTERVAL
    cron: str | None = None
    jitter: float = 0.0


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
    heartbeat_url: Secret | None = None  # dead-man's switch (healthchecks.io style); its path is a token

    def __post_init__(self) -> None:
        _coerce(self, heartbeat_url=Secret)


@dataclass(frozen=True)
class AliyunSettings:
    """Credentials, and overrides: region/edition/instance_id only for what the image host cannot say."""

    region: str | None = None  # custom domains only: ACR hosts name their region
    edition: Edition = Edition.PERSONAL  # custom domains only
    instance_id: str | None = None  # enterprise hosts: skips ListInstance discovery
    access_key_id: str | None = None
    access_key_secret: Secret | None = None
    security_token: Secret | None = None
    endpoint: str | None = None
    timeout: float = 10.0
    retries: int = 3
    ca_file: str | None = None  # a private CA for the API (else $ALIBABA_CLOUD_CA_BUNDLE, else bundled CAs)
    api_network: str = "auto"  # "auto": the VPC endpoint for -vpc registry hosts; "public" or "vpc"

    def __post_init__(self) -> None:
        _coerce(self, edition=Edition, access_key_secret=Secret, security_token=Secret)


@dataclass(frozen=True)
class RegistryAuth:
    username: str
    password: Secret

    def __post_init__(self) -> None:
        _coerce(self, password=Secret)


@dataclass(frozen=True)
class HealthSpec:
    http: str | None = None
    expect_status: int = 200
    tcp: str | None = None
    timeout: float = 5.0
    interval: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Watch:
    container: str
    image: ImageRef
    source: Source
    strategy: Strategy = Strategy.STOP_FIRST  # a service entry defaults to start-first (Swarm's own)
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
    region: str | None = None  # a custom domain's ACR region (ACR hosts name their own)
    signatures: bool = True  # false: deploy without a signature even when [signatures] has keys
    public_keys: tuple[str, ...] | None = None  # this entry's trusted keys instead of [signatures]
    signature_identity: str = "repository"  # or "any": a signature for another repository counts too

    def __post_init__(self) -> None:
        _coerce(self, source=Source, strategy=Strategy)

    @property
    def kind(self) -> str:
        return "service" if self.service else "container"


@dataclass(frozen=True)
class SignatureSettings:
    public_keys: tuple[str, ...] = ()  # PEM cosign public keys; any one suffices (docs/signatures.md)


@dataclass(frozen=True)
class WebhookSettings:
    listen: str
    token: Secret
    match: Match = Match.ANY
    debounce: float = 0.5

    def __post_init__(self) -> None:
        _coerce(self, token=Secret, match=Match)


@dataclass(frozen=True)
class MetricsSettings:
    listen: str  # /metrics and /healthz for `agent run`, with or without [webhook]


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[Secret, ...]  # apprise URLs carry tokens
    on: tuple[str, ...] = EVENTS[:5]
    language: str = "en"  # "zh" by default when the system locale is Chinese
    title_prefix: str = ""  # e.g. a DingTalk robot's security keyword
    repeat_after: float = 6 * 3600.0  # tell a failure that stays the same again after this long
    stuck_after: float = 30 * 60.0  # an ACR build queued or building longer than this is stuck

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(u if isinstance(u, Secret) else Secret(u) for u in self.urls))


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
    signatures: SignatureSettings = field(default_factory=SignatureSettings)

    warnings: tuple[str, ...] = ()  # env values stripped while loading (config/envvalues.py)

    def trusted_keys(self, w: Watch) -> tuple[str, ...]:
        """The keys a new digest of `w` must be signed by; empty: no signature needed."""
        if not w.signatures:
            return ()
        return w.public_keys if w.public_keys is not None else self.signatures.public_keys
