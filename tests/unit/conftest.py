"""Unit-test fixtures shared by every file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import secret
from agent.notify.book import NoticeBook
from agent.state import State
from tests.support.receiver import BlackHole, Receiver


@pytest.fixture(autouse=True)
def close_states(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every State and NoticeBook a test opened: Python 3.13 warns about unclosed sqlite connections."""
    opened: list[Any] = []
    for cls in (State, NoticeBook):
        _track(monkeypatch, cls, opened)
    yield
    for db in opened:
        db.close()


def _track(monkeypatch: pytest.MonkeyPatch, cls: Any, opened: list[Any]) -> None:
    init = cls.__init__

    def tracked(self: Any, state_dir: Path) -> None:
        init(self, state_dir)
        opened.append(self)

    monkeypatch.setattr(cls, "__init__", tracked)


@pytest.fixture(autouse=True)
def clean_redaction() -> Iterator[None]:
    """Each test starts with no registered secret: one test's values never mask another's output."""
    secret.reset()
    yield
    secret.reset()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    """A real HTTP receiver on loopback that records every request."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hole() -> Iterator[BlackHole]:
    """A listening socket that never answers."""
    h = BlackHole()
    yield h
    h.close()
