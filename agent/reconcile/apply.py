"""apply: carry out the plan. Every new image is pulled first; then each target is updated in turn."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from agent import logs
from agent.deploy import Job
from agent.errors import AgentError
from agent.model import Result, Status
from agent.reconcile import selfcontainer
from agent.reconcile.context import Context
from agent.reconcile.plan import Action, Step
from agent.reconcile.pulls import credentials, pull_all
from agent.signatures import gate as signatures

# plan's verdicts that need no pull: (status, log event, level, message)
_DECIDED = {
    Action.NOTHING: (Status.UP_TO_DATE, "plan.up_to_date", "INFO", "{}: up to date at {}"),
    Action.SKIP: (Status.SKIPPED, "plan.skipped", "WARNING", "{}: skipped: {}"),
    Action.MISSING: (
        Status.FAILED,
        "plan.failed",
        "WARNING",
        "{}: failed: {} (set optional = true if it may be absent)",
    ),
    Action.FAIL: (Status.FAILED, "plan.failed", "ERROR", "{}: failed: {}"),
}


def _at(name: str, image: str, from_digest: str | None, to_digest: str | None) -> dict[str, Any]:
    """The decision fields of a log line (`to_digest`: what the entry should run)."""
    return {"container": name, "image": image, "from_digest": from_digest, "to_digest": to_digest}


def apply(ctx: Context, steps: list[Step], *, dry_run: bool = False) -> list[Result]:
    results: dict[str, Result] = {}
    updates: list[Job] = []
    for s in steps:
        name, image = s.watch.container, str(s.watch.image)
        at = _at(name, image, s.current, s.to_digest)
        if s.action in _DECIDED:
            status, event, level, message = _DECIDED[s.action]
            error = None if s.action is Action.NOTHING else s.reason
            logs.decision(level, event, message, name, error or s.current, status=status.value, **at)
            results[name] = Result(name, image, status, s.current, s.to_digest, error)
        elif dry_run or s.action is Action.REPORT:
            logs.decision("INFO", "plan.would_update", "{}: would update {} → {} ({})", name, s.current,
                          s.to_digest, s.reason or "dry run", status="would_update", **at)  # fmt: skip
            results[name] = Result(name, image, Status.WOULD_UPDATE, s.current, s.to_digest)
        else:
            assert s.container is not None and s.to_digest is not None
            auth = credentials(ctx.config, ctx.registries, s.watch)
            why = (
                None
                if name in ctx.unsigned_ok
                else signatures.check(ctx.config, ctx.state, ctx.signature_reader, s.watch, s.to_digest, auth)
            )
            if why is not None:  # not deployed, not quarantined: the next pass looks again
                results[name] = signatures.refused(s.watch, s.current, s.to_digest, why)
                logs.decision("WARNING", "plan.skipped", "{}: not deployed: {}", name, why[1],
                              status=results[name].status.value, **at)  # fmt: skip
            elif selfcontainer.is_own(s.container.id, ctx.self_id):
                results[name] = _own_container(ctx, s)
            else:
                updates.append(
                    Job(s.watch, s.container, s.to_digest, s.current, auth, follows_tag=not s.pinned)
                )
    for job, pulled in pull_all(
        updates, lambda j: ctx.target(j.watch).pull(j), ctx.config.agent.parallel_pulls
    ):
        r = _update(ctx, job, pulled)
        results[job.watch.container] = signatures.signed(r) if ctx.config.trusted_keys(job.watch) else r
    out = []
    for s in steps:  # a pinned entry also reports what the tag itself points to
        r = results[s.watch.container]
        if s.pinned:
            r = replace(r, pinned=True, tag_digest=s.tag_digest)
        if s.pin_conflict:
            r = replace(r, pin_conflict=True, seen_before=s.action is Action.SKIP)
        out.append(r)
    return out


def _update(ctx: Context, job: Job, pulled: str | AgentError) -> Result:
    name, image = job.watch.container, str(job.watch.image)
    at = _at(name, image, job.from_digest, job.to_digest)
    if isinstance(pulled, AgentError):
        logs.decision("ERROR", "pull.failed", "{}: pull of {} failed, nothing changed: {}", name, job.to_digest,
                      pulled, status="failed", **at)  # fmt: skip
        return Result(name, image, Status.FAILED, job.from_digest, job.to_digest, f"pull failed: {pulled}")
    logs.decision("INFO", "plan.update", "{}: replacing {} → {}", name, job.from_digest, job.to_digest,
                  status="updating", **at)  # fmt: skip
    t0 = time.monotonic()
    with logs.about("replace.step", status="updating", **at):
        r = ctx.target(job.watch).apply_update(job, pulled)
    return replace(r, seconds=round(time.monotonic() - t0, 3))


def _own_container(ctx: Context, s: Step) -> Result:
    """Never pull the floor from under ourselves: skip, or hand the update to a helper container."""
    name, image = s.watch.container, str(s.watch.image)
    at = _at(name, image, s.current, s.to_digest)
    if not ctx.config.agent.self_update or ctx.start_helper is None:
        reason = selfcontainer.skip_reason(name)
        level = "DEBUG" if name in ctx.told_own else "WARNING"  # a warning once, not every pass
        ctx.told_own.add(name)
        logs.decision(level, "plan.skipped", "{}: skipped: {}", name, reason, status="skipped", **at)
        return Result(name, image, Status.SKIPPED, s.current, s.to_digest, reason)
    try:
        helper = ctx.start_helper(name)
    except AgentError as e:
        logs.decision(
            "ERROR", "plan.failed", "{}: self-update helper did not start: {}", name, e, status="failed", **at
        )
        return Result(name, image, Status.FAILED, s.current, s.to_digest, f"self-update helper: {e}")
    logs.decision("INFO", "plan.update", "{}: own container; helper {} replaces it once this pass ends",
                  name, helper, status="skipped", **at)  # fmt: skip
    return Result(name, image, Status.SKIPPED, s.current, s.to_digest,
                  f"own container: handed to helper container {helper}", self_update=helper)  # fmt: skip
