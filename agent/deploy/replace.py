"""The safe replace of one container, journaled so that a crash at any step can be finished or undone.

pull → rename old → create new → (stop old → start new | start new) → health gate → commit → remove old.
Any failure before the commit point restores the old container (recover.py).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from agent.choices import Strategy
from agent.config import AgentSettings, HealthSpec, Watch
from agent.deploy import dependants as sharers
from agent.deploy.dependants import Planned
from agent.deploy.gate import wait_healthy
from agent.deploy.hooks import hook_env, run_hook
from agent.deploy.journal import LABEL_REPLACES, Replacement, Step
from agent.deploy.neighbours import other_agents
from agent.deploy.probes import probe as run_probe
from agent.deploy.prune import prune
from agent.deploy.recover import CrashAt, Restorer
from agent.deploy.space import low_space, unwritable
from agent.errors import AgentError, Disturbed, HealthFailed, Interrupted, RuntimeFault, StateError
from agent.model import NEW_SUFFIX, OLD_SUFFIX, ContainerInfo, ImageRef, Rejoined, Result, Status, Version
from agent.runlock import EngineLock
from agent.runtimes import Runtime
from agent.runtimes.relabel import IMAGE_LABEL
from agent.secret import redact
from agent.state import Deployment, State


@dataclass(frozen=True)
class Job:
    watch: Watch
    container: ContainerInfo
    to_digest: str  # the digest to run
    from_digest: str | None
    auth: tuple[str, str] | None = None
    follows_tag: bool = True  # False when pinned: the local tag is not moved to `to_digest`
    sharers: tuple[Planned, ...] = ()  # recreated after the commit point, journaled with the replacement


def no_crash(step: Step) -> None:
    """Production's `crash_at`: tests inject one that kills the process at a step."""


