"""Who may read what the listeners serve: `[metrics]` (with its token) and `trusted_proxies`."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from agent.config.fields import Problems, inline_or_env, listen_addr, table_of, typed, unknown
from agent.config.schema import Config, MetricsSettings
from agent.secret import Secret

GOOD_TOKEN = 32
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'  (or: openssl rand -hex 32)"


def trusted_proxies(p: Problems, path: str, t: Mapping[str, Any]) -> tuple[str, ...]:
    """Addresses or networks whose `X-Forwarded-For` names the client (a reverse proxy in front)."""
    values = typed(p, path, t, "trusted_proxies", list, [])
    out = []
    for i, v in enumerate(values):
        try:
            out.append(str(ipaddress.ip_network(str(v).strip(), strict=False)))
        except ValueError:
            p.add(f"{path}.trusted_proxies[{i}]", f"not an IP address or network: {v!r}")
    return tuple(out)


def metrics_of(p: Problems, value: Any, env: Mapping[str, str]) -> MetricsSettings | None:
    if value is None:
        return None
    t = table_of(p, "metrics", value)
    unknown(p, "metrics", t, {"listen", "token", "token_env", "trusted_proxies"})
    listen = listen_addr(p, "metrics", t, "127.0.0.1:9814")
    token = inline_or_env(p, "metrics", t, "token", env)
    if token and len(token) < 16:
        p.add("metrics.token", f"too short: use at least {GOOD_TOKEN} random characters, e.g. {MAKE_TOKEN}")
    proxies = trusted_proxies(p, "metrics", t)
    if not listen:
        return None
    return MetricsSettings(listen, Secret(token) if token else None, proxies)


def weak_tokens(cfg: Config) -> list[str]:
    """Tokens shorter than GOOD_TOKEN characters: `agent check` refuses them, `agent run` warns."""
    out = []
    for key, token in (
        ("webhook.token", cfg.webhook and cfg.webhook.token),
        ("metrics.token", cfg.metrics and cfg.metrics.token),
    ):
        if token and len(token.reveal()) < GOOD_TOKEN:
            out.append(
                f"{key}: {len(token.reveal())} characters is guessable; use at least {GOOD_TOKEN} random "
                f"characters, e.g. {MAKE_TOKEN}"
            )
    return out
