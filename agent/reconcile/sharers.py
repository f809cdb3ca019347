"""A container update with its sharers, on the target's own engine (issue 19: never the local one)."""

from __future__ import annotations

from dataclasses import replace

from loguru import logger

from agent.deploy import Deployer, Job
from agent.deploy import dependants as sharers
from agent.errors import AgentError
from agent.model import Result, Status
from agent.runtimes import Runtime


def with_sharers(runtime: Runtime, deployer: Deployer, job: Job, image: str) -> Result:
    """Refuse when a sharer cannot be recreated safely; else replace, the sharers going along in the
    journaled replacement; start again the ones that stopped with the old container when it came back.

    A watch entry recreated as a sharer earlier in the pass (`deployer.recreated`) was recreated by the
    agent, not by another actor.
    """
    name = job.watch.container
    if job.container.id in deployer.recreated:
        now = runtime.inspect(name)
        if now is not None and now.id == deployer.recreated[job.container.id]:
            job = replace(job, container=now)
    try:
        planned = sharers.find(runtime, job.container.id)
    except AgentError as e:
        return _result(job, Status.FAILED, f"cannot list the containers that share its namespaces: {e}")
    why = sharers.unsafe(name, planned)
    if why:
        logger.warning("{}: update skipped: {}", name, why)
        return _result(job, Status.SKIPPED, why)
    result = deployer.replace(replace(job, sharers=tuple(planned)), image)
    if not planned or result.status is Status.UPDATED:
        return result
    done = sharers.restart(runtime, planned)
    return replace(result, dependants=tuple(done)) if done else result


def _result(job: Job, status: Status, error: str) -> Result:
    w = job.watch
    return Result(w.container, str(w.image), status, job.from_digest, job.to_digest, error)
