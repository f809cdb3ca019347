"""plan: a pure function from what was observed to what to do, per watch entry.

Digests: `current` is what runs, `tag_digest` what the tag points to, `to_digest` what the entry should
run (the pin when there is one, else `tag_digest`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from agent.config import Watch
from agent.model import ContainerInfo, digest_for_repo

PIN_CONFLICT = "pinned to"


@dataclass(frozen=True, kw_only=True)
class Observation:
    watch: Watch
    container: ContainerInfo | None
    tag_digest: str | None = None
    error: str | None = None
    pinned: str | None = None
    quarantined: Mapping[str, str] = field(default_factory=dict)
    runtime_error: str | None = None
    pin_deployed: bool = False  # the pinned digest was deployed once already, since the pin was set
    pin_reported: bool = False  # and the last pass already reported that it was recreated outside


class Action(Enum):
    NOTHING = "nothing"
    UPDATE = "update"
    REPORT = "report"  # monitor-only (mode = "notify"): an update is due, tell it, change nothing
    SKIP = "skip"
    FAIL = "fail"
    MISSING = "missing"  # a watched container that is not there: a warning, and the pass fails


@dataclass(frozen=True, kw_only=True)
class Step:
    watch: Watch
    action: Action
    current: str | None
    to_digest: str | None
    reason: str | None = None
    container: ContainerInfo | None = None
    pinned: bool = False
    tag_digest: str | None = None  # what the tag points to, when a pin overrides it
    pin_conflict: bool = False  # pinned, deployed, then recreated outside the agent


def plan(observations: Iterable[Observation]) -> list[Step]:
    """Pure: what to do for each observation."""
    steps = []
    for o in observations:
        s = _plan_one(o)
        if o.pinned is not None:
            s = replace(s, pinned=True, tag_digest=o.tag_digest)
        steps.append(s)
    return steps


def _plan_one(o: Observation) -> Step:
    w = o.watch

    def step(action: Action, current: str | None, to: str | None, reason: str | None, **more: Any) -> Step:
        more.setdefault("container", o.container)
        return Step(watch=w, action=action, current=current, to_digest=to, reason=reason, **more)

    to = o.pinned or o.tag_digest
    if o.runtime_error is not None:
        return step(Action.FAIL, None, None, o.runtime_error, container=None)
    if o.container is None:
        if w.optional:
            return step(
                Action.SKIP,
                None,
                o.tag_digest,
                f"{w.kind} {w.container!r} not found (optional)",
            )
        return step(Action.MISSING, None, o.tag_digest, f"{w.kind} {w.container!r} not found")
    running = digest_for_repo(list(o.container.repo_digests), w.image.repo)
    current = to if to in running else (running[0] if running else None)
    if o.pinned is None and o.error is not None:
        return step(Action.FAIL, current, None, o.error)
    if to is None:
        return step(Action.FAIL, current, None, f"tag {w.image.tag!r} not found in {w.image.repo.path}")
    if to in running:
        broken = o.container.broken
        if broken is not None:  # never up to date while it is not serving
            return step(Action.FAIL, current, to, f"{w.container} is {broken}")
        return step(Action.NOTHING, current, to, None)
    if o.pinned is not None and o.pin_deployed:  # someone else recreated it: keep the pin, no flip-flop
        reason = (
            f"{PIN_CONFLICT} {to} but recreated outside the agent (e.g. `docker compose pull && up -d`); "
            f"not redeployed: `agent unpin {w.container}` to follow the tag, or pin the digest in the "
            "compose file (docs/labels.md)"
        )
        action = Action.SKIP if o.pin_reported else Action.FAIL  # loud once, then quiet while it lasts
        return step(action, current, to, reason, pin_conflict=True)
    if o.pinned is None and to in o.quarantined:
        reason = (
            f"{to} is quarantined ({o.quarantined[to]}); push a new image or run `agent retry {w.container}`"
        )
        return step(Action.SKIP, current, to, reason)
    if w.mode == "notify":
        return step(Action.REPORT, current, to, 'monitor only (mode = "notify")')
    return step(Action.UPDATE, current, to, None)
