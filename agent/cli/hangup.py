"""`agent once` and SIGHUP: a lost SSH or tmux session sends it, and it must not kill a replacement halfway."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger


@contextmanager
def hangup_ignored() -> Iterator[None]:
    """SIGHUP is noted, not obeyed, until the block ends; then it says it was ignored.

    A Python handler rather than SIG_IGN, so that hooks started meanwhile get the default back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, _frame: got.append(signum))  # only a flag
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
        if got:
            logger.warning("SIGHUP received during the pass: ignored, the pass ran to its end")
