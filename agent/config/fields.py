"""Reading one value of the TOML tree: its type, range or choices; every problem collected with its key path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from agent.config.schema import MODES
from agent.durations import parse_duration

E = TypeVar("E", bound=Enum)


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, msg: str) -> None:
        self.items.append(f"{path}: {msg}")


def table_of(p: Problems, path: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    p.add(path, "must be a table")
    return {}


def unknown(p: Problems, path: str, table: Mapping[str, Any], known: set[str]) -> None:
    for key in table:
        if key not in known:
            where = f"{path}.{key}" if path else key
            p.add(where, f"unknown key (known: {', '.join(sorted(known))})")


def typed(
    p: Problems, path: str, table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any
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


DAY = 86400.0


def duration(
    p: Problems,
    path: str,
    table: Mapping[str, Any],
    key: str,
    default: float,
    low: float = 0.0,
    high: float = 30 * DAY,
) -> float:
    """A duration within [low, high]; the default `high` keeps every timer far from overflowing."""
    value = typed(p, path, table, key, str, None)
    if value is None:
        return default
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        p.add(f"{path}.{key}", str(e))
        return default
    if not low <= seconds <= high:
        shown = value if len(value) <= 40 else value[:20] + "…" + value[-4:]
        p.add(f"{path}.{key}", f"must be between {span(low)} and {span(high)}, got {shown!r}")
        return default
    return seconds


def span(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds else "0s"


def inline_or_env(
    p: Problems, path: str, table: Mapping[str, Any], key: str, env: Mapping[str, str]
) -> str | None:
    """`key` inline, or `key_env` naming an environment variable."""
    inline = typed(p, path, table, key, str, None)
    env_name = typed(p, path, table, f"{key}_env", str, None)
    if inline and env_name:
        p.add(f"{path}.{key}", f"give {key} or {key}_env, not both")
    if env_name:
        value = env.get(env_name)
        if not value:
            p.add(f"{path}.{key}_env", f"environment variable {env_name} is not set")
        return value or None
    return inline or None


def choice(p: Problems, path: str, t: Mapping[str, Any], key: str, kind: type[E]) -> E | None:
    """One of an enum's values; None when not given or not allowed (the problem names the allowed ones)."""
    text = typed(p, path, t, key, str, None)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        allowed = " or ".join(repr(m.value) for m in kind)
        p.add(f"{path}.{key}", f"must be {allowed}, got {text!r}")
        return None


def mode_of(p: Problems, path: str, t: Mapping[str, Any], default: str) -> str:
    mode: str = typed(p, path, t, "mode", str, default)
    if mode not in MODES:
        p.add(f"{path}.mode", f"must be 'update' or 'notify' (monitor only), got {mode!r}")
        return default
    return mode


def check_instance_id(p: Problems, path: str, value: str | None) -> None:
    if value is not None and not re.match(r"^cri-[a-z0-9]+$", value):
        p.add(path, f"an enterprise instance id looks like 'cri-...', got {value!r}")


def first_env(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def listen_addr(p: Problems, section: str, t: dict[str, Any], example: str) -> str | None:
    listen: str | None = typed(p, section, t, "listen", str, None)
    if listen is None:
        p.add(f"{section}.listen", f'required, e.g. "{example}"')
    elif (
        not re.match(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):\d{1,5}$", listen)
        or int(listen.rsplit(":", 1)[1]) > 65535
    ):
        p.add(f"{section}.listen", f"expected host:port, got {listen!r}")
        return None
    return listen
