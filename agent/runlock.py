"""One pass at a time: a thread lock for triggers in one process, a file lock across processes."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from loguru import logger

from agent.errors import HostLockBusy, PassRunning, StateError


def state_dir_fix(e: OSError) -> str:
    """What to do when `state_dir` is not ours to write: said in the error itself."""
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            "; run the agent as root (it drives Docker anyway), or set [agent] state_dir to a directory "
            "this user can write"
        )
    return ""


class RunLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = threading.Lock()
        self._fd: int | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> None:
        if not self._thread.acquire(blocking, timeout if blocking else -1):
            raise PassRunning("another pass is running in this process")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise HostLockBusy(f"another agent pass holds {self.path}") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
        except OSError as e:
            self._thread.release()
            raise StateError(
                f"cannot take the run lock {self.path}: {e.strerror or e}{state_dir_fix(e)}"
            ) from e
        except BaseException:
            self._thread.release()
            raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._thread.release()

    def __enter__(self) -> RunLock:
        self.acquire(blocking=False)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()


# Where the per-engine lock lives: /run is the host's, whatever state_dir each agent uses.
ENGINE_LOCK_DIRS = (Path("/run/cr-agent"), Path(tempfile.gettempdir()) / "cr-agent")


class EngineLock:
    """Serialises replacements of every agent on one Docker engine, whatever their state_dir.

    Keyed by the engine's id. Without a writable directory in `dirs` replacements go on
    unserialised, with a warning (each agent still holds its own run lock).
    """

    def __init__(self, dirs: tuple[Path, ...] = ENGINE_LOCK_DIRS) -> None:
        self.dirs = dirs
        self._fd: int | None = None

    def _open(self, engine: str) -> int | None:
        name = hashlib.sha256(engine.encode()).hexdigest()[:16] + ".lock"
        for d in self.dirs:
            try:
                d.mkdir(mode=0o755, parents=True, exist_ok=True)
                return os.open(d / name, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                logger.debug("engine lock: cannot use {}: {}", d, e)
        logger.warning(
            "no writable directory for the engine lock ({}); replacements are not "
            "serialised with other agents on this engine",
            ", ".join(map(str, self.dirs)),
        )
        return None

    def acquire(self, engine: str, stop: threading.Event, timeout: float, poll: float = 0.2) -> bool:
        """Wait up to `timeout` seconds; False when it did not come (or stop was set)."""
        fd = self._open(engine)
        if fd is None:
            return True
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline or stop.wait(poll):
                    os.close(fd)
                    return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
