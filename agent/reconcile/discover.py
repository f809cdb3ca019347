"""Watch entries from labels (`[agent] discover`): containers', and Swarm services' on a manager.

Pure but for one container list (and one service list) per pass.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger

from agent.config import Config, Watch, watch_from_table
from agent.config.labels import (
    ENABLE,
    FROM_WT_MONITOR_ONLY,
    IMAGE,
    PREFIX,
    SETTINGS,
    WATCHTOWER,
    WT_ENABLE,
    WT_MONITOR_ONLY,
)
from agent.errors import AgentError
from agent.model import NEW_SUFFIX, OLD_SUFFIX, Result, Status
from agent.runtimes import ListedContainer, ListedService, Runtime, ServiceRuntime

_TEMPORARY = (OLD_SUFFIX, NEW_SUFFIX)  # the agent's own names during a replacement
SWARM_TASK = "com.docker.swarm.service.id"  # on a service's task containers: Swarm replaces those, not us
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Discovered:
    watches: tuple[Watch, ...]
    failed: tuple[Result, ...]  # a bad label fails its own container only
    skipped: tuple[Result, ...] = ()


def wanted(mode: str, labels: dict[str, str]) -> bool | str:
    """True/False, or an error naming the label when `cr-agent.enable` is not a boolean.

    Watchtower's `com.centurylinklabs.watchtower.enable` counts the same when ours is absent.
    """
    label = ENABLE if ENABLE in labels else WT_ENABLE
    value = labels.get(label)
    if value is None:
        return mode == "all"
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    return f"{label}: expected true or false, got {value!r}"


def table(name: str, image: str, labels: dict[str, str], kind: str = "container") -> dict[str, Any]:
    """The [[watch]] table the labels describe (kind "service": a `service = name` entry)."""
    out: dict[str, Any] = {kind: name, "image": image}
    for key in SETTINGS:
        value = labels.get(f"{PREFIX}.{key}")
        if value is None:
            continue
        if key.startswith("health."):
            out.setdefault("health", {})[key.split(".", 1)[1]] = value
        else:
            out[key] = value
    if "mode" not in out and labels.get(WT_MONITOR_ONLY, "").strip().lower() in _TRUE:
        out["mode"] = "notify"  # Watchtower's monitor-only
    return out


def watchtower_hint(listed: Collection[ListedContainer]) -> str | None:
    """For `check` with discovery off: what to set when containers carry Watchtower's labels."""
    names = sorted(c.name for c in listed if any(k.startswith(WATCHTOWER + ".") for k in c.labels))
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"{len(names)} container(s) carry Watchtower labels ({shown}) but label discovery is off: "
        f'set [agent] discover = "labels" to follow those labelled {WT_ENABLE}=true '
        f'(or discover = "all"); see docs/watchtower.md'
    )


def from_listing(
    cfg: Config,
    listed: list[ListedContainer],
    configured_image: Any,
    sources: Collection[str],
    services: Collection[ListedService] = (),
) -> Discovered:
    """Watch entries for the listed containers and services that opt in (or don't opt out, with "all").

    `configured_image(name)` is asked only for an opted-in container whose listing shows an image id.
    A [[watch]] entry for the same name wins over its labels.
    """
    mode = cfg.agent.discover
    if mode is None:
        return Discovered((), ())
    configured = {w.container for w in cfg.watches}
    found = _Found(cfg, sources)
    for c in sorted(listed, key=lambda c: c.name):
        skip = c.name.endswith(_TEMPORARY) or "/" in c.name or SWARM_TASK in c.labels
        if c.name in configured or skip or wanted(mode, c.labels) is False:
            continue
        image = c.labels.get(IMAGE) or c.image
        if "@" in image or image.startswith("sha256:") or not image:
            image = configured_image(c.name) or image
        found.add("container", c.name, image, c.labels)
    for s in sorted(services, key=lambda s: s.name):
        if s.name not in configured and wanted(mode, s.labels) is not False:
            found.add("service", s.name, s.labels.get(IMAGE) or s.image.partition("@")[0], s.labels)
    return Discovered(tuple(found.watches), tuple(found.failed), tuple(found.skipped))


@dataclass
class _Found:
    """The entries, failures (a bad label fails its own container or service) and skips of one listing."""

    cfg: Config
    sources: Collection[str]
    watches: list[Watch] = field(default_factory=list)
    failed: list[Result] = field(default_factory=list)
    skipped: list[Result] = field(default_factory=list)

    def add(self, kind: str, name: str, image: str, labels: dict[str, str]) -> None:
        want = wanted(str(self.cfg.agent.discover), labels)
        if isinstance(want, str):
            self.failed.append(Result(name, image, Status.FAILED, error=f"label {want}"))
            return
        t = table(name, image, labels, kind)
        watch, problems = watch_from_table(PREFIX, t, self.cfg.agent.mode)
        if self.cfg.agent.discover == "all" and ENABLE not in labels and _image_problem(problems):
            why = f"not followed: {image!r} names no registry tag (label it {ENABLE}=false to silence this)"
            self.skipped.append(Result(name, image, Status.SKIPPED, error=why))
        elif watch is None:
            error = "; ".join(_as_label(x, kind) for x in problems)
            self.failed.append(Result(name, image, Status.FAILED, error=error))
        elif watch.source not in self.sources:
            error = (
                f"source {watch.source!r} is not set up: give an AccessKey ([aliyun] or "
                "ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET) or a credential chain source (docs/acr.md#credentials)"
            )
            self.failed.append(Result(name, image, Status.FAILED, error=error))
        else:
            given = frozenset(t) - {kind}
            if "mode" in t and f"{PREFIX}.mode" not in labels:
                given |= {FROM_WT_MONITOR_ONLY}
            self.watches.append(replace(watch, origin="labels", given=given))


def _image_problem(problems: list[str]) -> bool:
    return any(x.startswith(f"{PREFIX}.image:") for x in problems)


def _as_label(problem: str, kind: str = "container") -> str:
    """`cr-agent.strategy: …` is already the label's name; the image comes from the container or service."""
    if problem.startswith(f"{PREFIX}.image:"):
        return f"image (from {IMAGE} or the {kind}'s own config){problem[len(PREFIX) + 6 :]}"
    return f"label {problem}"


def discover(
    cfg: Config, runtime: Runtime, sources: Collection[str], services: ServiceRuntime | None = None
) -> Discovered:
    """One container list; an inspect only for an opted-in container the listing shows by image id.

    With `services`, one service list too: none (quietly) when the engine is not a Swarm manager.
    """
    if cfg.agent.discover is None:
        return Discovered((), ())
    listed = runtime.list_containers()
    more: list[ListedService] = []
    try:
        more = services.list_services() if services is not None else []
    except AgentError as e:  # the containers are still followed
        logger.error("label discovery of Swarm services failed: {}", e)
    return from_listing(cfg, listed, runtime.configured_image, sources, more)
