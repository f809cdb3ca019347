"""Docker SDK and transport errors as RuntimeFault: the one place the runtimes turn them into ours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import requests
from docker.errors import DockerException, NotFound

from agent.errors import RuntimeFault

T = TypeVar("T")


def _why(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


@contextmanager
def fault(action: str, secret: str | None = None) -> Iterator[None]:
    """Turn SDK and transport errors into RuntimeFault naming `action`, never `secret`."""
    try:
        yield
    except (DockerException, requests.RequestException) as exc:
        message = f"{action}: {_why(exc)}"
        if secret:
            message = message.replace(secret, "***")
        raise RuntimeFault(message) from exc


def unless_missing(action: str, call: Callable[[], T]) -> T | None:
    """`call()`, or None when the engine answers 404; any other failure is a RuntimeFault naming `action`."""
    with fault(action):
        try:
            return call()
        except NotFound:
            return None
