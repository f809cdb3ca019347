"""observe → plan → apply → report. The one reconcile every trigger runs."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from loguru import logger

from agent import logs, selfcontainer
from agent.config import Config, Watch
from agent.dependants import rejoin_dependants
from agent.deploy import Deployer, Job
from agent.discover import Discovered, discover
from agent.errors import AgentError, TagDigestError
from agent.follow import resolve_patterns
from agent.model import ContainerInfo, RepoKey, Report, Result, Status, digest_for_repo
from agent.registries import Registry
from agent.runtimes import Runtime
from agent.state import State
from agent.targets import ContainerTarget, ServiceTarget, Target


@dataclass(frozen=True)
class Observation:
    watch: Watch
    container: ContainerInfo | None
    latest: str | None = None
    error: str | None = None
    pinned: str | None = None
    quarantined: Mapping[str, str] = field(default_factory=dict)
    runtime_error: str | None = None
    pin_deployed: bool = False  # the pinned digest was deployed once already, since the pin was set
    pin_reported: bool = False  # and the last pass already reported that it was recreated outside


PIN_CONFLICT = "pinned to"


class Action(Enum):
    NOTHING = "nothing"
    UPDATE = "update"
    REPORT = "report"  # monitor-only (mode = "notify"): an update is due, tell it, change nothing
    SKIP = "skip"
    FAIL = "fail"
    MISSING = "missing"  # a watched container that is not there: a warning, and the pass fails


@dataclass(frozen=True)
class Step:
    watch: Watch
    action: Action
    current: str | None
    target: str | None
    reason: str | None = None
    container: ContainerInfo | None = None
    pinned: bool = False
    tag_digest: str | None = None  # what the tag points to, when a pin overrides it
    pin_conflict: bool = False  # pinned, deployed, then recreated outside the agent


def plan(observations: Iterable[Observation]) -> list[Step]:
    """Pure: what to do for each observation."""
    steps = []
    for o in observations:
        s = _plan_one(o)
        if o.pinned is not None:
            s = replace(s, pinned=True, tag_digest=o.latest)
        steps.append(s)
    return steps


def _plan_one(o: Observation) -> Step:
    w = o.watch
    target = o.pinned or o.latest
    if o.runtime_error is not None:
        return Step(w, Action.FAIL, None, None, o.runtime_error)
    if o.container is None:
        if w.optional:
            return Step(w, Action.SKIP, None, o.latest, f"{w.kind} {w.container!r} not found (optional)")
        return Step(w, Action.MISSING, None, o.latest, f"{w.kind} {w.container!r} not found")
    running = digest_for_repo(list(o.container.repo_digests), w.image.repo)
    current = target if target in running else (running[0] if running else None)
    if o.pinned is None and o.error is not None:
        return Step(w, Action.FAIL, current, None, o.error, o.container)
    if target is None:
        return Step(
            w,
            Action.FAIL,
            current,
            None,
            f"tag {w.image.tag!r} not found in {w.image.repo.path}",
            o.container,
        )
    if target in running:
        broken = o.container.broken
        if broken is not None:  # never up to date while it is not serving
            return Step(w, Action.FAIL, current, target, f"{w.container} is {broken}", o.container)
        return Step(w, Action.NOTHING, current, target, None, o.container)
    if o.pinned is not None and o.pin_deployed:  # someone else recreated it: keep the pin, no flip-flop
        reason = (f"{PIN_CONFLICT} {target} but recreated outside the agent (e.g. `docker compose pull && up -d`); "
                  f"not redeployed: `agent unpin {w.container}` to follow the tag, or pin the digest in the "
                  "compose file (docs/labels.md)")  # fmt: skip
        action = Action.SKIP if o.pin_reported else Action.FAIL  # loud once, then quiet while it lasts
        return Step(w, action, current, target, reason, o.container, pin_conflict=True)
    if o.pinned is None and target in o.quarantined:
        reason = f"{target} is quarantined ({o.quarantined[target]}); push a new image or run `agent retry {w.container}`"
        return Step(w, Action.SKIP, current, target, reason, o.container)
    if w.mode == "notify":
        return Step(w, Action.REPORT, current, target, 'monitor only (mode = "notify")', o.container)
    return Step(w, Action.UPDATE, current, target, None, o.container)


@dataclass
class Context:
    config: Config
    registries: Mapping[str, Registry]  # by watch source: "aliyun", "registry"
    runtime: Runtime
    state: State
    deployer: Deployer
    on_pass: Callable[[Report, float], None] | None = None
    self_id: str | None = None  # the agent's own container, when it runs in one
    start_helper: Callable[[str], str] | None = None  # self_update: starts the helper for that container
    # by (kind, docker_host); containers on the default engine fall back to runtime + deployer
    targets: dict[tuple[str, str | None], Target] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.targets.setdefault(("container", None), ContainerTarget(self.runtime, self.deployer))

    def target(self, w: Watch) -> Target:
        return self.targets[(w.kind, w.docker_host)]


def observe(ctx: Context, watches: Iterable[Watch]) -> list[Observation]:
    """One registry request per distinct repository; one inspect per container."""
    watches = list(watches)
    wanted: dict[tuple[str, RepoKey], set[str]] = defaultdict(set)
    for w in watches:
        wanted[(w.source, w.image.repo)].add(w.image.tag)
    found: dict[tuple[str, RepoKey], dict[str, str]] = {}
    failed: dict[tuple[str, RepoKey], str] = {}
    bad_tags: dict[tuple[str, RepoKey], dict[str, str]] = {}
    for key, tags in sorted(wanted.items()):
        source, repo = key
        try:
            found[key] = ctx.registries[source].latest(repo, sorted(tags))
        except TagDigestError as e:  # the good tags of the repository still count
            logger.error("{}: {}", repo, e)
            found[key], bad_tags[key] = e.found, e.bad
        except AgentError as e:
            logger.error("{}: registry lookup failed: {}", repo, e)
            failed[key] = str(e)
    pins, quarantines = ctx.state.all_pins(), ctx.state.all_quarantined()
    by_target: dict[int, tuple[Target, list[Watch]]] = {}
    for w in watches:
        t = ctx.target(w)
        by_target.setdefault(id(t), (t, []))[1].append(w)
    infos: dict[str, ContainerInfo] = {}
    problems: dict[str, str] = {}
    for t, ws in by_target.values():
        running, why = t.observe(ws)
        infos.update(running)
        problems.update(why)
    out = []
    for w in watches:
        key = (w.source, w.image.repo)
        info = infos.get(w.container)
        error = failed.get(key)
        if w.image.tag in bad_tags.get(key, {}):
            error = f"ACR listed an invalid digest for tag {w.image.tag!r}: {bad_tags[key][w.image.tag]!r}"
        latest = found.get(key, {}).get(w.image.tag)
        pinned = pins.get(w.container)
        deployed = pinned is not None and ctx.state.pin_deployed(w.container)
        seen = deployed and (ctx.state.last_check(w.container) or {}).get("error") or ""
        out.append(Observation(w, info, latest, error, pinned, quarantines.get(w.container, {}),
                               problems.get(w.container),
                               deployed, seen.startswith(f"{PIN_CONFLICT} {pinned} ")))  # fmt: skip
    return out


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
    steps = _confirm_updates(ctx, plan(observe(ctx, watches)))
    results = apply(ctx, steps, dry_run=dry_run) + picked
    results += [r for r in (*found.failed, *found.skipped) if only is None or r.container in only]
    report = Report(tuple(_merge(recovered, results)))
    seconds = time.monotonic() - t0
    if not dry_run:
        report = _mark_seen(ctx.state, report)
        ctx.state.record_checks([
            (r.container, r.current_digest, str(r.detail.get("tag_digest") or r.latest_digest or "") or None,
             r.status.value, r.error)
            for r in report.results
        ])  # fmt: skip
    for r in report.results:
        logs.decision(
            "INFO", "pass.result", "{}: {}{}", r.container, r.status.value,
            f": {r.error}" if r.error else "", container=r.container, image=r.image, status=r.status.value,
            from_digest=r.current_digest, to_digest=r.latest_digest, error=r.error,
        )  # fmt: skip
    counts = {s.value: report.count(s) for s in Status}
    logger.bind(event="pass.done", checked=len(report.results), seconds=round(seconds, 3), **counts).info(
        "pass done: checked={} updated={} rolled_back={} failed={} skipped={} up_to_date={}{} in {:.2f}s",
        len(report.results), counts["updated"], counts["rolled_back"], counts["failed"], counts["skipped"],
        counts["up_to_date"], f" would_update={counts['would_update']}" if counts["would_update"] else "", seconds,
    )  # fmt: skip
    if ctx.on_pass and not dry_run:  # a dry run changes nothing and tells no one
        ctx.on_pass(report, seconds)
    return report


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
            target = r.detail.get("tag_digest") or r.latest_digest
            if last.get("status") == Status.WOULD_UPDATE.value and last.get("latest_digest") == target:
                r = replace(r, detail={**r.detail, "seen_before": True})
        out.append(r)
    return Report(tuple(out))


def _merge(recovered: list[Result], results: list[Result]) -> list[Result]:
    """A recovery result stands in for a container's pass only when the pass itself did nothing."""
    by_name = {r.container: r for r in recovered}
    out = []
    for r in results:
        rec = by_name.pop(r.container, None)
        if rec is not None and rec.detail.get("attention") and r.status.ok:  # left for the user to do
            error = "; ".join(e for e in (r.error, rec.error) if e)
            r = Result(r.container, r.image, Status.FAILED, r.current_digest, r.latest_digest, error,
                       {**r.detail, "recovered": rec.error})  # fmt: skip
        elif rec is not None and r.status is Status.UP_TO_DATE and rec.status is Status.FAILED:
            r = Result(r.container, r.image, r.status, r.current_digest, r.latest_digest, None,
                       {"recovered": rec.error})  # fmt: skip
        elif (
            rec is not None and r.status in (Status.UP_TO_DATE, Status.SKIPPED) and rec.detail.get("service")
        ):
            r = replace(
                rec, detail={**rec.detail, "recovered": True}
            )  # Swarm finished what a killed agent began
        out.append(r)
    return out + list(by_name.values())


