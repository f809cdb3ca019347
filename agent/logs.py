"""loguru set-up in one place: secret redaction, decision fields, flat JSON lines for log shippers."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger

from agent.secret import contains_secret, redact

# Every decision line carries these fields (null when not known); docs/operations.md lists the events.
FIELDS = ("event", "container", "image", "status", "from_digest", "to_digest")


def decision(
    level: str,
    event: str,
    message: str,
    *args: Any,
    container: str,
    image: str | None,
    status: str | None = None,
    from_digest: str | None = None,
    to_digest: str | None = None,
    **extra: Any,
) -> None:
    """Log one decision about one container, with its fields (see FIELDS)."""
    fields = dict(zip(FIELDS, (event, container, image, status, from_digest, to_digest), strict=True))
    logger.bind(**fields, **extra).opt(depth=1).log(level, message, *args)


@contextmanager
def about(event: str, **fields: str | None) -> Iterator[None]:
    """Every line logged inside the block (by this thread) carries these decision fields."""
    with logger.contextualize(**(dict.fromkeys(FIELDS) | fields | {"event": event})):
        yield


def _patch(record: Any) -> None:
    record["message"] = redact(record["message"])
    for k, v in record["extra"].items():
        if isinstance(v, str):
            record["extra"][k] = redact(v)
    if record["exception"] is not None:
        etype, value, tb = record["exception"]
        if value is not None and contains_secret(str(value)):
            try:
                clean = type(value)(redact(str(value)))
            except Exception:
                clean = RuntimeError(redact(str(value)))
            record["exception"] = record["exception"]._replace(type=type(clean), value=clean)


def as_json(record: Any) -> str:
    """One flat JSON object: time, level, message, then the bound fields at the top level."""
    out: dict[str, Any] = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
    }
    for k, v in record["extra"].items():
        out.setdefault(k, v if isinstance(v, str | int | float | bool | None) else str(v))
    if record["exception"] is not None:
        etype, value, tb = record["exception"]
        out["exception"] = redact("".join(traceback.format_exception(etype, value, tb)))
    return json.dumps(out, ensure_ascii=False)


def _json_sink(message: Any) -> None:
    sys.stderr.write(as_json(message.record) + "\n")


_AS_JSON = False  # how setup() formats lines, for last_words()


def last_words(level: str, message: str) -> None:
    """One line straight to fd 2, in the configured format, without loguru: for a signal handler about to
    exit, which must not wait for a sink lock the interrupted code may hold (loguru's locks are not
    reentrant, so logging there can hang for ever)."""
    now = datetime.datetime.now().astimezone()
    if _AS_JSON:
        line = json.dumps({"time": now.isoformat(timespec="milliseconds"), "level": level, "message": redact(message)},
                           ensure_ascii=False)  # fmt: skip
    else:
        line = f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d} | {level: <7} | {redact(message)}"
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())


def setup(level: str = "INFO", json: bool = False) -> None:
    global _AS_JSON
    _AS_JSON = json
    logger.remove()
    logger.configure(patcher=_patch, extra={})
    if json:
        logger.add(_json_sink, level=level.upper(), format="{message}", backtrace=False, diagnose=False)
        return
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}"
    logger.add(_stderr, level=level.upper(), format=fmt, filter=_for_people, backtrace=False, diagnose=False)


def _stderr(message: str) -> None:
    """Write to the stderr of the moment, not the one at setup (a replaced stream may be closed by now)."""
    sys.stderr.write(message)


def _for_people(record: Any) -> bool:
    """pass.result lines are for log shippers; people read the same in the lines before them."""
    return bool(record["extra"].get("event") != "pass.result")
