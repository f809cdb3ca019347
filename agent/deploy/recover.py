"""Finish or undo a replacement, converging to whatever the engine really holds.

Only containers this agent created (labelled with its id) are ever removed, and always by id.
Another actor (a user, compose, a second agent) may have removed or recreated a container
meanwhile: then nothing is forced, and the note returned says what was left and what to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from agent.deploy.journal import LABEL_AGENT, LABEL_REPLACES, Replacement, Step
from agent.deploy.neighbours import LABEL_HOST, host_name
from agent.model import MARK, NEW_SUFFIX, OLD_SUFFIX, ContainerInfo
from agent.runtimes import ListedContainer, Runtime

CrashAt = Callable[[Step], None]


@dataclass
class Restorer:
    runtime: Runtime
    agent_id: str
    clock: Callable[[], float] = time.monotonic
    poll: float = 0.5

    def labels(self, old_id: str) -> dict[str, str]:
        """The labels of a new container: whose replacement it is, and which agent made it."""
        return {LABEL_REPLACES: old_id, LABEL_AGENT: self.agent_id, LABEL_HOST: host_name()}

    def ours(self, label: str) -> list[str]:
        """Ids of the containers this agent created that carry `label`."""
        return [
            c.id for c in self.runtime.list_containers(label) if c.labels.get(LABEL_AGENT) == self.agent_id
        ]

    def _new_ids(self, r: Replacement) -> set[str]:
        """The new container(s) of `r`: by the journal, or by label when a crash came before it was written."""
        found = set(self.ours(f"{LABEL_REPLACES}={r.old_id}"))
        return found | {r.new_id} if r.new_id else found

    def undo(self, r: Replacement) -> str | None:
        """Back to the old container under its own name, running if it was. Idempotent.

        None when that worked; otherwise what was left instead and what the user must do.
        """
        rt, name = self.runtime, r.name
        old = rt.inspect(r.old_id)
        new_ids = self._new_ids(r)
        holder = rt.inspect(name)
        other = holder if holder is not None and holder.id != r.old_id and holder.id not in new_ids else None
        if old is None:
            return self._without_old(r, new_ids, other)
        for cid in new_ids:
            rt.remove(cid)
        if other is not None:
            return self._name_taken(r, old, other)
        if old.name != name:
            rt.rename(r.old_id, name)
        if r.was_running and not self._running(r.old_id):
            rt.start(r.old_id)
            if not self._wait_running(r.old_id):
                return f"the old container {r.old_id[:12]} did not start again: see `docker logs {name}`"
        return None

    def _without_old(self, r: Replacement, new_ids: set[str], other: ContainerInfo | None) -> str:
        rt, name = self.runtime, r.name
        if other is not None:
            for cid in new_ids:
                rt.remove(cid)
            return (
                f"{name} was removed and recreated by someone else during the replacement; "
                f"the agent removed its own new container, and {name} is theirs now"
            )
        kept = [c for cid in new_ids if (c := rt.inspect(cid)) is not None]
        if not kept:
            return f"{name} was removed by someone else during the replacement and no container {name} is left: recreate it"
        new = kept[0]
        if new.name != name:
            rt.rename(new.id, name)
        st = rt.state(new.id)
        if r.start_new and st is not None and st.status == "created":  # never started; not one that failed
            rt.start(new.id)
        return (
            f"the old container {r.old_id[:12]} was removed by someone else during the replacement, "
            f"so {name} is left on the new image {r.to_digest}"
        )

    def _name_taken(self, r: Replacement, old: ContainerInfo, other: ContainerInfo) -> str:
        """Someone recreated the container under its name: theirs stays; the old one is set aside."""
        rt = self.runtime
        if old.id in self.ours(LABEL_AGENT):
            rt.remove(old.id)
            return f"{r.name} was recreated by someone else during the replacement; the agent removed its old copy"
        if old.running:
            rt.stop(old.id)
        return (
            f"{r.name} was recreated by someone else ({other.id[:12]}) during the replacement; the old "
            f"container is kept, stopped, as {old.name}: `docker rm {old.name}` once it is not needed"
        )

    def finish(self, r: Replacement, crash_at: CrashAt) -> str | None:
        """Past the commit point: retire the old container; the new one takes the name. Idempotent."""
        rt = self.runtime
        holder = rt.inspect(r.name)
        if (
            r.new_id is None
            or rt.inspect(r.new_id) is None
            or (holder is not None and holder.id not in (r.old_id, r.new_id))
        ):
            return self.undo(r) or "the new container was removed by someone else; the old one is back"
        self.retire_old(r, crash_at)
        if r.start_new and not self._running(r.new_id):
            rt.start(r.new_id)
        return None

    def retire_old(self, r: Replacement, crash_at: CrashAt) -> None:
        """Remove the old container. Start-first: first hand its aliases and name to the new one."""
        rt, new_id = self.runtime, str(r.new_id)
        old = rt.inspect(r.old_id)
        if r.start_first:
            if old is not None:
                rt.publish(new_id, r.old_id)
                if old.running:
                    rt.drain(r.old_id)
                if old.name == r.name:
                    rt.rename(r.old_id, r.temp_name)
            new = rt.inspect(new_id)
            if new is not None and new.name != r.name:
                rt.rename(new_id, r.name)
            if old is not None and old.running:
                rt.stop(r.old_id)
                crash_at(Step.OLD_STOPPED)
        if old is not None:
            rt.remove(r.old_id)

    def _left(self, names: list[str]) -> dict[str, ListedContainer]:
        """The --cr-agent-new/-old containers of `names`, by name: one listing the engine filters by name."""
        wanted = {n + sfx for n in names for sfx in (NEW_SUFFIX, OLD_SUFFIX)}
        return {c.name: c for c in self.runtime.list_containers(named=MARK) if c.name in wanted}

    def suspects(self, names: list[str]) -> bool:
        """Whether any --cr-agent-new/-old container of `names` exists."""
        return bool(self._left(names))

    def leftovers(self, names: list[str], journaled: set[str]) -> list[tuple[str, str, bool]]:
        """(container, note, removed) for each --cr-agent-new/-old container left without a journal entry.

        This agent's own are removed when another container holds the name; otherwise reported.
        """
        out: list[tuple[str, str, bool]] = []
        wanted = [n for n in names if n not in journaled]
        found = self._left(wanted)
        if not found:  # the usual case: one listing, nothing more
            return out
        for name in wanted:
            for left in (found.get(name + sfx) for sfx in (NEW_SUFFIX, OLD_SUFFIX)):
                if left is None:
                    continue
                if left.labels.get(LABEL_AGENT) == self.agent_id and self.runtime.inspect(name) is not None:
                    self.runtime.remove(left.id)
                    out.append((name, f"removed {left.name}, left by an interrupted replacement", True))
                else:
                    what = "running" if left.running else "stopped"
                    out.append((name, f"{left.name} ({what}) is left from an interrupted replacement: "
                                      f"check it, then rename it to {name} or remove it", False))  # fmt: skip
                logger.warning("{}: {}", name, out[-1][1])
        return out

    def _running(self, cid: str) -> bool:
        st = self.runtime.state(cid)
        return st is not None and st.running and not st.restarting

    def _wait_running(self, cid: str, timeout: float = 30.0) -> bool:
        deadline = self.clock() + timeout
        while not self._running(cid):
            if self.clock() >= deadline:
                return False
            time.sleep(self.poll / 5)
        return True