def apply(ctx: Context, steps: list[Step], *, dry_run: bool = False) -> list[Result]:
    results: dict[str, Result] = {}
    updates: list[Job] = []
    for s in steps:
        name, image = s.watch.container, str(s.watch.image)
        at: dict[str, Any] = {
            "container": name,
            "image": image,
            "from_digest": s.current,
            "to_digest": s.target,
        }
        if s.action is Action.NOTHING:
            logs.decision(
                "INFO", "plan.up_to_date", "{}: up to date at {}", name, s.current, status="up_to_date", **at
            )
            results[name] = Result(name, image, Status.UP_TO_DATE, s.current, s.target)
        elif s.action is Action.SKIP:
            logs.decision(
                "WARNING", "plan.skipped", "{}: skipped: {}", name, s.reason, status="skipped", **at
            )
            results[name] = Result(name, image, Status.SKIPPED, s.current, s.target, s.reason)
        elif s.action is Action.MISSING:
            logs.decision("WARNING", "plan.failed", "{}: failed: {} (set optional = true if it may be absent)",
                          name, s.reason, status="failed", **at)  # fmt: skip
            results[name] = Result(name, image, Status.FAILED, s.current, s.target, s.reason)
        elif s.action is Action.FAIL:
            logs.decision("ERROR", "plan.failed", "{}: failed: {}", name, s.reason, status="failed", **at)
            results[name] = Result(name, image, Status.FAILED, s.current, s.target, s.reason)
        elif dry_run or s.action is Action.REPORT:
            why = s.reason or "dry run"
            logs.decision("INFO", "plan.would_update", "{}: would update {} → {} ({})", name, s.current, s.target,
                          why, status="would_update", **at)  # fmt: skip
            results[name] = Result(name, image, Status.WOULD_UPDATE, s.current, s.target)
        elif s.container is not None and selfcontainer.is_own(s.container.id, ctx.self_id):
            results[name] = _own_container(ctx, s)
        else:
            assert s.container is not None and s.target is not None
            auth = _auth_for(ctx, s.watch)
            updates.append(Job(s.watch, s.container, s.target, s.current, auth, follows_tag=not s.pinned))
    for job, pulled in _pull_all(ctx, updates):
        name = job.watch.container
        at = {
            "container": name,
            "image": str(job.watch.image),
            "from_digest": job.from_digest,
            "to_digest": job.digest,
        }
        if isinstance(pulled, Exception):
            logs.decision("ERROR", "pull.failed", "{}: pull of {} failed, nothing changed: {}", name, job.digest,
                          pulled, status="failed", **at)  # fmt: skip
            results[name] = Result(name, str(job.watch.image), Status.FAILED, job.from_digest, job.digest,
                                   f"pull failed: {pulled}")  # fmt: skip
            continue
        logs.decision("INFO", "plan.update", "{}: replacing {} → {}", name, job.from_digest, job.digest,
                      status="updating", **at)  # fmt: skip
        t0 = time.monotonic()
        with logs.about("replace.step", status="updating", **at):
            r = _with_dependants(ctx, job, ctx.target(job.watch).apply_update(job, pulled))
        results[name] = replace(r, detail={**r.detail, "seconds": round(time.monotonic() - t0, 3)})
    out = []
    for s in steps:  # a pinned entry also reports what the tag itself points to
        r = results[s.watch.container]
        if s.pinned:
            r = replace(r, detail={**r.detail, "pinned": True, "tag_digest": s.tag_digest})
        if s.pin_conflict:
            r = replace(r, detail={**r.detail, "pin_conflict": True, "seen_before": s.action is Action.SKIP})
        out.append(r)
    return out


