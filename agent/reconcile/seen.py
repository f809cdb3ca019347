"""What a pass saw of each entry, kept in state.db so that `GET /` and `/api/status` never ask the engine.

`seen_of` is also what `agent status` builds from its own live look, so both have one shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from loguru import logger

from agent.config import Watch
from agent.config.labels import origins
from agent.errors import AgentError
from agent.model import ContainerInfo, Report, Result, Status, digest_for_repo
from agent.reconcile.context import Context
from agent.reconcile.plan import Observation


def seen_of(w: Watch, info: ContainerInfo | None, problem: str | None) -> dict[str, Any]:
    """The engine's side of one entry's status: what runs, its version, and why it cannot be told."""
    running = digest_for_repo(list(info.repo_digests), w.image.repo) if info else []
    return {
        "container": w.container, "kind": w.kind, "docker_host": w.docker_host, "image": str(w.image),
        "exists": info is not None, "container_id": info.id if info else None, "problem": problem, "running": bool(info and info.running),
        "running_digest": running[0] if running else None, "version": info.version.as_json() if info and info.version else None,
        "origin": w.origin, "settings": origins(w),
        "tag_pattern": str(w.pattern) if w.pattern else None, "repository": str(w.image.repo),
    }  # fmt: skip


def label_failure(r: Result) -> dict[str, Any]:
    """A container whose labels could not be read as a watch entry."""
    return {"container": r.container, "image": r.image, "origin": "labels", "error": r.error}


_CHANGED = (Status.UPDATED, Status.ROLLED_BACK, Status.FAILED)


def record_seen(
    ctx: Context,
    observed: Sequence[Observation],
    report: Report,
    label_failures: Iterable[Result],
    *,
    complete: bool,
) -> None:
    """After a pass: what each entry runs now (entries it changed are looked at once more), logs kept."""
    results = {r.container: r for r in report.results}
    changed = [o.watch for o in observed if (r := results.get(o.watch.container)) and r.status in _CHANGED]
    fresh: dict[str, ContainerInfo | None] = {}
    problems: dict[str, str] = {}
    for w in changed:
        try:
            found, why = ctx.target(w).observe([w])
        except AgentError as e:
            found, why = {}, {w.container: str(e)}
        fresh[w.container] = found.get(w.container)
        problems.update(why)
    rows: dict[str, dict[str, Any]] = {}
    for o in observed:
        name = o.watch.container
        info = fresh.get(name, o.container)
        rows[name] = seen_of(o.watch, info, problems.get(name, o.runtime_error))
    for r in label_failures:
        rows[r.container] = label_failure(r)
    try:
        ctx.state.record_seen(rows, complete=complete)
        for r in report.results:
            if r.logs and r.status in (Status.ROLLED_BACK, Status.FAILED) and r.container in fresh:
                ctx.state.keep_logs(r.container, r.logs)
    except AgentError as e:
        logger.warning("cannot record what the pass saw for the status page: {}", e)
