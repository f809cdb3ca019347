"""Tag patterns in a pass: each pattern entry becomes an entry for one concrete tag, the newest match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from loguru import logger

from agent.config import Watch
from agent.config.patterns import newest
from agent.errors import AgentError
from agent.model import ImageRef, RepoKey, Result, Status
from agent.registries import Registry
from agent.runtimes import Runtime


def resolve_patterns(
    registries: Mapping[str, Registry], runtime: Runtime, watches: list[Watch]
) -> tuple[list[Watch], list[Result]]:
    """One full tag listing per distinct repository with a pattern entry; fixed tags pass through."""
    out: list[Watch] = []
    done: list[Result] = []
    listings: dict[tuple[str, RepoKey], list[tuple[str, float | None]]] = {}
    for w in watches:
        if w.pattern is None:
            out.append(w)
            continue
        key = (w.source, w.image.repo)
        try:
            if key not in listings:
                listings[key] = registries[w.source].tags(w.image.repo)
            running = running_tag(runtime, w)
        except AgentError as e:
            logger.error("{}: tag list of {} failed: {}", w.container, w.image.repo, e)
            done.append(Result(w.container, str(w.image), Status.FAILED, error=f"tag list: {e}"))
            continue
        listed = listings[key]
        tag = newest(w.pattern, listed, running)
        if tag is None:
            error = f"no tag of {w.image.repo.path} matches {w.pattern} (pre-releases never match)"
            done.append(Result(w.container, str(w.image), Status.FAILED, error=error, tag_pattern=str(w.pattern),
                               running_tag=running))  # fmt: skip
        elif tag == running and tag not in {t for t, _ in listed}:
            note = f"the running tag {running!r} is newer than every match; nothing to do"
            done.append(Result(w.container, str(w.image), Status.UP_TO_DATE, tag_pattern=str(w.pattern),
                               running_tag=running, note=note))  # fmt: skip
        else:
            out.append(replace(w, image=replace(w.image, tag=tag)))
    return out, done


def running_tag(runtime: Runtime, w: Watch) -> str | None:
    """The tag the container was created with, when it names the watched repository."""
    text = runtime.configured_image(w.container)
    try:
        ref = ImageRef.parse(text or "")
    except ValueError:
        return None
    return ref.tag if ref.repo.path == w.image.repo.path else None
