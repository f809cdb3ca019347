"""What an entry keeps updated: a container (the safe replace) or a Swarm service (Swarm's rollout).

reconcile sees only this port: observe what each target runs, pull before any target changes (the one
pull entry), apply the update, and recover what a crash left in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from loguru import logger

from agent.config import Watch
from agent.deploy import Deployer, Job
from agent.deploy.service import BUSY, ServiceDeployer, ServiceJob
from agent.errors import AgentError, RuntimeFault
from agent.model import ContainerInfo, Result
from agent.reconcile.sharers import with_sharers
from agent.runtimes import Runtime, ServiceRuntime

_REFUSED = ("unauthorized", "denied", "authentication required", "no basic auth credentials", " 401")
Observed = tuple[dict[str, ContainerInfo], dict[str, str]]  # by entry name: what runs; why it cannot be told


class Target(Protocol):
    def observe(self, watches: Sequence[Watch]) -> Observed:
        """What each entry's target runs (missing ones left out), and per-entry problems."""
        ...

    def pull(self, job: Job) -> str:
        """What every update needs before any target changes (a container's image). Raises AgentError."""
        ...

    def apply_update(self, job: Job, pulled: str) -> Result: ...

    def recover(self, watched: list[str]) -> list[Result]:
        """Finish what a crash left in flight (`watched`: the entries of this pass)."""
        ...


class ContainerTarget:
    """A container, replaced through the journaled safe replace of deploy.py."""

    def __init__(self, runtime: Runtime, deployer: Deployer, engine: str | None = None) -> None:
        self.runtime, self.deployer, self.engine = runtime, deployer, engine

    def observe(self, watches: Sequence[Watch]) -> Observed:
        try:
            return self.runtime.inspect_all([w.container for w in watches]), {}
        except AgentError as e:
            where = f" ({self.engine})" if self.engine else ""
            return {}, {w.container: f"docker{where}: {e}" for w in watches}

    def pull(self, job: Job) -> str:
        """Pull; once more with docker's own login if the registry refuses ours; the image must fit the host."""
        try:
            image = self.deployer.pull(job)
        except AgentError as e:
            if job.auth is None or not any(word in str(e).lower() for word in _REFUSED):
                raise
            logger.warning(
                "{}: the registry refused the agent's pull credentials ({}); retrying once with "
                "docker's own login",
                job.watch.container,
                e,
            )
            image = self.deployer.pull(replace(job, auth=None))
        mismatch = self.runtime.platform_mismatch(image)
        if mismatch:
            raise RuntimeFault(f"{job.to_digest}: {mismatch}; nothing was changed")
        return image

    def apply_update(self, job: Job, pulled: str) -> Result:
        """The safe replace, with the containers that share its namespaces or volumes (dependants.py)."""
        return with_sharers(self.runtime, self.deployer, job, pulled)

    def recover(self, watched: list[str]) -> list[Result]:
        try:
            return self.deployer.recover(watched)
        except AgentError as e:  # an engine that is down fails its own entries in observe, not the pass
            logger.error("recovery on {} postponed: {}", self.engine or "the local engine", e)
            return []


class ServiceTarget:
    """A Swarm service: the agent asks for the update, Swarm rolls it out or back."""

    def __init__(
        self, services: ServiceRuntime, deployer: ServiceDeployer, engine: str | None = None
    ) -> None:
        self.services, self.deployer, self.engine = services, deployer, engine

    def observe(self, watches: Sequence[Watch]) -> Observed:
        found: dict[str, ContainerInfo] = {}
        problems: dict[str, str] = {}
        for w in watches:
            try:
                s = self.services.service(w.service or w.container)
            except AgentError as e:
                problems[w.container] = f"docker{f' ({self.engine})' if self.engine else ''}: {e}"
                continue
            if s is None:
                continue
            if s.update_state in BUSY:
                problems[w.container] = (
                    f"Swarm is busy with an update of the service ({s.update_state}); not touching it"
                )
                continue
            found[w.container] = ContainerInfo(
                s.id, s.name, "", s.digests, s.replicas_running > 0, s.host_ports
            )
        return found, problems

    def pull(self, job: Job) -> str:
        return ""  # every node pulls for itself, with the registry auth sent along with the update

    def apply_update(self, job: Job, pulled: str) -> Result:
        return self.deployer.update(ServiceJob(job.watch, job.to_digest, job.from_digest, job.auth))

    def recover(self, watched: list[str]) -> list[Result]:
        return self.deployer.recover()