class Deployer:
    def __init__(
        self,
        runtime: Runtime,
        state: State,
        *,
        stop: threading.Event | None = None,
        probe: Callable[[HealthSpec], tuple[bool, str]] = run_probe,
        clock: Callable[[], float] = time.monotonic,
        poll: float = 0.5,
        keep_images: int = AgentSettings.keep_images,
        crash_at: CrashAt = no_crash,
        engine_lock: EngineLock | None = None,
        lock_wait: float = 900.0,
    ) -> None:
        self.runtime = runtime
        self.state = state
        self.stop = stop or threading.Event()
        self.probe = probe
        self.clock = clock
        self.poll = poll
        self.keep_images = keep_images
        self.crash_at = crash_at
        self.engine_lock = engine_lock or EngineLock()
        self.lock_wait = lock_wait
        agent_id = hashlib.sha256(str(state.dir.resolve()).encode()).hexdigest()[:12]
        self.restorer = Restorer(runtime, agent_id, clock, poll)
        self._engine: str | None = None
        self._last: Replacement | None = None  # the replacement in flight, as last journaled
        self._told_neighbours = False
        self.recreated: dict[str, str] = {}  # sharers recreated (old id -> new id), for later entries
        self._rejoined: list[Rejoined] = []

    # ---- pull -------------------------------------------------------------------------
    def pull(self, job: Job) -> str:
        """Pull by digest; return the image id. Touches no container and no tag."""
        ref = job.watch.image
        w = job.watch
        logger.bind(event="pull.start", container=w.container, image=str(ref), status="updating",
                    from_digest=job.from_digest, to_digest=job.to_digest).info(
            "{}: pulling {}", w.container, ref.at(job.to_digest))  # fmt: skip
        try:
            image_id = self.runtime.pull(ref.at(job.to_digest), job.auth)
        except RuntimeFault:
            if not self.runtime.exists_image(ref.at(job.to_digest)):
                raise
            logger.warning("{}: pull failed; using the local copy of {}", job.watch.container, job.to_digest)
            image_id = ref.at(job.to_digest)
        self.crash_at(Step.PULLED)
        return image_id

    # ---- replace ----------------------------------------------------------------------
    def replace(self, job: Job, image_id: str) -> Result:
        """Replace the container with `image_id`; always a Result, never an exception for a failure."""
        if self.stop.is_set():
            return _result(job, Status.SKIPPED, "shutting down before the replacement started")
        try:
            busy = self._lock_engine()
        except AgentError as e:
            return _result(job, Status.FAILED, str(e))
        if busy:
            return _result(job, Status.SKIPPED, busy)
        try:
            return self._replace(job, image_id)
        finally:
            self.engine_lock.release()

    def _lock_engine(self) -> str | None:
        """Take the engine lock; None once held, else why not."""
        if self._engine is None:
            self._engine = self.runtime.engine_id()
        if self.engine_lock.acquire(self._engine, self.stop, self.lock_wait):
            return None
        return "another agent is replacing a container on this Docker engine; the next pass tries again"

    def _replace(self, job: Job, image_id: str) -> Result:
        w, rt = job.watch, self.runtime
        try:
            old = rt.inspect(w.container)  # the full, current view, after the pull and the lock
            if old is None or old.id != job.container.id:
                return _result(job, Status.SKIPPED, f"{w.container} was removed or recreated by another actor "
                               "since it was observed; the next pass looks again")  # fmt: skip
            busy = self._in_progress(w.container, old.id)
            if busy:
                return _result(job, Status.SKIPPED, busy)
        except AgentError as e:
            return _result(job, Status.FAILED, str(e))
        low = low_space(self.state.dir)
        if low:
            logger.warning("{}: update skipped: {}", w.container, low)
            return _result(job, Status.SKIPPED, low)
        if w.pre_update:
            ok, out = run_hook(w.pre_update, w.hook_timeout, _env(job))
            if not ok:
                logger.warning("{}: pre_update failed, update skipped: {}", w.container, out)
                return _result(job, Status.SKIPPED, f"pre_update hook failed: {out}")
        r = Replacement(
            name=w.container,
            image=str(w.image),
            old_id=old.id,
            old_image_id=old.image_id,
            new_image=w.image.at(job.to_digest),
            new_image_id=image_id,
            to_digest=job.to_digest,
            from_digest=job.from_digest,
            was_running=old.running,
            start_new=old.running or w.start_stopped,
            strategy=self._strategy(w, old),
            started=time.time(),
            follows_tag=job.follows_tag,
            sharers=sharers.to_json(list(job.sharers)),
        )
        self._rejoined = []
        self._last = r
        try:
            r = self._swap(w, r, _stop_timeout(old))
        except Exception as e:
            last = self._last or r
            if not last.step.committed:
                return self._failed(job, last, e)
            logger.warning("{}: {} after the commit point; finishing the update", w.container, e)
            result = self._recover(last)
            return _result(job, result.status, result.error)
        self._committed(r)
        if w.post_update:
            ok, out = run_hook(w.post_update, w.hook_timeout, _env(job))
            if not ok:
                logger.warning("{}: post_update failed: {}", w.container, out)
        version = self._version(r.new_image_id)
        logger.info("{}: updated {} → {}{} ({})", w.container, job.from_digest, job.to_digest,
                    f" {version}" if version else "", r.strategy)  # fmt: skip
        return _result(job, Status.UPDATED, strategy=r.strategy, container_id=r.new_id, version=version,
                       dependants=tuple(self._rejoined) or None)  # fmt: skip

    def _in_progress(self, name: str, old_id: str) -> str | None:
        """Why another agent's replacement of `name` is to be respected, or None."""
        marks = {c.name for c in self.runtime.list_containers(f"{LABEL_REPLACES}={old_id}")}
        marks |= {n for n in (name + OLD_SUFFIX, name + NEW_SUFFIX) if self.runtime.inspect(n) is not None}
        if not marks:
            return None
        return (
            f"an unfinished replacement of {name} left {', '.join(sorted(marks))}: let the agent that "
            "started it finish, or check and remove those containers"
        )

    def _strategy(self, w: Watch, old: ContainerInfo) -> Strategy:
        if w.strategy is Strategy.START_FIRST and (old.host_ports or old.static_ip):
            logger.warning(
                "{}: start-first needs no published host ports and no static IP; using stop-first",
                w.container,
            )
            return Strategy.STOP_FIRST
        return w.strategy

    def _swap(self, w: Watch, r: Replacement, stop_timeout: int) -> Replacement:
        rt = self.runtime
        if not r.start_first:
            r = self._step(r, Step.RENAMED)
            rt.rename(r.old_id, r.temp_name)
            self.crash_at(Step.RENAMED)
        r = self._step(r, Step.CREATED)
        labels = {**self.restorer.labels(r.old_id), IMAGE_LABEL: r.image}  # the tag it follows from now on
        new_id = rt.clone(r.old_id, r.new_name, r.new_image, aliases=not r.start_first, labels=labels)
        r = self._step(r, Step.CREATED, new_id=new_id)
        self.crash_at(Step.CREATED)
        if r.start_new:
            if not r.start_first and r.was_running:
                r = self._step(r, Step.OLD_STOPPED)
                say(r.name, Step.OLD_STOPPED, "stopping the old container (stop timeout {}s)", stop_timeout)
                rt.stop(r.old_id)
                self.crash_at(Step.OLD_STOPPED)
            r = self._step(r, Step.STARTED)
            rt.start(new_id)
            self.crash_at(Step.STARTED)
            r = self._step(r, Step.HEALTH_WAIT)
            self.crash_at(Step.HEALTH_WAIT)
            wait_healthy(rt, w, new_id, probe=self.probe, clock=self.clock, stop=self.stop, poll=self.poll)
        self._check_undisturbed(r)
        r = self._step(r, Step.HEALTHY)  # the commit point
        self.crash_at(Step.HEALTHY)
        say(r.name, Step.OLD_REMOVED, "healthy; removing the old container {}", r.old_id[:12])
        self.restorer.retire_old(r, self.crash_at)
        self.crash_at(Step.OLD_REMOVED)
        self._rejoin(r)
        return r

    def _rejoin(self, r: Replacement) -> None:
        """After the commit point, before the journal is cleared: the sharers follow the new container."""
        if r.sharers and r.new_id:
            self._rejoined, moved = sharers.recreate(self.runtime, sharers.from_json(r.sharers), r.new_id)
            self.recreated.update(moved)

    def _check_undisturbed(self, r: Replacement) -> None:
        """Commit only when the name is still held by whom it should be."""
        holder = self.runtime.inspect(r.name)
        expected = r.old_id if r.start_first else r.new_id
        if holder is None or holder.id != expected:
            raise Disturbed(f"{r.name} was removed or recreated by someone else during the replacement")

    def _step(self, r: Replacement, step: Step, **changes: object) -> Replacement:
        r = r.at(step, **changes)
        self.state.journal_write(r.name, step.value, r.to_json())
        self._last = r
        logger.bind(event="replace.step", step=step.value).debug("{}: step {}", r.name, step.value)
        return r

    def _failed(self, job: Job, r: Replacement, e: Exception) -> Result:
        name = r.name
        logs = self._logs(r.new_id)
        try:
            note = self.restorer.undo(r)
        except AgentError as undo_error:  # the journal stays: the next pass tries again
            logger.error("{}: {}; restoring the old container failed too: {}", name, e, undo_error)
            msg = f"{e}; restoring the old container failed too: {undo_error} (the next pass tries again)"
            return _result(job, Status.FAILED, msg, logs=logs)
        quarantined = isinstance(e, HealthFailed)  # only when the image itself failed its gate
        if quarantined:
            self.state.quarantine(name, r.to_digest, redact(str(e)))
        if note is not None:  # after a Disturbed, the note says precisely what the other actor did
            error = note if isinstance(e, Disturbed) else f"{e}; {note}"
            status, outcome = Status.FAILED, "failed"
        elif quarantined:
            status, outcome, error = Status.ROLLED_BACK, "rolled_back", str(e)
        elif isinstance(e, StateError):  # the journal lived in memory; the undo above used it
            status, outcome = Status.FAILED, "failed"
            error = f"{unwritable(e)}; the old container was restored"
        elif isinstance(e, Interrupted):
            status, outcome, error = Status.FAILED, "interrupted", str(e)
        else:
            status, outcome, error = Status.FAILED, "failed", f"{e} (old container restored)"
        self._record(r, outcome, error)
        log = logger.error if status is Status.ROLLED_BACK or note is not None else logger.warning
        log("{}: {}{}", name, error, f"; {r.to_digest} quarantined" if quarantined else "")
        return _result(job, status, error, logs=logs, quarantined=quarantined or None)

    def _committed(self, r: Replacement) -> None:
        """After the commit: history, journal, the tag (for an entry that follows it), old images."""
        self._record(r, "updated", None)
        if r.follows_tag:
            ref = ImageRef.parse(r.image)
            try:
                self.runtime.tag(r.new_image_id, ref.repository, ref.tag)
            except AgentError as e:
                logger.warning("{}: could not move the tag to {}: {}", r.name, r.to_digest, e)
        prune(self.runtime, self.state, self.keep_images, r.name, r.new_image_id)

    # ---- recovery ---------------------------------------------------------------------
    def recover(self, watched: list[str] | None = None) -> list[Result]:
        """Finish or undo every replacement a crash left in the journal; report leftovers.

        Under the engine lock, so that another agent's replacement in progress is not taken for a leftover.
        """
        if not self._told_neighbours:  # once per agent start
            self._told_neighbours = True
            try:
                for line in other_agents(self.runtime, self.restorer.agent_id, watched or []):
                    logger.warning(line)
            except AgentError as e:  # the recovery below meets the same engine and says what is wrong
                logger.debug("other agents not looked for: {}", e)
        if not self.state.journal() and not (watched and self.restorer.suspects(watched)):
            return []  # the usual case: one listing, no lock
        try:
            busy = self._lock_engine()
        except AgentError as e:
            logger.error("recovery postponed: {}", e)
            return []
        if busy:
            logger.warning("recovery postponed: {}", busy)
            return []
        try:
            results = [self._recover(Replacement.from_json(e.step, e.data)) for e in self.state.journal()]
            journaled = {e.container for e in self.state.journal()}
            for name, note, removed in self.restorer.leftovers(watched or [], journaled):
                status = Status.SKIPPED if removed else Status.FAILED
                results.append(
                    Result(name, "", status, None, None, note, attention=None if removed else True)
                )
            return results
        finally:
            self.engine_lock.release()

    def _recover(self, r: Replacement) -> Result:
        self._rejoined = []
        try:
            if r.step.committed:
                note = self.restorer.finish(r, self.crash_at)
                if note is None:
                    self._rejoin(r)
                    self._committed(r)
                else:
                    self._record(r, "failed", note)
                status, err = (Status.UPDATED, None) if note is None else (Status.FAILED, note)
            else:
                note = self.restorer.undo(r)
                status = Status.FAILED
                err = f"interrupted at step {r.step.value}; " + (note or "old container restored")
                self._record(r, "interrupted", err)
            logger.warning("{}: recovered from an interrupted replacement ({}): {}", r.name, r.step.value,
                           err or "finished")  # fmt: skip
        except AgentError as e:
            logger.error(
                "{}: recovering an interrupted replacement failed; the next pass tries again: {}", r.name, e
            )
            status, err = Status.FAILED, f"recovery after an interruption failed: {e}"
        return Result(r.name, r.image, status, r.from_digest, r.to_digest or None, err,
                      dependants=tuple(self._rejoined) or None)  # fmt: skip

    # ---- bookkeeping ------------------------------------------------------------------
    def _record(self, r: Replacement, outcome: str, error: str | None) -> None:
        try:
            self.state.record(
                Deployment(r.name, r.started, time.time(), r.from_digest, r.to_digest or None, outcome,
                           redact(error) if error else None, r.new_image_id or None, r.old_image_id or None)
            )  # fmt: skip
            self.state.journal_clear(r.name)
        except StateError as e:  # the result still says what happened; the next pass finds the journal
            logger.error("{}: this attempt ({}) is not in the history: {}", r.name, outcome, unwritable(e))

    def _version(self, image_id: str) -> Version | None:
        """The new image's OCI version labels, when it has them."""
        try:
            return Version.from_labels(self.runtime.image_labels(image_id))
        except AgentError:
            return None

    def _logs(self, cid: str | None) -> str | None:
        if not cid:
            return None
        try:
            return redact(self.runtime.logs(cid, tail=30))
        except AgentError:
            return None


def say(name: str, step: str, message: str, *args: object, **fields: object) -> None:
    """An INFO line for a step that takes time, so that a replacement never looks like a hang."""
    logger.bind(event="replace.step", step=str(step), **fields).info("{}: " + message, name, *args)


def _stop_timeout(c: ContainerInfo | None) -> int:
    return c.stop_timeout if c is not None and c.stop_timeout is not None and c.stop_timeout >= 0 else 10


def _env(job: Job) -> dict[str, str]:
    return hook_env(job.watch.container, str(job.watch.image), job.from_digest, job.to_digest)


def _result(job: Job, status: Status, error: str | None = None, **facts: Any) -> Result:
    w = job.watch
    return Result(w.container, str(w.image), status, job.from_digest, job.to_digest, error, **facts)
