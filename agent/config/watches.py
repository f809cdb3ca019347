"""[[watch]] entries (and label sets, agent/discover.py) → Watch, validated the same way."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from agent.choices import Sort, Source, Strategy
from agent.config.fields import (
    DAY,
    Problems,
    check_instance_id,
    choice,
    duration,
    mode_of,
    typed,
    unknown,
)
from agent.config.patterns import TagPattern
from agent.config.patterns import parse as parse_pattern
from agent.config.schema import HealthSpec, Watch
from agent.config.signatures import signature_keys
from agent.model import ImageRef

_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def watches_of(p: Problems, value: Any, default_mode: str, discovering: bool = False) -> tuple[Watch, ...]:
    if not isinstance(value, list):
        p.add("watch", "must be an array of tables ([[watch]])")
        return ()
    if not value and not discovering:
        p.add("watch", "no [[watch]] entries: nothing to keep updated (or set [agent] discover)")
    out: list[Watch] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(value):
        path = f"watch[{i}]"
        if not isinstance(entry, dict):
            p.add(path, "must be a table")
            continue
        w = _watch(p, path, entry, default_mode)
        if w is None:
            continue
        if w.container in seen:
            p.add(f"{path}.container", f"{w.container!r} is already watched by watch[{seen[w.container]}]")
        seen[w.container] = i
        out.append(w)
    return tuple(out)


_WATCH_KEYS = {
    "container", "image", "source", "strategy", "health", "min_uptime", "health_timeout",
    "start_stopped", "pre_update", "post_update", "hook_timeout", "mode", "instance_id", "optional", "tag", "tag_regex", "sort",
    "watch_builds",
    "service", "docker_host", "docker_tls_dir", "region", "signatures", "public_keys", "signature_identity",
}  # fmt: skip


_NOT_FOR_SERVICES = (
    "health",
    "start_stopped",
    "pre_update",
    "post_update",
)  # Swarm's HEALTHCHECK gates tasks


def _watch(p: Problems, path: str, t: dict[str, Any], default_mode: str = Watch.mode) -> Watch | None:
    unknown(p, path, t, _WATCH_KEYS)
    ok = True
    container = typed(p, path, t, "container", str, None)
    service = typed(p, path, t, "service", str, None)
    key = "service" if service is not None else "container"
    if container is not None and service is not None:
        p.add(f"{path}.service", "give either container or service, not both")
        ok = False
    container = container if service is None else service
    if container is None:
        p.add(f"{path}.container", "required: the name of the container (or `service`) to keep updated")
        ok = False
    elif not _CONTAINER_NAME.match(container):
        p.add(f"{path}.{key}", f"not a valid {key} name: {container!r}")
        ok = False
    for k in _NOT_FOR_SERVICES if service is not None else ():
        if k in t:
            p.add(
                f"{path}.{k}", "not for a service entry: Swarm's HEALTHCHECK and its rollback gate each task"
            )
    docker_host, tls_dir = _engine(p, path, t)
    image_text = typed(p, path, t, "image", str, None)
    image = None
    if image_text is None:
        p.add(f"{path}.image", "required, e.g. registry.cn-hangzhou.aliyuncs.com/ns/repo:latest")
    else:
        try:
            image = ImageRef.parse(image_text)
        except ValueError as e:
            p.add(f"{path}.image", str(e))
    source = choice(p, path, t, "source", Source) or _source_of(image)
    strategy = choice(p, path, t, "strategy", Strategy)
    strategy = strategy or (Strategy.START_FIRST if service else Watch.strategy)  # Swarm's own default
    health = _health(p, f"{path}.health", t.get("health"))
    min_uptime = duration(p, path, t, "min_uptime", Watch.min_uptime, high=DAY)
    health_timeout = duration(p, path, t, "health_timeout", Watch.health_timeout, low=1.0, high=DAY)
    start_stopped = typed(p, path, t, "start_stopped", bool, Watch.start_stopped)
    pre = typed(p, path, t, "pre_update", str, None)
    post = typed(p, path, t, "post_update", str, None)
    hook_timeout = duration(p, path, t, "hook_timeout", Watch.hook_timeout, low=1.0, high=DAY)
    mode = mode_of(p, path, t, default_mode)
    instance_id = typed(p, path, t, "instance_id", str, None)
    check_instance_id(p, f"{path}.instance_id", instance_id)
    optional = typed(p, path, t, "optional", bool, Watch.optional)
    image, pattern = _tag(p, path, t, image)
    builds = typed(p, path, t, "watch_builds", bool, Watch.watch_builds)
    region = typed(p, path, t, "region", str, None)
    if region is not None and not re.match(r"^[a-z]{2}-[a-z0-9-]+$", region):
        p.add(f"{path}.region", f"not a region id: {region!r} (e.g. 'cn-hangzhou')")
    if region is not None and "source" not in t:  # a custom domain's region: its ACR API answers
        source = Source.ALIYUN
    signed, keys, identity = signature_keys(p, path, t)
    if not ok or image is None or container is None:
        return None
    return Watch(
        container=container,
        image=image,
        source=source,
        strategy=strategy,
        health=health,
        min_uptime=min_uptime,
        health_timeout=health_timeout,
        start_stopped=start_stopped,
        pre_update=pre,
        post_update=post,
        hook_timeout=hook_timeout,
        mode=mode,
        instance_id=instance_id,
        optional=optional,
        pattern=pattern,
        origin="config",
        given=frozenset(t),
        watch_builds=builds,
        service=service,
        docker_host=docker_host,
        docker_tls_dir=tls_dir,
        region=region,
        signatures=signed,
        public_keys=keys,
        signature_identity=identity,
    )


def _source_of(image: ImageRef | None) -> Source:
    """Without `source`: the ACR API for ACR hosts, else the registry's own API."""
    acr = image is None or image.host.split(":")[0].endswith(".aliyuncs.com")
    return Source.ALIYUN if acr else Source.REGISTRY


