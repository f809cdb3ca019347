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
    return str(explanation or exc).strip() + _fix(exc)


def _fix(exc: BaseException) -> str:
    """What to do when the engine cannot be reached at all: said in the error itself."""
    text = repr(exc)
    if "PermissionError" in text or "Permission denied" in text:
        return (
            "; permission denied on the Docker socket: run the agent as root, or as a user in the "
            "`docker` group"
        )
    if any(w in text for w in ("FileNotFoundError", "ConnectionRefusedError", "Connection refused")):
        return (
            "; Docker is not running, or its socket is elsewhere: start it (systemctl start docker) "
            "or set DOCKER_HOST (e.g. unix:///run/user/1000/docker.sock)"
        )
    return ""


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
