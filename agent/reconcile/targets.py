"""What an entry keeps updated: a container (the safe replace) or a Swarm service (Swarm's rollout).

reconcile sees only this port: observe what each target runs, prepare an update before any target
changes (a pull for containers), apply it, and recover what a crash left in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from loguru import logger

from agent.config import Watch
from agent.deploy import Deployer, Job
from agent.deploy.service import BUSY, ServiceDeployer, ServiceJob
from agent.errors import AgentError
from agent.model import ContainerInfo, Result
from agent.reconcile.pulls import pull_checked
from agent.reconcile.sharers import with_sharers
from agent.runtimes import Runtime, ServiceRuntime

Observed = tuple[dict[str, ContainerInfo], dict[str, str]]  # by entry name: what runs; why it cannot be told


class Target(Protocol):
    def observe(self, watches: Sequence[Watch]) -> Observed:
        """What each entry's target runs (missing ones left out), and per-entry problems."""
        ...

    def prepare(self, job: Job) -> str:
        """Work done for every update before any target changes. Raises AgentError."""
        ...

    def apply_update(self, job: Job, prepared: str) -> Result: ...

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

    def prepare(self, job: Job) -> str:
        return pull_checked(self.deployer, self.runtime, job)

    def apply_update(self, job: Job, prepared: str) -> Result:
        """The safe replace, with the containers that share its namespaces or volumes (dependants.py)."""
        return with_sharers(self.runtime, self.deployer, job, prepared)

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

    def prepare(self, job: Job) -> str:
        return ""  # every node pulls for itself, with the registry auth sent along with the update

    def apply_update(self, job: Job, prepared: str) -> Result:
        return self.deployer.update(ServiceJob(job.watch, job.to_digest, job.from_digest, job.auth))

    def recover(self, watched: list[str]) -> list[Result]:
        return self.deployer.recover()
