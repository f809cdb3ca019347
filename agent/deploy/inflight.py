"""`agent status` for a replacement a crash or an engine restart left in the journal (issue 20.6):
the entry is in flight, its new container unproven, and the attempt is in its history already."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agent.deploy.journal import Replacement
from agent.model import short_digest
from agent.state import State

WHEN = "will be recovered on the next pass"


@dataclass(frozen=True)
class InFlight:
    text: str  # status's `in_flight`
    attempt: dict[str, Any]  # a history line, outcome "in_flight"
    new_id: str | None  # the unproven new container (containers), None for a service update

    def unproven(self, running_id: str | None) -> bool:
        """Whether what runs under the name (`running_id`) is the attempt's new container, not yet through
        its gate."""
        if self.new_id is None:
            return running_id is not None
        return running_id is not None and running_id == self.new_id


def in_flight(state: State) -> dict[str, InFlight]:
    """By entry name: the journal's replacements and service updates."""
    out: dict[str, InFlight] = {}
    for kind in ("container", "service"):
        for e in state.journal(kind):
            d = e.data
            started = float(d.get("started") or e.updated)
            from_digest, to_digest = d.get("from_digest"), d.get("to_digest") or d.get("digest")
            new_id = None
            if kind == "container":
                r = Replacement.from_json(e.step, d)
                new_id = "" if r.step.committed else r.new_id or ""
            what = "service update" if kind == "service" else "replacement"
            text = (
                f"{what} interrupted at step {e.step} ({short_digest(from_digest)} → "
                f"{short_digest(to_digest)}); {WHEN}"
            )
            attempt = {"started": started, "finished": None, "duration": round(time.time() - started, 3),
                       "from_digest": from_digest, "to_digest": to_digest, "outcome": "in_flight",
                       "error": f"interrupted at step {e.step}; {WHEN}"}  # fmt: skip
            out[e.container] = InFlight(text, attempt, new_id)
    return out
