"""Secrets: one `Secret` type that never shows its value, and one `redact()` for every output channel."""

from __future__ import annotations

import hashlib
import hmac
import threading

MASK = "***"
_lock = threading.Lock()
_values: list[str] = []  # longest first, so a secret containing another is masked whole


def register(*values: str | None) -> None:
    """Mask these values wherever redact() runs; values under 4 characters would mask too much."""
    with _lock:
        for v in values:
            if v and len(v) >= 4 and v not in _values:
                _values.append(v)
        _values.sort(key=len, reverse=True)


def reset() -> None:
    """Forget every registered value (tests start clean)."""
    with _lock:
        _values.clear()


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ***: logs, reports, notices, state, hooks, replies."""
    for s in _values:
        if s in text:
            text = text.replace(s, MASK)
    return text


def contains_secret(text: str) -> bool:
    return any(s in text for s in _values)


class Secret:
    """A secret config value. str, repr, format and == never show it; reveal() is for the one user."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a string, not {type(value).__name__}")
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value.encode()).digest())
