"""Unit-test fixtures shared by every file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.state import State


@pytest.fixture(autouse=True)
def close_states(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every State a test opened: Python 3.13 warns about unclosed sqlite connections."""
    opened: list[State] = []
    init = State.__init__

    def tracked(self: State, state_dir: Path) -> None:
        init(self, state_dir)
        opened.append(self)

    monkeypatch.setattr(State, "__init__", tracked)
    yield
    for state in opened:
        state.close()
