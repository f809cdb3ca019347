"""Test-only entry point: run the agent CLI and SIGKILL it when a replacement reaches a step.

    python -m tests.support.kill_at STEP once -c agent.toml

Production code has no kill switch: this injects `crash_at` into every Deployer it builds.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from agent import cli
from agent.deploy import Deployer, Step


def main(argv: list[str]) -> int:
    step = Step(argv[0])
    init = Deployer.__init__

    def kill(reached: Step) -> None:
        if reached is step:
            os.kill(os.getpid(), signal.SIGKILL)

    def with_kill(self: Deployer, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "crash_at": kill})

    Deployer.__init__ = with_kill  # type: ignore[method-assign]
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
