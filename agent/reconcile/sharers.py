"""A container update with its sharers, on the target's own engine (issue 19: never the local one)."""

from __future__ import annotations

from dataclasses import replace

from loguru import logger

from agent.deploy import Deployer, Job
from agent.deploy import dependants as sharers
from agent.errors import AgentError
from agent.model import Result, Status
from agent.runtimes import Runtime


def with_sharers(
    runtime: Runtime, deployer: Deployer, recreated: dict[str, str], job: Job, image: str
) -> Result:
    """Refuse when a sharer cannot be recreated safely; replace; then recreate the sharers after the new
    container, or start again the ones that stopped with the old one when it came back.

    `recreated` (old id -> new id) is the sharers recreated earlier in this pass: a watch entry among them
    was recreated by the agent, not by another actor.
    """
    name = job.watch.container
    if job.container.id in recreated:
        now = runtime.inspect(name)
        if now is not None and now.id == recreated[job.container.id]:
            job = replace(job, container=now)
    try:
        planned = sharers.find(runtime, job.container.id)
    except AgentError as e:
        return _result(job, Status.FAILED, f"cannot list the containers that share its namespaces: {e}")
    why = sharers.unsafe(name, planned)
    if why:
        logger.warning("{}: update skipped: {}", name, why)
        return _result(job, Status.SKIPPED, why)
    result = deployer.replace(job, image)
    if not planned:
        return result
    if result.status is Status.UPDATED and result.container_id:
        done, moved = sharers.recreate(runtime, planned, result.container_id)
        recreated.update(moved)
    else:
        done = sharers.restart(runtime, planned)
    return replace(result, dependants=tuple(done)) if done else result


def _result(job: Job, status: Status, error: str) -> Result:
    w = job.watch
    return Result(w.container, str(w.image), status, job.from_digest, job.to_digest, error)
