"""Worker lanes: a bounded number of requests answered at once, by threads that are kept."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable


class Lane:
    """At most `size` requests answered at once, by daemon threads started as needed and then kept."""

    def __init__(self, name: str, size: int) -> None:
        self._name, self._size = name, size
        self._jobs: queue.SimpleQueue[Callable[[], Callable[[], None]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._busy = 0
        self._threads: list[threading.Thread] = []

    def submit(self, job: Callable[[], Callable[[], None]]) -> bool:
        """Queue `job` for a worker; False (and nothing queued) when all `size` are busy. The worker is
        counted free again before it runs what `job` returns (delivering the answer): a client that got
        its answer finds its slot free."""
        with self._lock:
            if self._busy >= self._size:
                return False
            self._busy += 1
            if self._busy > len(self._threads):
                thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)
        return True

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                deliver = job()
            finally:
                with self._lock:
                    self._busy -= 1
            deliver()

    def stop(self, deadline: float) -> None:
        """Let every worker finish its job and end; wait until `deadline` (monotonic) at most."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
