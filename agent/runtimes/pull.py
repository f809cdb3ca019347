"""The engine's pull progress stream: reading it, bytes and layers done, a deadline, a no-progress watchdog."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import requests
from docker.utils import parse_repository_tag

from agent.errors import RuntimeFault

# Statuses after which a layer's bytes are all there (its `total` may not be repeated).
_FETCHED = {"Verifying Checksum", "Download complete", "Extracting", "Pull complete", "Already exists"}
_DONE = {"Pull complete", "Already exists"}


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@dataclass
class PullProgress:
    """What the progress messages of one pull said so far, per layer."""

    fetched: dict[str, int] = field(default_factory=dict)  # layer id → bytes downloaded
    sizes: dict[str, int] = field(default_factory=dict)  # layer id → size, once the engine said it
    states: dict[str, tuple[str, object]] = field(default_factory=dict)  # layer id → (status, current)

    def feed(self, msg: dict[str, Any]) -> bool:
        """Take one message; True when it moved the pull on (a layer's status or byte count changed)."""
        layer, status = msg.get("id"), str(msg.get("status") or "")
        if not layer or status.startswith("Pulling from"):  # not a layer; nor "Digest: …", "Status: …"
            return False
        layer = str(layer)
        detail = msg.get("progressDetail") or {}
        if status == "Downloading":
            self.fetched[layer] = int(detail.get("current") or 0)
            if detail.get("total"):
                self.sizes[layer] = int(detail["total"])
        elif status in _FETCHED and layer in self.sizes:
            self.fetched[layer] = self.sizes[layer]
        now = (status, detail.get("current"))
        moved = self.states.get(layer) != now
        self.states[layer] = now
        return moved

    def counts(self) -> tuple[int, int, int, int]:
        """(bytes fetched, bytes known in all, layers done, layers seen)."""
        done = sum(1 for status, _ in self.states.values() if status in _DONE)
        return sum(self.fetched.values()), sum(self.sizes.values()), done, len(self.states)

    def summary(self) -> str:
        got, total, done, layers = self.counts()
        size = f"{_mb(got)} of {_mb(total)}" if total else _mb(got)
        return f"{size}, {done} of {layers} layers done"


class PullAborted(Exception):
    """The pull ran past its deadline or made no progress for too long."""


class PullWatch:
    """Deadline and no-progress watchdog over one pull's messages; says when to log progress."""

    def __init__(
        self,
        timeout: float,
        stall: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        log_every: float = 5.0,
    ) -> None:
        self.timeout, self.stall, self.clock, self.log_every = timeout, stall, clock, log_every
        self.progress = PullProgress()
        self.started = self.last_progress = self.last_log = clock()
        self.logged = ""

    def feed(self, msg: dict[str, Any]) -> None:
        """Take one message; raise PullAborted when the pull is over its deadline or stalled."""
        if self.progress.feed(msg):
            self.last_progress = self.clock()
        self.check()

    def check(self) -> None:
        now = self.clock()
        if now - self.started >= self.timeout:
            raise PullAborted(f"not done within pull_timeout {self.timeout:g}s ({self.progress.summary()})")
        if now - self.last_progress >= self.stall:
            raise PullAborted(self.stalled())

    def stalled(self) -> str:
        return f"no progress for pull_stall {self.stall:g}s ({self.progress.summary()}); aborted"

    def due_report(self) -> str | None:
        """The progress line to log now, at most every `log_every` seconds and only when it changed."""
        now = self.clock()
        if now - self.last_log < self.log_every:
            return None
        line = self.progress.summary()
        if line == self.logged:
            return None
        self.last_log, self.logged = now, line
        return line


def start_pull(
    api: docker.APIClient, reference: str, auth: tuple[str, str] | None, stall: float
) -> requests.Response:
    """POST /images/create as docker-py's pull does, but with a read timeout of `stall` seconds."""
    repository, tag = parse_repository_tag(reference)
    if auth:
        header = docker.auth.encode_header({"username": auth[0], "password": auth[1]})
    else:  # the credentials in the Docker client config, as `docker pull` would use
        registry, _ = docker.auth.resolve_repository_name(repository)
        header = docker.auth.get_config_header(api, registry)
    response: requests.Response = api.post(
        f"{api.base_url}/v{api.api_version}/images/create",
        params={"fromImage": repository, "tag": tag or "latest"},
        headers={"X-Registry-Auth": header} if header else {},
        stream=True,
        timeout=(stall, stall),
    )
    if response.status_code >= 400:
        with contextlib.closing(response):
            raise RuntimeFault(f"pull {reference}: {_answer(response)}")
    return response


def _answer(response: requests.Response) -> str:
    try:
        return str(response.json().get("message") or response.text).strip()
    except ValueError:
        return f"HTTP {response.status_code} {response.text[:200]}".strip()


def messages(response: requests.Response, watch: PullWatch) -> Iterator[dict[str, Any]]:
    """The JSON messages of a progress stream, fed to `watch` (which raises PullAborted)."""
    buffer = b""
    try:
        for chunk in response.iter_content(chunk_size=None):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    msg = json.loads(line)
                    watch.feed(msg)
                    yield msg
            watch.check()
    except requests.ConnectionError as e:  # the read timed out: nothing came for pull_stall seconds
        if "timed out" in str(e).lower():
            watch.check()
            raise PullAborted(watch.stalled()) from e
        raise