def _tag(
    p: Problems, path: str, t: dict[str, Any], image: ImageRef | None
) -> tuple[ImageRef | None, TagPattern | None]:
    """`tag` (a fixed tag, or "semver:<range>"), `tag_regex` and `sort`."""
    tag = typed(p, path, t, "tag", str, None)
    regex = typed(p, path, t, "tag_regex", str, None)
    sort = choice(p, path, t, "sort", Sort)
    try:
        pattern = parse_pattern(tag, regex, sort)
    except ValueError as e:
        p.add(f"{path}.{'tag_regex' if regex is not None else 'tag'}", str(e))
        return image, None
    if pattern is None and tag is not None and image is not None:
        try:
            image = ImageRef.parse(f"{image.repository}:{tag}")
        except ValueError as e:
            p.add(f"{path}.tag", str(e))
    return image, pattern


def watch_from_table(path: str, table: dict[str, Any], default_mode: str) -> tuple[Watch | None, list[str]]:
    """One watch entry validated like [[watch]]; problems are named from `path` (a label prefix too)."""
    p = Problems()
    w = _watch(p, path, table, default_mode)
    return (None if p.items else w), p.items


def _engine(p: Problems, path: str, t: dict[str, Any]) -> tuple[str | None, Path | None]:
    host = typed(p, path, t, "docker_host", str, None)
    tls = typed(p, path, t, "docker_tls_dir", str, None)
    if host is not None and not host.startswith(("unix:///", "tcp://", "ssh://")):
        p.add(f"{path}.docker_host", f"must start with unix:///, tcp:// or ssh://, got {host!r}")
        host = None
    if tls is not None and (host is None or not host.startswith("tcp://")):
        p.add(f"{path}.docker_tls_dir", "only with a tcp:// docker_host")
    if tls is not None and not Path(tls).is_dir():
        p.add(f"{path}.docker_tls_dir", f"not a directory: {tls!r} (it holds ca.pem, cert.pem, key.pem)")
    return host, Path(tls) if tls is not None else None


def _health(p: Problems, path: str, value: Any) -> HealthSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        p.add(path, 'must be a table, e.g. { http = "http://127.0.0.1:8080/healthz" }')
        return None
    unknown(p, path, value, {"http", "expect_status", "tcp", "timeout", "interval"})
    http = typed(p, path, value, "http", str, None)
    tcp = typed(p, path, value, "tcp", str, None)
    if bool(http) == bool(tcp):
        p.add(path, "give exactly one of http or tcp")
    if http and not re.match(r"^https?://[^/\s]+", http):
        p.add(f"{path}.http", f"expected an http:// or https:// URL, got {http!r}")
    if tcp and not re.match(r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$", tcp):
        p.add(f"{path}.tcp", f"expected host:port, got {tcp!r}")
    status = typed(p, path, value, "expect_status", int, HealthSpec.expect_status)
    if not 100 <= status <= 599:
        p.add(f"{path}.expect_status", "must be an HTTP status code")
    timeout = duration(p, path, value, "timeout", HealthSpec.timeout, low=0.01, high=3600.0)
    interval = duration(p, path, value, "interval", HealthSpec.interval, low=0.01, high=3600.0)
    return HealthSpec(http, status, tcp, timeout, interval)
