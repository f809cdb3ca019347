"""Pull progress bars for `agent once` on a TTY (rich). Off a TTY nothing is drawn: logs stay clean."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from agent.runtimes.pull import PullProgress


class PullBars:
    """A callback for DockerRuntime(on_progress=...): one bar per image, bytes and layers done."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[layers]}"),
            console=console,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> PullBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.progress.stop()

    def __call__(self, reference: str, progress: PullProgress) -> None:
        got, total, done, layers = progress.counts()
        if not layers:
            return
        with self._lock:
            if reference not in self._tasks:
                name = reference.rsplit("/", 1)[-1].split("@")[0]
                self._tasks[reference] = self.progress.add_task(f"pull {name}", total=None, layers="")
            task = self._tasks[reference]
        self.progress.update(task, completed=got, total=total or None, layers=f"{done}/{layers} layers")
