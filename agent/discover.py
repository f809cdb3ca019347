"""Watch entries from container labels (`[agent] discover`). Pure but for one container list per pass."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from agent.config import Config, Watch, watch_from_table
from agent.model import Result, Status
from agent.runtimes import ListedContainer, Runtime

PREFIX = "cr-agent"
ENABLE = f"{PREFIX}.enable"
IMAGE = f"{PREFIX}.image"  # written by the agent on a replacement (runtimes/docker.py), or by the user
# label → [[watch]] key; a nested key is a dotted path ("health.http")
SETTINGS = ("strategy", "health.http", "health.tcp", "min_uptime", "mode", "tag", "source")
_TEMPORARY = ("--cr-agent-old", "--cr-agent-new")  # the agent's own names during a replacement
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Discovered:
    watches: tuple[Watch, ...]
    failed: tuple[Result, ...]  # a bad label fails its own container only
    skipped: tuple[Result, ...] = ()


def wanted(mode: str, labels: dict[str, str]) -> bool | str:
    """True/False, or an error naming the label when `cr-agent.enable` is not a boolean."""
    value = labels.get(ENABLE)
    if value is None:
        return mode == "all"
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    return f"{ENABLE}: expected true or false, got {value!r}"


def table(name: str, image: str, labels: dict[str, str]) -> dict[str, Any]:
    """The [[watch]] table the labels describe."""
    out: dict[str, Any] = {"container": name, "image": image}
    for key in SETTINGS:
        value = labels.get(f"{PREFIX}.{key}")
        if value is None:
            continue
        if key.startswith("health."):
            out.setdefault("health", {})[key.split(".", 1)[1]] = value
        else:
            out[key] = value
    return out


def from_listing(
    cfg: Config,
    listed: list[ListedContainer],
    configured_image: Any,
    sources: Collection[str],
) -> Discovered:
    """Watch entries for the listed containers that opt in (or don't opt out, with "all").

    `configured_image(name)` is asked only for an opted-in container whose listing shows an image id.
    A [[watch]] entry for the same container wins over its labels.
    """
    mode = cfg.agent.discover
    if mode is None:
        return Discovered((), ())
    configured = {w.container for w in cfg.watches}
    watches: list[Watch] = []
    failed: list[Result] = []
    skipped: list[Result] = []
    for c in sorted(listed, key=lambda c: c.name):
        if c.name in configured or c.name.endswith(_TEMPORARY) or "/" in c.name:
            continue
        want = wanted(mode, c.labels)
        if want is False:
            continue
        image = c.labels.get(IMAGE) or c.image
        if "@" in image or image.startswith("sha256:") or not image:
            image = configured_image(c.name) or image
        if isinstance(want, str):
            failed.append(Result(c.name, image, Status.FAILED, error=f"label {want}"))
            continue
        t = table(c.name, image, c.labels)
        watch, problems = watch_from_table(PREFIX, t, cfg.agent.mode)
        if mode == "all" and ENABLE not in c.labels and _image_problem(problems):
            why = f"not followed: {image!r} names no registry tag (label it {ENABLE}=false to silence this)"
            skipped.append(Result(c.name, image, Status.SKIPPED, error=why))
            continue
        if watch is None:
            failed.append(
                Result(c.name, image, Status.FAILED, error="; ".join(_as_label(x) for x in problems))
            )
            continue
        if watch.source not in sources:
            error = f"source {watch.source!r} is not set up: add the [aliyun] credentials"
            failed.append(Result(c.name, image, Status.FAILED, error=error))
            continue
        watches.append(replace(watch, origin="labels", given=frozenset(t) - {"container"}))
    return Discovered(tuple(watches), tuple(failed), tuple(skipped))


def _image_problem(problems: list[str]) -> bool:
    return any(x.startswith(f"{PREFIX}.image:") for x in problems)


def _as_label(problem: str) -> str:
    """`cr-agent.strategy: …` is already the label's name; the image comes from the container."""
    if problem.startswith(f"{PREFIX}.image:"):
        return f"image (from {IMAGE} or the container's own config){problem[len(PREFIX) + 6 :]}"
    return f"label {problem}"


def discover(cfg: Config, runtime: Runtime, sources: Collection[str]) -> Discovered:
    """One container list; an inspect only for an opted-in container the listing shows by image id."""
    if cfg.agent.discover is None:
        return Discovered((), ())
    return from_listing(cfg, runtime.list_containers(), runtime.configured_image, sources)


def origins(w: Watch) -> dict[str, str]:
    """Where each setting of an entry came from: its [[watch]] entry, a label, the container, a default."""
    out = {}
    for key in ("image", "tag", "source", "strategy", "health", "min_uptime", "mode"):
        if w.origin == "config":
            given = key in w.given or (key == "tag" and {"tag_regex", "sort"} & w.given)
            out[key] = "config" if given else "default"
        elif key == "image":
            out[key] = "container"
        elif key in w.given:
            out[key] = "label " + ", ".join(f"{PREFIX}.{k}" for k in SETTINGS if k.split(".")[0] == key)
        else:
            out[key] = "default"
    return out


def describe(w: Watch) -> str:
    """One line for `agent check` and `agent status`: the entry and where each setting came from."""
    where = ", ".join(f"{k} from {v}" for k, v in origins(w).items() if v != "default")
    pattern = f", tag pattern {w.pattern}" if w.pattern else ""
    mode = ", monitor only" if w.mode == "notify" else ""
    head = "[[watch]]" if w.origin == "config" else "labels"
    return f"{w.container} ← {w.image} ({head}: source {w.source}, strategy {w.strategy}{pattern}{mode}; {where})"
