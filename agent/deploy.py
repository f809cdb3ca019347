"""The safe replace of one container, journaled so that a crash at any step can be finished or undone.

pull → rename old → create new → (stop old → start new | start new → gate → stop old)
     → health gate → remove old.   Any failure before the commit point restores the old container.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from agent.config import HealthSpec, Watch
from agent.errors import AgentError, DeployError, RuntimeFault
from agent.model import ContainerInfo, Result, Status
from agent.probes import probe as run_probe
from agent.runtimes import Runtime
from agent.state import Deployment, State

OLD_SUFFIX = "--cr-agent-old"
NEW_SUFFIX = "--cr-agent-new"  # start-first: the new container's name until it is proven
KILL_HOOK_ENV = "CR_AGENT_TEST_KILL_AT"  # tests only: SIGKILL ourselves after the named step


@dataclass(frozen=True)
class Job:
    watch: Watch
    container: ContainerInfo
    digest: str
    from_digest: str | None
    auth: tuple[str, str] | None = None


class HealthFailed(AgentError):
    """The new container did not prove itself. The digest is to be quarantined."""


class Interrupted(AgentError):
    """Shutdown was asked for while waiting; roll back without blaming the image."""


def _test_kill_point(step: str) -> None:
    if os.environ.get(KILL_HOOK_ENV) == step:
        logger.warning("test hook: killing the agent at step {}", step)
        os.kill(os.getpid(), signal.SIGKILL)


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
        keep_images: int = 3,
    ) -> None:
        self.poll = poll
        self.keep_images = keep_images
        self.runtime = runtime
        self.state = state
        self.stop = stop or threading.Event()
        self.probe = probe
        self.clock = clock

    # ---- pull -------------------------------------------------------------------------
    def pull(self, job: Job) -> str:
        """Pull by digest and tag it as the watched tag. Touches no container."""
        ref = job.watch.image
        try:
            image_id = self.runtime.pull(ref.at(job.digest), job.auth)
        except RuntimeFault:
            if not self.runtime.exists_image(ref.at(job.digest)):
                raise
            logger.warning("{}: pull failed; using the local copy of {}", job.watch.container, job.digest)
            image_id = ref.at(job.digest)
        self.runtime.tag(image_id, ref.repository, ref.tag)
        _test_kill_point("pulled")
        return image_id

    # ---- replace ----------------------------------------------------------------------
    def replace(self, job: Job, image_id: str) -> Result:
        w = job.watch
        started = time.time()

        def result(status: Status, error: str | None = None, **detail: object) -> Result:
            return Result(w.container, str(w.image), status, job.from_digest, job.digest, error, dict(detail))

        if self.stop.is_set():
            return result(Status.SKIPPED, "shutting down before the replacement started")
        old = self.runtime.inspect(job.container.id)  # the full, current view, after the pull
        if old is None:
            return result(Status.SKIPPED, f"container {w.container!r} disappeared before the replacement")
        if w.pre_update:
            ok, out = run_hook(w.pre_update, w.hook_timeout, _hook_env(job))
            if not ok:
                logger.warning("{}: pre_update failed, update skipped: {}", w.container, out)
                return result(Status.SKIPPED, f"pre_update hook failed: {out}")

        strategy = self._strategy(w, old)
        start_new = old.running or w.start_stopped
        data: dict[str, Any] = {
            "name": w.container, "image": str(w.image), "old_id": old.id, "old_image_id": old.image_id, "new_image_id": image_id,
            "temp_name": w.container + OLD_SUFFIX, "digest": job.digest, "from_digest": job.from_digest,
            "was_running": old.running, "start_new": start_new, "strategy": strategy, "started": started,
        }  # fmt: skip
        try:
            new_id = self._swap(job, data)
        except HealthFailed as e:
            logs = self._logs(data.get("new_id"))
            self._undo(data)
            self.state.quarantine(w.container, job.digest, str(e))
            self._record(data, "rolled_back", str(e))
            logger.error("{}: rolled back, {} quarantined: {}", w.container, job.digest, e)
            return result(Status.ROLLED_BACK, str(e), logs=logs, quarantined=True)
        except Interrupted as e:
            self._undo(data)
            self._record(data, "interrupted", str(e))
            logger.warning("{}: {}; old container restored", w.container, e)
            return result(Status.FAILED, str(e))
        except Exception as e:
            logs = self._logs(data.get("new_id"))
            try:
                self._undo(data)
            except Exception as undo_error:
                logger.exception("{}: could not restore the old container", w.container)
                msg = f"{e}; restoring the old container also failed: {undo_error}"
                return result(Status.FAILED, msg, logs=logs)
            self._record(data, "failed", str(e))
            logger.error("{}: update failed, old container restored: {}", w.container, e)
            return result(Status.FAILED, f"{e} (old container restored)", logs=logs)
        self._record(data, "updated", None)
        self._prune(w.container, image_id)
        if w.post_update:
            ok, out = run_hook(w.post_update, w.hook_timeout, _hook_env(job))
            if not ok:
                logger.warning("{}: post_update failed: {}", w.container, out)
        logger.info("{}: updated {} → {} ({})", w.container, job.from_digest, job.digest, strategy)
        return result(Status.UPDATED, None, strategy=strategy, container_id=new_id)

    def _strategy(self, w: Watch, old: ContainerInfo) -> str:
        if w.strategy == "start-first" and (old.host_ports or old.static_ip):
            logger.warning(
                "{}: start-first needs no published host ports and no static IP; using stop-first",
                w.container,
            )
            return "stop-first"
        return w.strategy

    def _swap(self, job: Job, data: dict[str, Any]) -> str:
        w, rt, name = job.watch, self.runtime, job.watch.container
        old_id, temp = str(data["old_id"]), str(data["temp_name"])
        image = f"{w.image.repository}:{w.image.tag}"
        if data["strategy"] == "start-first" and data["start_new"]:
            # The old one keeps its name and aliases until the new one is proven (see _retire_old).
            data["new_name"] = name + NEW_SUFFIX
            self._step(name, "create", data)
            new_id = rt.clone(old_id, data["new_name"], image, aliases=False)
            data["new_id"] = new_id
            self._step(name, "created", data)
            _test_kill_point("created")
            self._start_and_gate(w, name, new_id, data)
            return self._commit(name, data)
        self._step(name, "rename", data)
        rt.rename(old_id, temp)
        _test_kill_point("renamed")
        self._step(name, "create", data)
        new_id = rt.clone(old_id, name, image)
        data["new_id"] = new_id
        self._step(name, "created", data)
        _test_kill_point("created")
        if data["start_new"]:
            if data["was_running"]:
                self._step(name, "stop_old", data)
                rt.stop(old_id)
                _test_kill_point("old_stopped")
            self._start_and_gate(w, name, new_id, data)
        return self._commit(name, data)

    def _start_and_gate(self, w: Watch, name: str, new_id: str, data: dict[str, Any]) -> None:
        self._step(name, "start_new", data)
        self.runtime.start(new_id)
        _test_kill_point("started")
        self._step(name, "health_wait", data)
        _test_kill_point("health_wait")
        self._wait_healthy(w, new_id)

    def _commit(self, name: str, data: dict[str, Any]) -> str:
        self._step(name, "healthy", data)  # the commit point: from here on, recovery finishes
        _test_kill_point("healthy")
        self._retire_old(data)
        _test_kill_point("old_removed")
        return str(data["new_id"])

    def _retire_old(self, data: dict[str, Any]) -> None:
        """Remove the old container. Start-first: first hand its aliases and name to the new one."""
        rt, old_id, name = self.runtime, str(data["old_id"]), str(data["name"])
        new_name = data.get("new_name")
        if new_name:
            new_id = str(data["new_id"])
            rt.publish(new_id, old_id)
            st = rt.state(old_id)
            if st is not None and st.running:
                rt.drain(old_id)
            old = rt.inspect(old_id)
            if old is not None and old.name == name:
                rt.rename(old_id, str(data["temp_name"]))
            new = rt.inspect(new_id)
            if new is not None and new.name != name:
                rt.rename(new_id, name)
            if st is not None and st.running:
                rt.stop(old_id)
                _test_kill_point("old_stopped")
        rt.remove(old_id)

    def _step(self, name: str, step: str, data: dict[str, Any]) -> None:
        self.state.journal_write(name, step, data)
        logger.debug("{}: step {}", name, step)

    # ---- health gate ------------------------------------------------------------------
    def _wait_healthy(self, w: Watch, new_id: str) -> None:
        """Return once the new container is proven; raise HealthFailed or Interrupted."""
        deadline = self.clock() + w.health_timeout
        first = self.runtime.state(new_id)
        restarts = first.restart_count if first else 0
        up_since = self.clock()
        last_probe = "no probe yet"
        interval = w.health.interval if w.health else self.poll
        while True:
            st = self.runtime.state(new_id)
            if st is None:
                raise HealthFailed("the new container disappeared")
            if st.restarting or st.restart_count > restarts:
                raise HealthFailed(f"the new container restarted (exit code {st.exit_code})")
            if not st.running:
                raise HealthFailed(f"the new container exited with code {st.exit_code}")
            if st.health is not None:
                if st.health == "healthy":
                    return
                if st.health == "unhealthy":
                    raise HealthFailed("the new container's HEALTHCHECK reports unhealthy")
                last_probe = f"HEALTHCHECK {st.health}"
            elif w.health is not None:
                ok, last_probe = self.probe(w.health)
                if ok:
                    return
            elif self.clock() - up_since >= w.min_uptime:
                return
            if self.clock() >= deadline:
                raise HealthFailed(f"not healthy within {w.health_timeout:g}s ({last_probe})")
            if self.stop.wait(min(interval, max(0.05, deadline - self.clock()))):
                raise Interrupted("shutdown requested while waiting for the new container to be healthy")

    # ---- undo / recovery --------------------------------------------------------------
    def _undo(self, data: dict[str, Any]) -> None:
        """Back to the old container under its own name, running if it was. Idempotent."""
        rt, name = self.runtime, str(data["name"])
        old_id = str(data["old_id"])
        old = rt.inspect(old_id)
        if old is None:
            raise DeployError(f"{name}: the old container {old_id[:12]} is gone; keeping the new one")
        for other in (data.get("new_id"), data.get("new_name"), name):
            current = rt.inspect(str(other)) if other else None
            if current is not None and current.id != old_id:
                rt.remove(current.id)
        if old.name != name:
            rt.rename(old_id, name)
        if data["was_running"]:
            st = rt.state(old_id)
            if st is None or not st.running:
                rt.start(old_id)
            self._wait_running(old_id)
        self.state.journal_clear(name)

    def _wait_running(self, cid: str, timeout: float = 30.0) -> None:
        deadline = self.clock() + timeout
        while True:
            st = self.runtime.state(cid)
            if st is not None and st.running and not st.restarting:
                return
            if self.clock() >= deadline:
                raise DeployError(f"container {cid[:12]} did not start again")
            time.sleep(self.poll / 5)

    def recover(self) -> list[Result]:
        """Finish or undo every replacement a crash left in the journal."""
        results = []
        for entry in self.state.journal():
            data, name = entry.data, entry.container
            image = str(data.get("image", ""))
            try:
                if entry.step == "healthy":
                    self._finish(data)
                    status, err = Status.UPDATED, None
                    self._record(data, "updated", "finished after an interruption")
                else:
                    self._undo(data)
                    status, err = Status.FAILED, f"interrupted at step {entry.step}; old container restored"
                    self._record(data, "interrupted", err)
                logger.warning(
                    "{}: recovered from an interrupted replacement ({}): {}", name, entry.step, status.value
                )
            except Exception as e:
                logger.exception("{}: recovery failed", name)
                status, err = Status.FAILED, f"recovery after interruption failed: {e}"
            results.append(Result(name, image, status, data.get("from_digest"), data.get("digest"), err))
        return results

    def _finish(self, data: dict[str, Any]) -> None:
        rt, name = self.runtime, str(data["name"])
        if rt.inspect(str(data["old_id"])) is not None:
            self._retire_old(data)
        if data["start_new"]:
            st = rt.state(name)
            if st is not None and not st.running:
                rt.start(name)
        self.state.journal_clear(name)

    # ---- bookkeeping ------------------------------------------------------------------
    def _record(self, data: dict[str, Any], outcome: str, error: str | None) -> None:
        name = str(data["name"])
        self.state.record(
            Deployment(
                name, float(data["started"]), time.time(), _opt(data.get("from_digest")), _opt(data.get("digest")),
                outcome, error, _opt(data.get("new_image_id")), _opt(data.get("old_image_id")),
            )
        )  # fmt: skip
        if outcome == "updated":
            self.state.journal_clear(name)

    def _prune(self, container: str, current: str) -> None:
        """Keep the last `keep_images` previous images for rollback; remove older unused ones."""
        seen: list[str] = []
        for d in self.state.history(container, limit=100):
            if (
                d.outcome == "updated"
                and d.old_image_id
                and d.old_image_id not in seen
                and d.old_image_id != current
            ):
                seen.append(d.old_image_id)
        for image_id in seen[self.keep_images :]:
            try:
                if self.runtime.exists_image(image_id) and not self.runtime.image_in_use(image_id):
                    self.runtime.remove_image(image_id)
                    logger.info("{}: removed old image {}", container, image_id[:19])
            except AgentError as e:
                logger.debug("{}: kept old image {}: {}", container, image_id[:19], e)

    def _logs(self, cid: object) -> str | None:
        if not cid:
            return None
        try:
            return self.runtime.logs(str(cid), tail=30)
        except Exception:
            return None


def _opt(v: object) -> str | None:
    return None if v is None else str(v)


def _hook_env(job: Job) -> dict[str, str]:
    return {
        "CR_AGENT_CONTAINER": job.watch.container,
        "CR_AGENT_IMAGE": str(job.watch.image),
        "CR_AGENT_FROM_DIGEST": job.from_digest or "",
        "CR_AGENT_TO_DIGEST": job.digest,
    }


def run_hook(command: str, timeout: float, env: dict[str, str]) -> tuple[bool, str]:
    """Run a lifecycle hook through the shell; (ok, last output line or reason)."""
    try:
        proc = subprocess.run(
            command, shell=True, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g}s"
    out = (proc.stdout + proc.stderr).strip().splitlines()
    tail = out[-1] if out else ""
    if proc.returncode != 0:
        return False, f"exit code {proc.returncode}{': ' + tail if tail else ''}"
    return True, tail
