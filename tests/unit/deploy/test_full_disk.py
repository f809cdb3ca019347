"""Issue 20.3: a state_dir that cannot be written mid-replacement, or is nearly full before one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.deploy import space
from agent.errors import StateError
from agent.model import Status
from agent.state import State
from tests.unit.deploy.test_deploy import deployer, only_web, run, setup


class FullAt(State):
    """A state.db whose disk fills when the replacement reaches `step`: every write fails from then on."""

    def __init__(self, state_dir: Path, step: str) -> None:
        super().__init__(state_dir)
        self.step, self.full = step, False

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        self.full = self.full or self.step in args
        if self.full and not sql.lstrip().upper().startswith("SELECT"):
            raise StateError(f"{self.path}: database or disk is full")
        return super()._exec(sql, args)


def test_a_journal_write_that_fails_at_the_commit_restores_the_old_container_and_says_so(
    tmp_path: Path,
) -> None:
    rt, _, _, job = setup(tmp_path)
    state = FullAt(tmp_path / "full", "healthy")
    r = run(deployer(rt, state, tmp_path), job)
    assert r.status is Status.FAILED
    assert (r.error or "").startswith("state_dir is full: ") and "the old container was restored" in (
        r.error or ""
    )
    assert only_web(rt) == ("old", True)


def test_under_one_mib_free_no_replacement_starts(tmp_path: Path, monkeypatch: Any) -> None:
    rt, state, dep, job = setup(tmp_path)
    monkeypatch.setattr(space, "MIN_FREE", 1 << 62)  # more than any disk has
    r = run(dep, job)
    assert (
        r.status is Status.SKIPPED and "under 1 MiB" in (r.error or "") and str(state.dir) in (r.error or "")
    )
    assert only_web(rt) == ("old", True) and rt.calls["rename"] == 0
