"""Sharers: containers that share a namespace, volumes or a link with a replaced one (`--network`, `--ipc`,
`--pid container:X`, `--volumes-from X`, `--link X`). Found before X is replaced, recreated after it in
order (their own sharers after them), or started again when X's old container came back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from loguru import logger

from agent.errors import AgentError
from agent.model import Rejoined
from agent.runtimes import Runtime, Sharer

HELPER_LABEL = "io.cr-agent.self-update"  # the self-update helper shares the agent's volumes: not a sharer
SWARM_TASK = "com.docker.swarm.task.id"


@dataclass(frozen=True)
class Planned:
    sharer: Sharer
    parent: str  # the id of the container it shares with, before the replacement


def to_json(planned: list[Planned]) -> tuple[dict[str, Any], ...]:
    return tuple({**asdict(p.sharer), "parent": p.parent} for p in planned)


def from_json(rows: tuple[dict[str, Any], ...]) -> list[Planned]:
    out = []
    for row in rows:
        d = {k: v for k, v in row.items() if k != "parent"}
        out.append(
            Planned(Sharer(**{**d, "kinds": tuple(d["kinds"]), "labels": dict(d["labels"])}), row["parent"])
        )
    return out


def find(runtime: Runtime, container_id: str) -> list[Planned]:
    """Every sharer of the container, and theirs, parents first. Raises AgentError."""
    out: list[Planned] = []
    queue, seen = [container_id], {container_id}
    while queue:
        parent = queue.pop(0)
        for s in runtime.sharers(parent):
            if s.id in seen or HELPER_LABEL in s.labels:
                continue
            seen.add(s.id)
            out.append(Planned(s, parent))
            queue.append(s.id)
    return out


def unsafe(name: str, planned: list[Planned]) -> str | None:
    """Why replacing `name` would break a sharer that cannot be recreated safely, or None."""
    for p in planned:
        s, what = p.sharer, ", ".join(p.sharer.kinds)
        if s.auto_remove:
            return (
                f"{s.name} shares {what} with it and runs with --rm: recreating it could lose it; "
                f"start {s.name} without --rm, or replace both by hand"
            )
        if SWARM_TASK in s.labels:
            return f"{s.name} shares {what} with it and is a Swarm task, which only Swarm may recreate"
    return None


def recreate(runtime: Runtime, planned: list[Planned], new_id: str) -> tuple[list[Rejoined], dict[str, str]]:
    """After the replacement committed: each sharer is recreated pointing at its parent's successor, and
    started when it ran before. Returns the outcomes and the ids recreated (old id -> new id)."""
    done: list[Rejoined] = []
    moved = {planned[0].parent: new_id} if planned else {}
    for p in planned:
        s = p.sharer
        if p.parent not in moved:
            done.append(Rejoined(s.name, "failed", "what it shares with was not recreated: recreate it"))
            continue
        try:
            again = _resume(runtime, s)
            if again is not None:  # recreated before a crash: recovery goes on from it
                moved[s.id] = again
                continue
            moved[s.id] = runtime.recreate_sharer(s.id, p.parent, moved[p.parent], start=s.running)
        except AgentError as e:
            logger.error(
                "{}: shares {} with a replaced container; recreating it failed: {}",
                s.name,
                ", ".join(s.kinds),
                e,
            )
            done.append(
                Rejoined(s.name, "failed", f"{e}; it still points at the removed container: recreate it")
            )
            continue
        logger.info(
            "{}: recreated to share {} with the new {}", s.name, ", ".join(s.kinds), moved[p.parent][:12]
        )
        done.append(Rejoined(s.name, "restarted"))
    return done, moved


def _resume(runtime: Runtime, s: Sharer) -> str | None:
    """For a recovery: the new id when `s` was recreated already; otherwise it is put back under its name
    (a crash amid its recreation left it as `<name>--cr-agent-old`, maybe beside a half-made copy)."""
    old = runtime.inspect(s.id)
    if old is None:
        now = runtime.inspect(s.name)
        return now.id if now is not None else None
    if old.name != s.name:
        half = runtime.inspect(s.name)
        if half is not None:
            runtime.remove(half.id)
        runtime.rename(s.id, s.name)
    return None


def restart(runtime: Runtime, planned: list[Planned]) -> list[Rejoined]:
    """After a failed replacement put the old container back: start the sharers that ran and stopped with
    it (a `--pid container:X` sharer dies with X)."""
    done = []
    for p in planned:
        s = p.sharer
        try:
            st = runtime.state(s.id)
            if not s.running or st is None or st.running:
                continue
            runtime.start(s.id)
        except AgentError as e:
            logger.error("{}: could not start it again beside the restored container: {}", s.name, e)
            done.append(Rejoined(s.name, "failed", str(e)))
            continue
        logger.info("{}: started again beside the restored container", s.name)
        done.append(Rejoined(s.name, "restarted"))
    return done
