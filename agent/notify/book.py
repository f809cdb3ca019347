"""What was told already: one small table in state_dir/state.db, so a restart does not tell it again."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import NamedTuple

from loguru import logger

_SCHEMA = """CREATE TABLE IF NOT EXISTS notices (
  key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, first REAL NOT NULL, sent REAL NOT NULL)"""


class Notice(NamedTuple):
    fingerprint: str  # what was told (a failure's normalized reason, a build's state)
    first: float  # when it was first seen
    sent: float  # when it was last told


class NoticeBook:
    """Keys: `fail:<container>` for a failing entry, `build:<repo>:<id>:<kind>` for an ACR build."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(state_dir / "state.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> Notice | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, first, sent FROM notices WHERE key = ?", (key,)
            ).fetchone()
        return Notice(*row) if row else None

    def put(self, key: str, notice: Notice) -> None:
        self._write("INSERT OR REPLACE INTO notices VALUES (?, ?, ?, ?)", (key, *notice))

    def drop(self, key: str) -> None:
        self._write("DELETE FROM notices WHERE key = ?", (key,))

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        """A full state_dir must not silence the message: it is sent, and may be told again later."""
        try:
            with self._lock:
                self._db.execute(sql, args)
        except sqlite3.Error as e:
            logger.error("what was told is not remembered (state_dir: {}); it may be told again", e)

    def close(self) -> None:
        with self._lock:
            self._db.close()
