"""The pulls of a pass, before any target changes: whose credentials (`credentials`), and a few pulls at
a time (`pull_all`). Each pull itself is its target's (`Target.pull`): for a container, the bare pull by
digest (`Deployer.pull`), a refused token retried once with docker's own login, the platform check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from loguru import logger

from agent.config import Config, Watch
from agent.deploy import Job
from agent.errors import AgentError
from agent.registries import Registry


def credentials(config: Config, registries: Mapping[str, Registry], w: Watch) -> tuple[str, str] | None:
    """Registry credentials: [registry_auth.host], else a temporary ACR token, else docker's own config."""
    configured = config.registry_auth.get(w.image.host)
    if configured:
        return configured.username, configured.password.reveal()
    try:
        return registries[w.source].credentials(w.image.host)
    except AgentError as e:
        logger.warning("{}: no temporary registry token ({}); using docker's own credentials", w.container, e)
        return None


def pull_all(
    jobs: list[Job], pull: Callable[[Job], str], parallel: int
) -> list[tuple[Job, str | AgentError]]:
    """`pull` (the target's) for every job, `parallel` at a time: the image, or why not."""

    def one(job: Job) -> tuple[Job, str | AgentError]:
        try:
            return job, pull(job)
        except AgentError as e:
            return job, e

    if len(jobs) <= 1:
        return [one(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pull") as pool:
        return list(pool.map(one, jobs))
