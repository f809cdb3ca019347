"""observe: what the registries say each watched tag points to, and what each watched target runs."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from loguru import logger

from agent.config import Watch
from agent.errors import AgentError, TagDigestError
from agent.model import ContainerInfo, RepoKey, digest_for_repo
from agent.reconcile.context import Context
from agent.reconcile.plan import PIN_CONFLICT, Observation
from agent.reconcile.targets import Target
from agent.registries import Confirms, Registry

# Registry lookups in flight at once. One adapter is shared by the threads, which is safe: AliyunRegistry
# builds a new request per call and guards its caches (repo ids, token, hosts) with a lock; AcrRegistry
# makes its per-region clients under a lock; the SDK's AcsClient signs with a stateless AccessKeySigner and
# sends through a requests Session whose urllib3 pool is thread-safe and holds 10 connections (>= 8).
LOOKUPS = 8

Key = tuple[str, RepoKey]  # (watch source, repository)


@dataclass
class Lookups:
    """Per repository: the digests of the watched tags, the tags listed with a bad digest, or the error."""

    found: dict[Key, dict[str, str]] = field(default_factory=dict)
    bad_tags: dict[Key, dict[str, str]] = field(default_factory=dict)
    failed: dict[Key, str] = field(default_factory=dict)


def lookup_all(
    registries: Mapping[str, Registry],
    wanted: dict[Key, set[str]],
    meanwhile: Callable[[], None] = lambda: None,
) -> Lookups:
    """One registry request per distinct repository, at most LOOKUPS at a time, while `meanwhile` runs in
    this thread (observe asks the engines then, so a pass waits for the slower of the two, not their sum)."""
    out = Lookups()

    def one(key: Key) -> None:
        source, repo = key
        try:
            out.found[key] = registries[source].latest(repo, sorted(wanted[key]))
        except TagDigestError as e:  # the good tags of the repository still count
            logger.error("{}: {}", repo, e)
            out.found[key], out.bad_tags[key] = e.found, e.bad
        except AgentError as e:
            logger.error("{}: registry lookup failed: {}", repo, e)
            out.failed[key] = str(e)

    keys = iter(sorted(wanted))
    lock = threading.Lock()
    workers: list[threading.Thread] = []
    bugs: list[BaseException] = []

    def work(n: int) -> None:
        if n > 1:  # each worker starts the next one: the caller starts one thread and goes on `meanwhile`
            start(n - 1)
        while True:
            with lock:
                key = next(keys, None)
            if key is None:
                return
            try:
                one(key)  # each key writes only its own entries
            except BaseException as e:  # a bug: raised in the caller's thread below
                bugs.append(e)

    def start(n: int) -> None:
        t = threading.Thread(target=work, args=(n,), name=f"lookup-{len(workers)}", daemon=True)
        workers.append(t)
        t.start()

    if wanted:
        start(min(LOOKUPS, len(wanted)))
    try:
        meanwhile()
    finally:
        i = 0
        while i < len(workers):  # worker i appends worker i + 1 before it returns
            workers[i].join()
            i += 1
    if bugs:
        raise bugs[0]
    return out


def observe(ctx: Context, watches: Iterable[Watch]) -> list[Observation]:
    """The registry lookups (concurrent), and meanwhile what each target runs."""
    watches = list(watches)
    wanted: dict[Key, set[str]] = defaultdict(set)
    for w in watches:
        wanted[(w.source, w.image.repo)].add(w.image.tag)
    by_target: dict[int, tuple[Target, list[Watch]]] = {}
    for w in watches:
        t = ctx.target(w)
        by_target.setdefault(id(t), (t, []))[1].append(w)
    infos: dict[str, ContainerInfo] = {}
    problems: dict[str, str] = {}

    def targets() -> None:
        for t, ws in by_target.values():
            running, why = t.observe(ws)
            infos.update(running)
            problems.update(why)

    looked = lookup_all(ctx.registries, wanted, meanwhile=targets)
    pins, quarantines = ctx.state.all_pins(), ctx.state.all_quarantined()
    out = []
    for w in watches:
        key = (w.source, w.image.repo)
        error = looked.failed.get(key)
        bad = looked.bad_tags.get(key, {})
        if w.image.tag in bad:
            error = f"ACR listed an invalid digest for tag {w.image.tag!r}: {bad[w.image.tag]!r}"
        pinned = pins.get(w.container)
        tag_digest = looked.found.get(key, {}).get(w.image.tag)
        if pinned is None and tag_digest is not None:
            tag_digest = _confirmed(ctx.registries[w.source], w, infos.get(w.container), tag_digest)
        deployed = pinned is not None and ctx.state.pin_deployed(w.container)
        seen = deployed and (ctx.state.last_check(w.container) or {}).get("error") or ""
        out.append(
            Observation(
                watch=w,
                container=infos.get(w.container),
                tag_digest=tag_digest,
                error=error,
                pinned=pinned,
                quarantined=quarantines.get(w.container, {}),
                runtime_error=problems.get(w.container),
                pin_deployed=deployed,
                pin_reported=seen.startswith(f"{PIN_CONFLICT} {pinned} "),
            )
        )
    return out


def _confirmed(registry: Registry, w: Watch, running: ContainerInfo | None, tag_digest: str) -> str:
    """Where the tag moved away from what runs, the registry's own digest wins over the API's (one HEAD,
    only for an update that is due, so a quiet pass asks nothing more)."""
    if not isinstance(registry, Confirms) or running is None or w.mode == "notify":
        return tag_digest  # monitor-only asks the registry nothing: it never pulls
    if tag_digest in digest_for_repo(list(running.repo_digests), w.image.repo):
        return tag_digest
    return registry.confirm(w.image.repo, w.image.tag, tag_digest)
