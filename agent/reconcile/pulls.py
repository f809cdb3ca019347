"""Every pull of an update, before any target changes: whose credentials, a refused token retried once
with docker's own login, the platform check, and a few pulls at a time. The one place that owns pulls;
`Deployer.pull` is the bare pull by digest (with the local copy as a fallback)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from loguru import logger

from agent.config import Config, Watch
from agent.deploy import Deployer, Job
from agent.errors import AgentError, RuntimeFault
from agent.registries import Registry
from agent.runtimes import Runtime

_REFUSED = ("unauthorized", "denied", "authentication required", "no basic auth credentials", " 401")


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


def pull_checked(deployer: Deployer, runtime: Runtime, job: Job) -> str:
    """Pull; once more with docker's own login if the registry refuses ours; the image must fit the host."""
    try:
        image = deployer.pull(job)
    except AgentError as e:
        if job.auth is None or not any(word in str(e).lower() for word in _REFUSED):
            raise
        logger.warning("{}: the registry refused the agent's pull credentials ({}); retrying once with docker's "
                       "own login", job.watch.container, e)  # fmt: skip
        image = deployer.pull(replace(job, auth=None))
    mismatch = runtime.platform_mismatch(image)
    if mismatch:
        raise RuntimeFault(f"{job.to_digest}: {mismatch}; nothing was changed")
    return image


def pull_all(
    jobs: list[Job], prepare: Callable[[Job], str], parallel: int
) -> list[tuple[Job, str | AgentError]]:
    """`prepare` (the target's pull) for every job, `parallel` at a time: the image, or why not."""

    def one(job: Job) -> tuple[Job, str | AgentError]:
        try:
            return job, prepare(job)
        except AgentError as e:
            return job, e

    if len(jobs) <= 1:
        return [one(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pull") as pool:
        return list(pool.map(one, jobs))
