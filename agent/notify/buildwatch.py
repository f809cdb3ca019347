"""ACR build watch: tell once per failed build, and once per build queued or building too long.

The records come from the personal `GetRepoBuildList` or the enterprise `ListRepoBuildRecord`; their
fields are read case-insensitively and defensively (the personal shape is not documented).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from agent.errors import AgentError
from agent.model import RepoKey
from agent.notify.book import Notice, NoticeBook
from agent.notify.text import Item

FAILED = {"FAILED", "FAIL", "ERROR", "TIMEOUT"}
WAITING = {"PENDING", "QUEUING", "QUEUED", "WAITING", "BUILDING", "RUNNING", "PREPARING", "PUSHING"}
RECENT = 24 * 3600.0  # older records are history, not news (a first watch does not replay last year)


@dataclass(frozen=True)
class Build:
    id: str
    status: str  # upper case
    started: float | None  # epoch seconds
    tag: str | None = None


def _get(obj: Any, *names: str) -> Any:
    """obj[name] for the first of `names` present, case-insensitively; None otherwise."""
    if not isinstance(obj, dict):
        return None
    lowered = {str(k).lower(): v for k, v in obj.items()}
    return next((lowered[n.lower()] for n in names if n.lower() in lowered), None)


def _seconds(value: Any) -> float | None:
    """Epoch milliseconds (a number or a string of digits) → seconds."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return None
    return ms / 1000.0 if ms > 0 else None


def read_builds(body: Any, what: str) -> list[Build]:
    """Build records from either edition's answer; a record without an id or status is skipped, said once."""
    data = _get(body, "data")
    records = _get(data if isinstance(data, dict) else body, "builds", "BuildRecords", "buildRecords")
    if not isinstance(records, list):
        logger.warning("{}: unrecognised ACR build list (no builds or BuildRecords); nothing to check", what)
        return []
    out, bad = [], 0
    for r in records:
        build_id = _get(r, "buildId", "BuildRecordId", "buildRecordId", "id")
        status = _get(r, "buildStatus", "BuildStatus", "status")
        if build_id in (None, "") or not isinstance(status, str):
            bad += 1
            continue
        image = _get(r, "image", "Image")
        tag = _get(image, "tag", "ImageTag")
        out.append(Build(str(build_id), status.upper(), _seconds(_get(r, "startTime", "StartTime")),
                         str(tag) if tag else None))  # fmt: skip
    if bad:
        logger.warning("{}: {} unrecognised ACR build record(s) (no id or status) ignored", what, bad)
    return out


class BuildWatch:
    def __init__(self, book: NoticeBook, stuck_after: float, clock: Callable[[], float] = time.time) -> None:
        self.book, self.stuck_after, self.clock = book, stuck_after, clock

    def news(self, repository: str, builds: Iterable[Build], link: str | None) -> list[Item]:
        """Items never told before for these records (remembered in state_dir)."""
        now, out = self.clock(), []
        for b in builds:
            if b.started is not None and now - b.started > RECENT:
                continue
            age = now - b.started if b.started is not None else 0.0
            if b.status in FAILED:
                kind = "build_failed"
            elif b.status in WAITING and b.started is not None and age >= self.stuck_after:
                kind = "build_stuck"
            else:
                continue
            key = f"build:{repository}:{b.id}:{kind}"
            if self.book.get(key) is not None:
                continue
            self.book.put(key, Notice(b.status, b.started or now, now))
            out.append(Item(kind, repository, f"{repository}:{b.tag}" if b.tag else "", build_id=b.id,
                            build_state=b.status, build_minutes=int(age // 60), link=link))  # fmt: skip
        return out


class BuildSource:
    """One build-list request per watched repository; what is news, as notification items."""

    def __init__(
        self, lister: Callable[[RepoKey], tuple[Any, str | None]], repos: Iterable[RepoKey], watch: BuildWatch
    ) -> None:
        self.lister, self.repos, self.watch = lister, list(repos), watch  # lister: (answer, console link)

    def __call__(self) -> list[Item]:
        out = []
        for repo in self.repos:
            try:
                body, link = self.lister(repo)
            except AgentError as e:
                logger.warning("{}: cannot list ACR builds: {}", repo, e)
                continue
            out += self.watch.news(repo.path, read_builds(body, repo.path), link)
        return out
