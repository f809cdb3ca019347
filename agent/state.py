"""On-disk state under state_dir: the journal (replacements, service updates), history, quarantine, pins.

One sqlite3 file, 0600 in a 0700 directory. Each write is its own transaction, committed before the
step it announces. A state.db that is not a database any more is moved aside and a new one started.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from agent.errors import StateError
from agent.runlock import state_dir_fix
from agent.secret import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
  container TEXT PRIMARY KEY, step TEXT NOT NULL, data TEXT NOT NULL, updated REAL NOT NULL,
  kind TEXT NOT NULL DEFAULT 'container');
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, container TEXT NOT NULL, started REAL NOT NULL,
  finished REAL NOT NULL, from_digest TEXT, to_digest TEXT, outcome TEXT NOT NULL, error TEXT,
  image_id TEXT, old_image_id TEXT);
CREATE INDEX IF NOT EXISTS history_container ON history (container, id);
CREATE TABLE IF NOT EXISTS quarantine (
  container TEXT NOT NULL, digest TEXT NOT NULL, reason TEXT, since REAL NOT NULL,
  PRIMARY KEY (container, digest));
CREATE TABLE IF NOT EXISTS pins (container TEXT PRIMARY KEY, digest TEXT NOT NULL, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS checks (
  container TEXT PRIMARY KEY, checked REAL NOT NULL, running_digest TEXT, latest_digest TEXT,
  status TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS signatures (
  repo TEXT NOT NULL, digest TEXT NOT NULL, key TEXT NOT NULL, identity TEXT NOT NULL, verified REAL NOT NULL,
  PRIMARY KEY (repo, digest, key, identity));
CREATE TABLE IF NOT EXISTS seen (container TEXT PRIMARY KEY, time REAL NOT NULL, data TEXT NOT NULL);
"""
# Service updates had their own table before the typed journal: a row there is an update in flight,
# step "requested" (agent/deploy/journal.py ServiceStep). state.py cannot import it (deploy imports state).
_MIGRATE = """
INSERT OR IGNORE INTO journal (container, step, data, updated, kind)
  SELECT name, 'requested', data, updated, 'service' FROM service_journal;
DROP TABLE service_journal;
"""


@dataclass(frozen=True)
class JournalEntry:
    container: str
    step: str
    data: dict[str, Any]
    updated: float
    kind: str = "container"  # or "service": a Swarm service update


@dataclass(frozen=True)
class Deployment:
    container: str
    started: float
    finished: float
    from_digest: str | None
    to_digest: str | None
    outcome: str
    error: str | None
    image_id: str | None
    old_image_id: str | None
    logs: str | None = None  # the new container's last log lines, kept when it failed its gate

    def as_json(self) -> dict[str, Any]:
        out = {
            "started": self.started,
            "finished": self.finished,
            "duration": round(self.finished - self.started, 3),
            "from_digest": self.from_digest,
            "to_digest": self.to_digest,
            "outcome": self.outcome,
            "error": self.error,
        }
        return out if self.logs is None else {**out, "logs": self.logs}


_CORRUPT = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
# Python 3.10 has no sqlite_errorname: sqlite's own fixed messages for those two codes.
_CORRUPT_MESSAGES = ("file is not a database", "database disk image is malformed")


