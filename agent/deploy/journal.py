"""The typed journal: one row per change in flight, what was decided and how far it got.

A container replacement (`Replacement`, steps `Step`) or a Swarm service update (`ServiceUpdate`,
steps `ServiceStep`); state.py keeps them in one table, told apart by kind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from agent.choices import Strategy
from agent.compat import StrEnum
from agent.model import NEW_SUFFIX, OLD_SUFFIX

LABEL_REPLACES = "cr-agent.replaces"  # on a container the agent created: the id of the one it replaces
LABEL_AGENT = "cr-agent.agent"  # on a container the agent created: which agent (state_dir) made it


class Step(StrEnum):
    """The steps of a replacement, in order. The journal holds the last step announced.

    A step is written before it is carried out, so after a crash it may or may not have happened;
    every undo and finish action is idempotent.
    """

    PULLED = "pulled"
    RENAMED = "renamed"
    CREATED = "created"
    OLD_STOPPED = "old_stopped"
    STARTED = "started"
    HEALTH_WAIT = "health_wait"
    HEALTHY = "healthy"  # the commit point: from here on, recovery finishes instead of undoing
    OLD_REMOVED = "old_removed"

    @property
    def committed(self) -> bool:
        return self in (Step.HEALTHY, Step.OLD_REMOVED)


# Step names written by versions before the typed journal.
_LEGACY = {
    "rename": Step.RENAMED,
    "create": Step.RENAMED,
    "stop_old": Step.CREATED,
    "start_new": Step.OLD_STOPPED,
}


def parse_step(text: str) -> Step:
    return _LEGACY.get(text) or Step(text)


@dataclass(frozen=True, kw_only=True)
class Replacement:
    """One replacement of container `name`, as recorded in the journal."""

    name: str
    image: str  # the watched reference, host/ns/repo:tag
    old_id: str
    old_image_id: str
    new_image: str  # what the new container is created from: host/ns/repo@sha256:...
    new_image_id: str
    to_digest: str
    from_digest: str | None
    was_running: bool
    start_new: bool
    strategy: Strategy
    started: float
    follows_tag: bool = True  # False for a pinned entry: the tag is left where it is
    step: Step = Step.PULLED
    new_id: str | None = None
    sharers: tuple[dict[str, Any], ...] = ()  # dependants.Planned as JSON: recreated after the commit

    @property
    def temp_name(self) -> str:
        return self.name + OLD_SUFFIX

    @property
    def new_name(self) -> str:
        """The new container's name while it is created and gated."""
        return self.name + NEW_SUFFIX if self.start_first else self.name

    @property
    def start_first(self) -> bool:
        return self.strategy is Strategy.START_FIRST and self.start_new

    def at(self, step: Step, **changes: Any) -> Replacement:
        return dataclasses.replace(self, step=step, **changes)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "step": self.step.value, "strategy": self.strategy.value}

    @classmethod
    def from_json(cls, step: str, data: dict[str, Any]) -> Replacement:
        """Read a journal entry, including those written before the typed journal."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("new_image", data.get("new_image_id") or "")
        values.setdefault("new_image_id", values["new_image"])
        values.setdefault("to_digest", data.get("digest") or "")  # called `digest` before
        values.setdefault("from_digest", None)
        values.setdefault("old_image_id", "")
        values.setdefault("started", 0.0)
        values["sharers"] = tuple(values.get("sharers") or ())
        values["step"] = parse_step(step)
        values["strategy"] = Strategy(values.get("strategy", Strategy.STOP_FIRST))
        return cls(**values)


class ServiceStep(StrEnum):
    """The steps of a service update. Swarm does the rollout in between; the agent only asks and waits."""

    REQUESTED = "requested"  # written before the update is posted: Swarm may or may not have it
    SETTLED = "settled"  # Swarm reached an end state; the outcome is in the row, still to be recorded


@dataclass(frozen=True)
class ServiceUpdate:
    """One update of service `service`, followed by entry `name`, as recorded in the journal."""

    name: str
    service: str
    image: str  # the watched reference, host/ns/repo:tag
    to_digest: str | None
    from_digest: str | None
    started: float
    wait: float  # seconds to wait for Swarm's end state
    step: ServiceStep = ServiceStep.REQUESTED
    outcome: str | None = None  # a Status value, once SETTLED
    error: str | None = None

    def at(self, step: ServiceStep, **changes: Any) -> ServiceUpdate:
        return dataclasses.replace(self, step=step, **changes)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "step": self.step.value}

    @classmethod
    def from_json(cls, name: str, step: str, data: dict[str, Any]) -> ServiceUpdate:
        """Read a journal row, including a `service_journal` row of an older agent (no name, no step)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.update(name=name, step=ServiceStep(step))
        values.setdefault("service", name)
        values.setdefault("from_digest", None)
        values.setdefault("to_digest", data.get("digest"))  # called `digest` before
        return cls(**values)