def _own_container(ctx: Context, s: Step) -> Result:
    """Never pull the floor from under ourselves: skip, or hand the update to a helper container."""
    name, image = s.watch.container, str(s.watch.image)
    at: dict[str, Any] = {"container": name, "image": image, "from_digest": s.current, "to_digest": s.target}
    if not ctx.config.agent.self_update or ctx.start_helper is None:
        reason = selfcontainer.skip_reason(name)
        logs.decision("WARNING", "plan.skipped", "{}: skipped: {}", name, reason, status="skipped", **at)
        return Result(name, image, Status.SKIPPED, s.current, s.target, reason)
    try:
        helper = ctx.start_helper(name)
    except AgentError as e:
        logs.decision("ERROR", "plan.failed", "{}: self-update helper did not start: {}", name, e,
                      status="failed", **at)  # fmt: skip
        return Result(name, image, Status.FAILED, s.current, s.target, f"self-update helper: {e}")
    logs.decision("INFO", "plan.update", "{}: own container; helper {} replaces it once this pass ends",
                  name, helper, status="skipped", **at)  # fmt: skip
    return Result(name, image, Status.SKIPPED, s.current, s.target,
                  f"own container: handed to helper container {helper}", {"self_update": helper})  # fmt: skip


def _with_dependants(ctx: Context, job: Job, result: Result) -> Result:
    """After an update, the containers that shared the old one's network namespace join the new one."""
    if result.status is not Status.UPDATED:
        return result
    try:
        new = ctx.runtime.inspect(job.watch.container)
        done = rejoin_dependants(ctx.runtime, job.container.id, new.id) if new else []
    except AgentError as e:
        logger.error("{}: cannot list the containers in its network namespace: {}", job.watch.container, e)
        return replace(result, detail={**result.detail, "dependants_error": str(e)})
    return replace(result, detail={**result.detail, "dependants": done}) if done else result


