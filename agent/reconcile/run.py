"""observe → plan → apply → report. The one reconcile every trigger runs.

observe.py asks the registries and targets, plan.py decides, apply.py pulls and updates; this module
runs one pass through them, merges what crash recovery found, and reports.
"""

from __future__ import annotations

import time
from dataclasses import replace

from loguru import logger

from agent import logs
from agent.errors import AgentError
from agent.model import NEW_SUFFIX, OLD_SUFFIX, Report, Result, Status
from agent.reconcile.apply import apply
from agent.reconcile.context import Context
from agent.reconcile.discover import Discovered, discover
from agent.reconcile.follow import resolve_patterns
from agent.reconcile.observe import observe
from agent.reconcile.plan import Action, Observation, Step, plan
from agent.reconcile.seen import record_seen
from agent.reconcile.targets import ServiceTarget
from agent.state import State

__all__ = ["Action", "Context", "Observation", "Step", "observe", "plan", "reconcile"]


def reconcile(ctx: Context, only: frozenset[str] | None = None, dry_run: bool = False) -> Report:
    """One pass. The caller holds the run lock."""
    t0 = time.monotonic()
    found = _discover(ctx)
    watches = [w for w in (*ctx.config.watches, *found.watches) if only is None or w.container in only]
    names = [w.container for w in watches]
    recovered = [] if dry_run else [r for t in ctx.targets.values() for r in t.recover(names)]
    if recovered and ctx.config.agent.discover is not None:  # a recovered container is listed again
        found = _discover(ctx)
        watches = [w for w in (*ctx.config.watches, *found.watches) if only is None or w.container in only]
    watches, picked = resolve_patterns(ctx.registries, ctx.runtime, watches)
    observed = observe(ctx, watches)
    steps = plan(observed)
    results = apply(ctx, steps, dry_run=dry_run) + picked
    results += [r for r in (*found.failed, *found.skipped) if only is None or r.container in only]
    report = Report(tuple(_merge(recovered, results)))
    seconds = time.monotonic() - t0
    if not dry_run:
        report = _mark_seen(ctx.state, report)
        try:
            ctx.state.record_checks(
                [
                    (r.container, r.current_digest, r.tag_digest or r.to_digest, r.status.value, r.error)
                    for r in report.results
                ]
            )
        except AgentError as e:  # a full state_dir: the results are still reported, logged and told
            logger.error("the results of this pass were not saved for `agent status`: {}", e)
        record_seen(ctx, observed, report, (*found.failed, *found.skipped), complete=only is None)
    _log(report, seconds)
    if ctx.on_pass and not dry_run:  # a dry run changes nothing and tells no one
        ctx.on_pass(report, seconds)
    return report


def _log(report: Report, seconds: float) -> None:
    for r in report.results:
        logs.decision(
            "INFO", "pass.result", "{}: {}{}", r.container, r.status.value,
            f": {r.error}" if r.error else "", container=r.container, image=r.image, status=r.status.value,
            from_digest=r.current_digest, to_digest=r.to_digest, error=r.error,
        )  # fmt: skip
    counts = {s.value: report.count(s) for s in Status}
    logger.bind(event="pass.done", checked=len(report.results), seconds=round(seconds, 3), **counts).info(
        "pass done: checked={} updated={} rolled_back={} failed={} skipped={} up_to_date={}{} in {:.2f}s",
        len(report.results), counts["updated"], counts["rolled_back"], counts["failed"], counts["skipped"],
        counts["up_to_date"], f" would_update={counts['would_update']}" if counts["would_update"] else "", seconds,
    )  # fmt: skip


def _discover(ctx: Context) -> Discovered:
    """Watch entries from labels; a failed container list fails no configured entry."""
    try:
        local = ctx.targets.get(("service", None))  # on a Swarm manager, services' labels count too
        services = local.services if isinstance(local, ServiceTarget) else None
        return discover(ctx.config, ctx.runtime, ctx.registries.keys(), services)
    except AgentError as e:
        logger.error("label discovery failed: {}", e)
        return Discovered((), ())


def _mark_seen(state: State, report: Report) -> Report:
    """A would_update already reported for the same digest by the last pass is marked `seen_before`."""
    out = []
    for r in report.results:
        if r.status is Status.WOULD_UPDATE:
            last = state.last_check(r.container) or {}
            if last.get("status") == Status.WOULD_UPDATE.value and last.get("latest_digest") == (
                r.tag_digest or r.to_digest
            ):
                r = replace(r, seen_before=True)
        out.append(r)
    return Report(tuple(out))


def _merge(recovered: list[Result], results: list[Result]) -> list[Result]:
    """A recovery result stands in for a container's pass only when the pass itself did nothing."""
    by_name = {r.container: r for r in recovered}
    out = []
    for r in results:
        rec = by_name.pop(r.container, None)
        if rec is not None and rec.attention and r.status.ok:  # left for the user to do
            error = "; ".join(e for e in (_unless_said(r, rec.error), rec.error) if e)
            r = replace(r, status=Status.FAILED, error=error, recovered=rec.error)
        elif rec is not None and r.status is Status.UP_TO_DATE and rec.status is Status.FAILED:
            r = Result(r.container, r.image, r.status, r.current_digest, r.to_digest, recovered=rec.error)
        elif rec is not None and r.status in (Status.UP_TO_DATE, Status.SKIPPED) and rec.service:
            r = replace(rec, recovered=True)  # Swarm finished what a killed agent began
        out.append(r)
    return out + list(by_name.values())


def _unless_said(r: Result, note: str | None) -> str | None:
    """The pass's reason, unless it names the same leftover the recovery's note already tells about."""
    left = [r.container + sfx for sfx in (OLD_SUFFIX, NEW_SUFFIX)]
    return None if r.error and any(n in r.error and n in (note or "") for n in left) else r.error
