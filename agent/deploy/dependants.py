"""Containers in a replaced container's network namespace are recreated after it, in order."""

from __future__ import annotations

from loguru import logger

from agent.errors import AgentError
from agent.model import Rejoined
from agent.runtimes import Runtime


def rejoin_dependants(runtime: Runtime, old_id: str, new_id: str) -> list[Rejoined]:
    """Recreate every container whose `network_mode` is `container:<old_id>`, then their own dependants.

    Compose `depends_on` alone shares no namespace: those containers are left alone.
    """
    out: list[Rejoined] = []
    queue = [(old_id, new_id)]
    while queue:
        old, new = queue.pop(0)
        children = [c for c in runtime.list_containers() if c.network_mode == f"container:{old}"]
        for c in sorted(children, key=lambda c: c.name):
            try:
                made = runtime.rejoin(c.name, new)
            except AgentError as e:
                logger.error(
                    "{}: shares the network of a replaced container; recreating it failed: {}", c.name, e
                )
                out.append(Rejoined(c.name, "failed", str(e)))
                continue
            logger.info("{}: recreated in the network of the new {}", c.name, new[:12])
            out.append(Rejoined(c.name, "restarted"))
            queue.append((c.id, made))
    return out
