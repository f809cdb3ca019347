"""Where the ACR API's credentials come from: a static key, or the Alibaba Cloud default credential chain.

Static: [aliyun] access_key_id/secret (or their _env), else ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, with an
optional STS token. With no static key, `alibabacloud-credentials` walks its chain (environment, OIDC/RRSA,
aliyun CLI profile, credentials file, ECS RAM role, credentials URI) and refreshes temporary keys before
they expire. It is imported only then: a quiet `agent once` with a static key never loads it.
Ask `current()` per request; never keep the triple past its expiry. Secrets are `Secret`s, never logged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from agent.errors import RegistryError
from agent.secret import Secret, redact

if TYPE_CHECKING:
    from aliyunsdkcore.client import AcsClient

DMI_VENDOR = "/sys/class/dmi/id/sys_vendor"  # "Alibaba Cloud" on an ECS instance
NONE_FOR = 120.0  # seconds: when the chain found no credentials, say so again without asking it


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: Secret
    token: Secret | None
    expiry: float | None  # epoch seconds, when the provider says
    source: str  # where they came from, e.g. "ECS RAM role `my-role`"

    def same_key(self, other: Credentials | None) -> bool:
        return other is not None and (self.key_id, self.secret, self.token) == (
            other.key_id,
            other.secret,
            other.token,
        )

    def describe(self) -> str:
        """The source and lifetime, never the secret: "ECS RAM role `r`, temporary, expires 12:40 UTC"."""
        if self.token is None:
            return f"{self.source}, AccessKey {self.key_id}"
        text = f"{self.source}, temporary"
        if self.expiry is not None:
            text += ", expires " + time.strftime("%H:%M %Z", time.localtime(self.expiry))
        return text


class CredentialsProvider(Protocol):
    def current(self) -> Credentials:
        """The credentials to sign the next request with; raises RegistryError(code NO_CREDENTIALS)."""
        ...

    def refresh(self) -> Credentials:
        """After an expired-token answer: fetch anew (the same ones when nothing fresher can be had)."""
        ...


class StaticCredentials:
    def __init__(self, key_id: str, secret: str, token: str | None = None, source: str = "static") -> None:
        self._creds = Credentials(key_id, Secret(secret), Secret(token) if token else None, None, source)

    def current(self) -> Credentials:
        return self._creds

    def refresh(self) -> Credentials:
        return self._creds


class SignedClients:
    """One SDK client per key (the SDK makes its signer per client); the one before stays for requests
    in flight, older ones are closed. `on_rotate` runs when a new key replaces one."""

    def __init__(self, region: str, host: str, on_rotate: Callable[[], None], **options: Any) -> None:
        self._region, self._host, self._on_rotate, self._options = region, host, on_rotate, options
        self._lock = threading.Lock()
        self._signed: list[tuple[Credentials, AcsClient]] = []

    def client(self, creds: Credentials) -> AcsClient:
        from aliyunsdkcore.client import AcsClient

        with self._lock:
            for signed, kept in reversed(self._signed):  # the previous key too: a request that took it late
                if creds.same_key(signed):
                    return kept
            # Explicit ak/secret win over env ALIYUN_ACCESS_KEY_*; an STS token is added per request.
            client = AcsClient(creds.key_id, creds.secret.reveal(), self._region, **self._options)
            rotated = bool(self._signed)
            self._signed.append((creds, client))
            old, self._signed = self._signed[:-2], self._signed[-2:]
        for _, stale in old:
            stale.session.close()
        if rotated:
            logger.debug("ACR {}: signing with the renewed key; the cached pull token is dropped", self._host)
            self._on_rotate()
        return client

    def close(self) -> None:
        with self._lock:
            signed, self._signed = self._signed, []
        for _, client in signed:
            client.session.close()


def provider_for(settings: Any) -> CredentialsProvider:
    """A static key when config (or its _env, or the environment) gives one, else the default chain."""
    secret, token = (s.reveal() if s else None for s in (settings.access_key_secret, settings.security_token))
    if settings.access_key_id and secret:
        return StaticCredentials(
            settings.access_key_id, secret, token, "static key from agent.toml or environment"
        )
    return ChainCredentials()


def chain_may_answer(env: Any = os.environ) -> bool:
    """Whether a source of the default chain is set up here, without importing the library (label discovery
    accepts ACR containers then): a credentials URI, RRSA, a CLI profile or credentials file, or ECS."""
    if env.get("ALIBABA_CLOUD_CREDENTIALS_URI") or (
        env.get("ALIBABA_CLOUD_ROLE_ARN") and env.get("ALIBABA_CLOUD_OIDC_TOKEN_FILE")
    ):
        return True
    home = env.get("HOME") or os.path.expanduser("~")
    files = [
        env.get("ALIBABA_CLOUD_CREDENTIALS_FILE") or os.path.join(home, ".alibabacloud", "credentials.ini")
    ]
    if env.get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "").lower() != "true":
        files.append(os.path.join(home, ".aliyun", "config.json"))
    if any(os.path.isfile(f) for f in files):
        return True
    if env.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").lower() == "true":
        return False
    try:
        with open(DMI_VENDOR) as f:
            return "alibaba" in f.read().lower()
    except OSError:
        return False


class ChainCredentials:
    """The library's DefaultCredentialsProvider; once a source answered, that source is asked directly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chain: Any = None
        self._inner: Any = None  # the provider of the chain that answered (keeps the expiry)
        self._last: Credentials | None = None
        self._role: str | None = None
        self._failed: tuple[float, RegistryError] | None = None  # the chain found none: asked again later

    def current(self) -> Credentials:
        with self._lock:
            if self._failed is not None and time.monotonic() - self._failed[0] < NONE_FOR:
                raise self._failed[1]  # not the whole chain (metadata timeouts) on every request
            try:
                return self._fetch()
            except RegistryError as e:
                if e.code == "NO_CREDENTIALS":
                    self._failed = (time.monotonic(), e)
                raise

    def refresh(self) -> Credentials:
        with self._lock:
            cache = getattr(self._inner, "_credentials_cache", None)
            if cache is not None and hasattr(cache, "_cached_value"):
                cache._cached_value = None  # the answer said expired: do not trust the cache's clock
            return self._fetch()

    def _fetch(self) -> Credentials:
        try:
            if self._chain is None:
                self._chain = _default_chain()
            if self._inner is None:
                got = self._chain.get_credentials()
                self._inner = getattr(self._chain, "_DefaultCredentialsProvider__last_used_provider", None)
                if self._inner is not None:
                    got = self._inner.get_credentials()
            else:
                got = self._inner.get_credentials()
        except Exception as e:
            said = redact(str(e))[:600]
            if os.environ.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").lower() == "true":
                said += "; the ECS RAM role is off: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"
            raise RegistryError(
                "no Alibaba Cloud credentials: no key in [aliyun] or ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, and "
                f"the default credential chain found none ({said}); see docs/acr.md#credentials",
                code="NO_CREDENTIALS",
            ) from None
        key_id, secret, token = got.get_access_key_id(), got.get_access_key_secret(), got.get_security_token()
        if not key_id or not secret:
            raise RegistryError("the credential chain answered without an AccessKey", code="NO_CREDENTIALS")
        last = self._last
        if last is not None and (key_id, secret, token or None) == (
            last.key_id,
            last.secret.reveal(),
            last.token.reveal() if last.token else None,
        ):
            return last  # the same key: no new Secret, no file read for its description
        expiry = getattr(got, "get_expiration", lambda: None)()
        name = str(got.get_provider_name() or "")
        creds = Credentials(
            key_id,
            Secret(secret),
            Secret(token) if token else None,
            float(expiry) if expiry else None,
            self._source(name),
        )
        logger.info("ACR credentials{}: {}", " renewed" if last else "", creds.describe())
        self._last = creds
        return creds

    def _source(self, name: str) -> str:
        """The provider's name (e.g. "ecs_ram_role", "cli_profile/static_ak") said for people."""
        inner, env = self._inner, os.environ
        kind, _, sub = name.removeprefix("default/").partition("/")
        if kind == "ecs_ram_role":
            return f"ECS RAM role `{self._role_name()}`"
        if kind == "credential_uri":
            uri = urllib.parse.urlsplit(env.get("ALIBABA_CLOUD_CREDENTIALS_URI", ""))
            return f"credentials URI {uri.scheme}://{uri.netloc}{uri.path}"
        if kind == "cli_profile":
            path = str(getattr(inner, "_profile_file", "~/.aliyun/config.json"))
            mode = _MODES.get(sub, sub)
            return f"aliyun CLI profile `{_cli_profile_name(path)}` ({path}, mode {mode})"
        if kind == "profile":
            path, section = getattr(inner, "_profile_file", "?"), getattr(inner, "_profile_name", "default")
            return f"credentials file {path} [{section}]"
        if kind == "oidc_role_arn":
            return f"OIDC role `{env.get('ALIBABA_CLOUD_ROLE_ARN', '?')}` (RRSA)"
        if kind == "env":
            return "environment ALIBABA_CLOUD_ACCESS_KEY_ID"
        return f"credential chain ({name})"

    def _role_name(self) -> str:
        if self._role is None:
            self._role = getattr(self._inner, "_role_name", None) or os.environ.get(
                "ALIBABA_CLOUD_ECS_METADATA"
            )
        if not self._role:
            try:  # discovered by the library and not kept: ask the metadata service once
                self._role = str(self._inner._get_role_name())
            except Exception:
                self._role = "(discovered)"
        return self._role


_MODES = {
    "static_ak": "AK",
    "static_sts": "StsToken",
    "ecs_ram_role": "EcsRamRole",
    "ram_role_arn": "RamRoleArn",
    "oidc_role_arn": "OIDC",
}


def _cli_profile_name(path: str) -> str:
    name = os.environ.get("ALIBABA_CLOUD_PROFILE")
    if name:
        return name
    try:
        with open(path) as f:
            return str(json.load(f).get("current") or "default")
    except (OSError, ValueError, AttributeError):
        return "default"


def _default_chain() -> Any:
    """Import the library (and aiohttp, APScheduler with it) now, with the environment already set."""
    from alibabacloud_credentials.provider import DefaultCredentialsProvider

    # It logs to stderr with handlers of its own, past our formatting: we log what matters ourselves.
    log = logging.getLogger("credentials")
    log.handlers.clear()
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return DefaultCredentialsProvider()
