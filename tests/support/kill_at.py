"""Test-only entry point: run the agent CLI and act when a replacement reaches a step.

    python -m tests.support.kill_at STEP once -c agent.toml          SIGKILL at STEP
    python -m tests.support.kill_at --pause DIR STEP once -c ...     at STEP, touch DIR/reached and
                                                                     wait for DIR/go (another actor's turn)

Production code has no such switch: this injects `crash_at` into every Deployer it builds.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.cli import commands as cli
from agent.deploy import Deployer, Step


def pause(where: Path) -> Callable[[], None]:
    def wait_for_go() -> None:
        (where / "reached").touch()
        deadline = time.monotonic() + 120
        while not (where / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    return wait_for_go


def main(argv: list[str]) -> int:
    action: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
    if argv[0] == "--pause":
        action, argv = pause(Path(argv[1])), argv[2:]
    step = Step(argv[0])
    init = Deployer.__init__

    def at_step(reached: Step) -> None:
        if reached is step:
            action()

    def with_hook(self: Deployer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "crash_at": at_step})

    Deployer.__init__ = with_hook  # type: ignore[method-assign]
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
