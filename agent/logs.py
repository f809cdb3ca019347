"""loguru set-up in one place, with secret redaction."""

from __future__ import annotations

import sys
from typing import Any

from loguru import logger

_secrets: list[str] = []


def add_secrets(values: list[str]) -> None:
    """Register values that must never reach a log line or a report."""
    for v in values:
        if v and len(v) >= 4 and v not in _secrets:
            _secrets.append(v)
    _secrets.sort(key=len, reverse=True)


def redact(text: str) -> str:
    for s in _secrets:
        if s in text:
            text = text.replace(s, "***")
    return text


def _patch(record: Any) -> None:
    record["message"] = redact(record["message"])
    if record["exception"] is not None:
        etype, value, tb = record["exception"]
        if value is not None and any(s in str(value) for s in _secrets):
            try:
                clean = type(value)(redact(str(value)))
            except Exception:
                clean = RuntimeError(redact(str(value)))
            record["exception"] = record["exception"]._replace(type=type(clean), value=clean)


def setup(level: str = "INFO", json: bool = False) -> None:
    logger.remove()
    logger.configure(patcher=_patch)
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}"
    logger.add(sys.stderr, level=level.upper(), format=fmt, serialize=json, backtrace=False, diagnose=False)
