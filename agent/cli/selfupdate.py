"""`agent self-update CONTAINER`, run in the helper container that replaces the agent's own container
(`self_update = true`): wait for the pass that started it, then update that one container."""

from __future__ import annotations

import time

from loguru import logger

from agent.app import build_context
from agent.config import Config
from agent.errors import LockBusy
from agent.model import Report
from agent.reconcile.run import reconcile
from agent.runlock import RunLock

LOCK_WAIT = 600.0  # the helper waits this long for the pass that started it to end


def helper_pass(cfg: Config, container: str, *, wait: float = LOCK_WAIT) -> Report:
    """In the helper container: wait for the pass that started us, then update `container` alone."""
    lock = RunLock(cfg.agent.state_dir / "agent.lock")
    deadline = time.monotonic() + wait
    while True:
        try:
            lock.acquire(blocking=False)
            break
        except LockBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        logger.info("self-update helper: replacing {}", container)
        return reconcile(build_context(cfg), only=frozenset({container}))
    finally:
        lock.release()
