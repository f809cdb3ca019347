"""state_dir and state.db: private modes, and clear errors (never tracebacks) when they cannot be used."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import commands as cli
from agent.errors import StateError
from agent.state import State


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_is_0700_and_state_db_0600(tmp_path: Path) -> None:
    os.umask(0o022)
    state = State(tmp_path / "state")
    state.journal_write("web", "created", {"x": 1})
    assert mode(tmp_path / "state") == 0o700
    assert {p.name: mode(p) for p in (tmp_path / "state").iterdir()} == {
        "state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600,
    }  # fmt: skip


def test_a_corrupt_state_db_is_moved_aside_and_a_new_one_started(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not an sqlite database, it is garbage " * 100)
    state = State(tmp_path)
    assert state.moved_aside is not None and state.moved_aside.read_bytes().startswith(b"this is not")
    assert state.journal() == []
    state.pin("web", "sha256:" + "a" * 64)
    assert State(tmp_path).pinned("web") == "sha256:" + "a" * 64


def test_a_full_disk_is_a_state_error_naming_the_file(tmp_path: Path) -> None:
    state = State(tmp_path)
    state._exec("PRAGMA max_page_count = 1")  # what sqlite says on a full disk: SQLITE_FULL
    with pytest.raises(StateError, match="state.db.*full"):
        for i in range(200):
            state.journal_write(f"c{i}", "created", {"pad": "x" * 4000})


@contextlib.contextmanager
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody, not even root, may write to: a read-only tmpfs."""
    where = tmp_path / "ro"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(where)]).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_read_only_state_dir_gives_a_clear_error_exit_1_and_a_json_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with read_only_dir(tmp_path) as ro:
        cfg = tmp_path / "agent.toml"
        cfg.write_text(
            f'[agent]\nstate_dir = "{ro}/state"\n[[watch]]\ncontainer = "web"\n'
            'image = "127.0.0.1:5000/ns/web:latest"\n'
        )
        code = cli.main(["once", "-c", str(cfg), "--json"])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_FAILED
    report = json.loads(out)
    assert report["ok"] is False and report["results"] == []
    assert "Read-only file system" in report["error"] and f"{ro}/state" in report["error"]
    assert "unexpected error" not in err and "Traceback" not in err
