"""Two agents on one engine: another agent's labels on the containers this one watches (issue 20.5).

Each agent marks the containers it creates with its id (a hash of its state_dir) and its host name; an agent
that starts and finds another's marks on its own entries says so once, naming that agent and the entries.
"""

from __future__ import annotations

import socket

from agent.deploy.journal import LABEL_AGENT
from agent.model import NEW_SUFFIX, OLD_SUFFIX
from agent.runtimes import Runtime

# on a container the agent created: the host name of the agent that made it (in a container: its id)
LABEL_HOST = "cr-agent.host"


def host_name() -> str:
    return socket.gethostname()


def other_agents(runtime: Runtime, agent_id: str, names: list[str]) -> list[str]:
    """One warning per other agent whose containers on this engine are among `names` (one listing)."""
    found: dict[tuple[str, str], set[str]] = {}
    wanted = set(names)
    for c in runtime.list_containers(LABEL_AGENT):
        other = c.labels.get(LABEL_AGENT, "")
        name = c.name.removesuffix(OLD_SUFFIX).removesuffix(NEW_SUFFIX)
        if other and other != agent_id and name in wanted:
            found.setdefault((other, c.labels.get(LABEL_HOST) or "an unknown host"), set()).add(name)
    return [
        f"another agent (on {host}, agent id {other}, with a different state_dir) has replaced or is replacing "
        f"containers this agent watches: {', '.join(sorted(entries))}. Two agents updating one container "
        "fight over it: let one agent watch each container"
        for (other, host), entries in sorted(found.items())
    ]