def _corrupt(e: sqlite3.Error) -> bool:
    name = getattr(e, "sqlite_errorname", None)
    return name in _CORRUPT if name else str(e) in _CORRUPT_MESSAGES


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a state.db of an older agent up to date, in one transaction; a second opener finds it done."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if "kind" not in {row[1] for row in db.execute("PRAGMA table_info(journal)")}:
            db.execute("ALTER TABLE journal ADD COLUMN kind TEXT NOT NULL DEFAULT 'container'")
        if "logs" not in {row[1] for row in db.execute("PRAGMA table_info(history)")}:
            db.execute("ALTER TABLE history ADD COLUMN logs TEXT")
        if db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'service_journal'"
        ).fetchall():
            for sql in _MIGRATE.split(";")[:-1]:
                db.execute(sql)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _why(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


class State:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / "state.db"
        self.moved_aside: Path | None = None  # where a corrupt state.db went; its journal is lost
        self._lock = threading.Lock()
        try:
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(state_dir, 0o700)
            self._db = self._open()
        except sqlite3.Error as e:
            if not _corrupt(e):
                raise StateError(f"cannot open {self.path}: {e}") from e
            self._move_aside()
            self._db = self._guarded(self._open)
        except OSError as e:
            raise StateError(f"cannot use state_dir {state_dir}: {_why(e)}{state_dir_fix(e)}") from e

    def _open(self) -> sqlite3.Connection:
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # sqlite gives its -wal the same mode
        os.chmod(self.path, 0o600)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            _migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self) -> None:
        aside = self.path.with_name(f"state.db.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as e:
            raise StateError(f"{self.path} is corrupt and cannot be moved aside: {_why(e)}") from e
        self.moved_aside = aside
        logger.warning("{} was corrupt: moved to {}; a new one is started", self.path, aside)

    def _guarded(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (sqlite3.Error, OSError) as e:
            raise StateError(f"{self.path}: {_why(e)}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            rows: list[tuple[Any, ...]] = self._guarded(lambda: self._db.execute(sql, args).fetchall())
            return rows

    # journal
    def journal_write(self, container: str, step: str, data: dict[str, Any], kind: str = "container") -> None:
        self._exec(
            "INSERT OR REPLACE INTO journal (container, step, data, updated, kind) VALUES (?, ?, ?, ?, ?)",
            (container, step, json.dumps(data, sort_keys=True), time.time(), kind),
        )

    def journal_clear(self, container: str) -> None:
        self._exec("DELETE FROM journal WHERE container = ?", (container,))

    def journal(self, kind: str = "container") -> list[JournalEntry]:
        """The rows of one kind: "container" (replacements) or "service" (Swarm service updates)."""
        rows = self._exec(
            "SELECT container, step, data, updated FROM journal WHERE kind = ? ORDER BY container", (kind,)
        )
        return [JournalEntry(c, s, json.loads(d), u, kind) for c, s, d, u in rows]

    # history
    def record(self, d: Deployment) -> None:
        self._exec(
            "INSERT INTO history (container, started, finished, from_digest, to_digest, outcome, error,"
            " image_id, old_image_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (d.container, d.started, d.finished, d.from_digest, d.to_digest, d.outcome,
             redact(d.error) if d.error else None, d.image_id, d.old_image_id),
        )  # fmt: skip

    _COLUMNS = (
        "container, started, finished, from_digest, to_digest, outcome, error, image_id, old_image_id, logs"
    )

    def history(self, container: str, limit: int = 20) -> list[Deployment]:
        rows = self._exec(
            f"SELECT {self._COLUMNS} FROM history WHERE container = ? ORDER BY id DESC LIMIT ?",
            (container, limit),
        )
        return [Deployment(*r) for r in rows]

    def history_since(self, since: float, limit: int = 1000) -> list[Deployment]:
        """Every entry's deployments that ended after `since`, newest first (the status page's timeline)."""
        rows = self._exec(
            f"SELECT {self._COLUMNS} FROM history WHERE finished >= ? ORDER BY id DESC LIMIT ?",
            (since, limit),
        )
        return [Deployment(*r) for r in rows]

    def keep_logs(self, container: str, logs: str) -> None:
        """Attach the failed container's last log lines to the entry's latest deployment."""
        self._exec(
            "UPDATE history SET logs = ? WHERE id = (SELECT MAX(id) FROM history WHERE container = ?)",
            (redact(logs)[-8000:], container),
        )

    # what the last pass saw of each entry: the status page reads it and never asks the engine
    def record_seen(self, rows: dict[str, dict[str, Any]], *, complete: bool) -> None:
        """One row per entry of a pass; `complete` (a pass over every entry) drops the entries gone.
        Only what changed is written: a quiet pass costs one read, no transaction."""
        now = time.time()
        new = {c: redact(json.dumps(d, sort_keys=True)) for c, d in rows.items()}
        with self._lock:
            old = dict(self._guarded(lambda: self._db.execute("SELECT container, data FROM seen").fetchall()))
            changed = [(c, now, d) for c, d in new.items() if old.get(c) != d]
            gone = [(c,) for c in old if c not in new] if complete else []
            if changed or gone:
                self._guarded(self._replace_seen, changed, gone)

    def _replace_seen(self, changed: list[tuple[str, float, str]], gone: list[tuple[str]]) -> None:
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM seen WHERE container = ?", gone)
            self._db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?, ?)", changed)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def build_alerts(self, since: float) -> list[tuple[str, str, float]]:
        """ACR builds the build watch told of (notify/book.py's table): (key, state, first seen)."""
        if not self._exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'notices'"):
            return []
        rows = self._exec(
            "SELECT key, fingerprint, first FROM notices WHERE key LIKE 'build:%' AND sent >= ?"
            " ORDER BY first DESC LIMIT 20",
            (since,),
        )
        return [(k, f, t) for k, f, t in rows]

    def seen(self) -> dict[str, tuple[float, dict[str, Any]]]:
        rows = self._exec("SELECT container, time, data FROM seen ORDER BY container")
        return {c: (t, json.loads(d)) for c, t, d in rows}

    # quarantine
    def quarantine(self, container: str, digest: str, reason: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?)",
            (container, digest, redact(reason), time.time()),
        )

    def quarantined(self, container: str) -> dict[str, str]:
        rows = self._exec("SELECT digest, reason FROM quarantine WHERE container = ?", (container,))
        return {d: r for d, r in rows}

    def lift_quarantine(self, container: str) -> int:
        before = len(self.quarantined(container))
        self._exec("DELETE FROM quarantine WHERE container = ?", (container,))
        return before

    # pins
    def pin(self, container: str, digest: str) -> None:
        self._exec("INSERT OR REPLACE INTO pins VALUES (?, ?, ?)", (container, digest, time.time()))

    def unpin(self, container: str) -> bool:
        had = self.pinned(container) is not None
        self._exec("DELETE FROM pins WHERE container = ?", (container,))
        return had

    def pinned(self, container: str) -> str | None:
        rows = self._exec("SELECT digest FROM pins WHERE container = ?", (container,))
        return rows[0][0] if rows else None

    def pin_deployed(self, container: str) -> bool:
        """Whether the agent already deployed the pinned digest since the pin was set."""
        rows = self._exec(
            "SELECT 1 FROM history h JOIN pins p ON p.container = h.container WHERE h.container = ?"
            " AND h.to_digest = p.digest AND h.outcome = 'updated' AND h.started >= p.since LIMIT 1",
            (container,),
        )
        return bool(rows)

    def all_pins(self) -> dict[str, str]:
        return {c: d for c, d in self._exec("SELECT container, digest FROM pins")}

    def all_quarantined(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for c, d, r in self._exec("SELECT container, digest, reason FROM quarantine"):
            out.setdefault(c, {})[d] = r
        return out

    # verified signatures: (repository, digest) signed by the key with that fingerprint
    def signature_verified(self, repo: str, digest: str, keys: set[str], identity: str) -> str | None:
        """The fingerprint of a trusted key that verified `digest` before (`identity` "any" accepts both
        kinds of check), or None."""
        rows = self._exec(
            "SELECT key, identity FROM signatures WHERE repo = ? AND digest = ?", (repo, digest)
        )
        return next((k for k, i in rows if k in keys and (identity == "any" or i == identity)), None)

    def remember_signature(self, repo: str, digest: str, key: str, identity: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO signatures (repo, digest, key, identity, verified) VALUES (?, ?, ?, ?, ?)",
            (repo, digest, key, identity, time.time()),
        )

    # last checks
    def record_checks(self, rows: list[tuple[str, str | None, str | None, str, str | None]]) -> None:
        """(container, running, latest, status, error) for each container of a pass, in one transaction."""
        now = time.time()
        with self._lock:
            self._guarded(
                self._many,
                [(c, now, run, latest, st, err and redact(err)) for c, run, latest, st, err in rows],
            )

    def _many(self, rows: list[tuple[Any, ...]]) -> None:
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def last_check(self, container: str) -> dict[str, Any] | None:
        rows = self._exec(
            "SELECT checked, running_digest, latest_digest, status, error FROM checks WHERE container = ?",
            (container,),
        )
        if not rows:
            return None
        checked, running, latest, status, error = rows[0]
        return {
            "time": checked,
            "running_digest": running,
            "latest_digest": latest,
            "status": status,
            "error": error,
        }


class ScopedState(State):
    """The same state.db, with a journal limited to the entries one engine's deployer may recover."""

    def __init__(self, state: State, keep: Callable[[str], bool]) -> None:  # noqa: D107 - shares the connection
        self.__dict__.update(state.__dict__)
        self._keep = keep

    def journal(self, kind: str = "container") -> list[JournalEntry]:
        return [e for e in super().journal(kind) if self._keep(e.container)]
