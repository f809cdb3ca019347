"""The ACR repositories whose builds are watched: `watch_builds = true` entries and `[[build_watch]]`."""

from __future__ import annotations

from typing import Any

from agent.choices import Source
from agent.config.fields import Problems, typed, unknown
from agent.config.schema import Watch
from agent.model import ImageRef, RepoKey


def build_repos(p: Problems, value: Any, watches: tuple[Watch, ...], told: bool) -> tuple[RepoKey, ...]:
    """Each repository once. `repository` is `host/ns/name`, or `ns/name` on the first ACR entry's host."""
    repos = [w.image.repo for w in watches if w.watch_builds]
    for w in watches:
        if w.watch_builds and w.source is not Source.ALIYUN:
            p.add(
                f"watch[{watches.index(w)}].watch_builds",
                "only ACR repositories (source = 'aliyun') have builds",
            )
    if not isinstance(value, list):
        p.add("build_watch", 'must be an array of tables ([[build_watch]] repository = "ns/name")')
        value = []
    default_host = next((w.image.host for w in watches if w.source is Source.ALIYUN), None)
    for i, entry in enumerate(value):
        path = f"build_watch[{i}]"
        if not isinstance(entry, dict):
            p.add(path, "must be a table")
            continue
        unknown(p, path, entry, {"repository"})
        text = typed(p, path, entry, "repository", str, None)
        if text is None:
            p.add(f"{path}.repository", 'required: "ns/name", or "host/ns/name" for another registry host')
            continue
        if text.count("/") == 1:
            if default_host is None:
                p.add(f"{path}.repository", "no ACR watch entry to take the host from: give host/ns/name")
                continue
            text = f"{default_host}/{text}"
        try:
            repos.append(ImageRef.parse(text).repo)
        except ValueError as e:
            p.add(f"{path}.repository", str(e))
    if repos and not told:
        p.add("build_watch", "watching ACR builds needs [notify] urls to tell anyone")
    return tuple(dict.fromkeys(repos))