def _pull_all(ctx: Context, jobs: list[Job]) -> list[tuple[Job, str | Exception]]:
    """Pull every new image first, a few at a time, before any container is touched."""

    def pull(job: Job) -> tuple[Job, str | Exception]:
        try:
            return job, ctx.target(job.watch).prepare(job)
        except AgentError as e:
            return job, e

    if len(jobs) <= 1:
        return [pull(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=ctx.config.agent.parallel_pulls) as pool:
        return list(pool.map(pull, jobs))


def _confirm_updates(ctx: Context, steps: list[Step]) -> list[Step]:
    """Before replacing a container, the registry's own digest for the tag wins over the API's.

    Only registries that can tell (`confirm`, e.g. ACR's registry HEAD) and only for tag-following updates.
    """
    out = []
    for s in steps:
        confirm = getattr(ctx.registries.get(s.watch.source), "confirm", None)
        if s.action is Action.UPDATE and not s.pinned and confirm is not None and s.target is not None:
            target = confirm(s.watch.image.repo, s.watch.image.tag, s.target)
            if target != s.target:
                running = (
                    digest_for_repo(list(s.container.repo_digests), s.watch.image.repo) if s.container else []
                )
                action = Action.NOTHING if target in running else Action.UPDATE
                s = replace(
                    s, action=action, target=target, current=target if action is Action.NOTHING else s.current
                )
        out.append(s)
    return out


def _auth_for(ctx: Context, w: Watch) -> tuple[str, str] | None:
    """Registry credentials: [registry_auth.host], else a temporary ACR token, else docker's own config."""
    configured = ctx.config.registry_auth.get(w.image.host)
    if configured:
        return configured.username, configured.password.reveal()
    try:
        return ctx.registries[w.source].credentials(w.image.host)
    except AgentError as e:
        logger.warning("{}: no temporary registry token ({}); using docker's own credentials", w.container, e)
        return None
