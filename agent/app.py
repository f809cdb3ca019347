"""The composition root: the one module that picks and constructs the adapters (and so the SDK clients).

The CLI and the daemon ask it for a `Context`; nothing else builds a registry, a runtime or a State.
Imports stay inside the functions, so `agent once` loads only the adapters its watches use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agent.choices import Source
from agent.config import Config, Watch
from agent.deploy import Deployer
from agent.deploy.service import ServiceDeployer
from agent.errors import AgentError
from agent.model import ContainerInfo, Report
from agent.reconcile.discover import Discovered, discover
from agent.reconcile.run import Context
from agent.reconcile.selfcontainer import agent_command, own_container_id
from agent.reconcile.targets import ContainerTarget, ServiceTarget
from agent.registries import ListsBuilds, PrivateCA
from agent.state import ScopedState, State

if TYPE_CHECKING:
    from agent.metrics import Metrics
    from agent.notify.book import NoticeBook
    from agent.notify.text import Item
    from agent.reconcile.discover import Discovered
    from agent.reconcile.run import Context
    from agent.reconcile.targets import Target
    from agent.registries import Registry
    from agent.runtimes import Runtime, ServiceRuntime
    from agent.runtimes.docker import DockerRuntime
    from agent.runtimes.pull import PullProgress
    from agent.state import State


def _configured_auth(cfg: Config) -> Callable[[str], tuple[str, str] | None]:
    def auth(host: str) -> tuple[str, str] | None:
        a = cfg.registry_auth.get(host)
        return (a.username, a.password.reveal()) if a else None

    return auth


def _oci(cfg: Config, metrics: Metrics | None) -> Registry:
    from agent.registries.oci import OciRegistry  # each adapter only when a watch uses it

    return OciRegistry(auth=_configured_auth(cfg))


def _aliyun(cfg: Config, metrics: Metrics | None) -> Registry:
    """ACR: one API client per (region, edition, instance) of the watched hosts, made on first use."""
    from agent.registries.acr import AcrRegistry  # the ACR SDK only when an ACR watch needs it
    from agent.registries.dockercfg import docker_config_auth  # only when an ACR watch needs it

    configured = _configured_auth(cfg)
    return AcrRegistry(
        cfg.aliyun,
        state_dir=cfg.agent.state_dir,
        instance_ids={w.image.host: w.instance_id for w in cfg.watches if w.instance_id},
        regions={w.image.host: w.region for w in cfg.watches if w.region},
        host_auth=lambda host: configured(host) or docker_config_auth(host),
        on_request=metrics.record_api if metrics is not None else None,
    )


# watch source -> the registry adapter for it; built only when a watch uses that source
REGISTRIES: dict[Source, Callable[[Config, Metrics | None], Registry]] = {
    Source.ALIYUN: _aliyun,
    Source.REGISTRY: _oci,
}


def sources(cfg: Config) -> list[Source]:
    """The registries a pass asks, and so the sources label discovery accepts: the watches' own, ACR for
    build notices, and with discovery the OCI registry, plus ACR when there are keys to ask it (a static key, or
    a source of the credential chain set up here)."""
    out = {w.source for w in cfg.watches} | ({Source.ALIYUN} if cfg.build_watch else set())
    if cfg.agent.discover is not None:
        out.add(Source.REGISTRY)
        from agent.registries.credentials import (
            chain_may_answer,  # the credentials module: only for ACR watches
        )

        if (cfg.aliyun.access_key_id and cfg.aliyun.access_key_secret) or chain_may_answer():
            out.add(Source.ALIYUN)
    return sorted(out)


def discovered(cfg: Config, rt: Runtime | None = None, services: ServiceRuntime | None = None) -> Discovered:
    """The label-discovered entries and failures now (one container listing, and one service listing on a
    Swarm manager), for `check` and `status`. Without `rt`, the local engine's containers and services."""

    if cfg.agent.discover is None:  # no engine call, not even a client
        return Discovered((), ())
    if rt is None:
        local = runtime(cfg)
        rt, services = local, local_services(cfg, local)
    return discover(cfg, rt, sources(cfg), services)


def runtime(cfg: Config, on_progress: Callable[[str, PullProgress], None] | None = None) -> DockerRuntime:
    from agent.runtimes.docker import DockerRuntime  # the docker SDK: not for `check`

    return DockerRuntime(
        pull_timeout=cfg.agent.pull_timeout, pull_stall=cfg.agent.pull_stall, on_progress=on_progress
    )


def state(cfg: Config) -> State:
    from loguru import logger

    st = State(cfg.agent.state_dir)
    if st.moved_aside is not None:
        logger.warning(
            "the journal of interrupted replacements was lost with {}: check that these containers exist "
            "and run the image you expect, and look for *--cr-agent-old / *--cr-agent-new ones: {}",
            st.moved_aside,
            ", ".join(w.container for w in cfg.watches),
        )
    return st


def build_context(
    cfg: Config,
    *,
    stop: threading.Event | None = None,
    metrics: Metrics | None = None,
    on_progress: Callable[[str, PullProgress], None] | None = None,
) -> Context:
    """Everything one pass needs, for `agent once`, `agent rollback` and the daemon."""

    registries: dict[str, Registry] = {source: REGISTRIES[source](cfg, metrics) for source in sources(cfg)}

    stop = stop or threading.Event()  # one stop for every deployer of the pass

    rt, st = runtime(cfg, on_progress), state(cfg)
    elsewhere = {w.container for w in cfg.watches if w.docker_host is not None}
    scoped = ScopedState(st, lambda name: name not in elsewhere)  # other engines recover their own
    deployer = Deployer(rt, scoped, stop=stop, keep_images=cfg.agent.keep_images)
    listeners: list[Callable[[Report, float], None]] = []
    if metrics is not None:
        listeners.append(metrics.record_pass)
    if cfg.notify is not None:
        from agent.notify.book import NoticeBook  # only with [notify]
        from agent.notify.send import Notifier  # apprise: only with [notify]

        book = NoticeBook(cfg.agent.state_dir)
        acr = registries.get(Source.ALIYUN)
        more: list[Callable[[], list[Item]]] = []
        if cfg.build_watch and isinstance(acr, ListsBuilds):
            more.append(_build_watch(cfg, acr, book))
        listeners.append(Notifier(cfg.notify, book, sources=more, agent=_agent_command(rt)).on_pass)

    def on_pass(report: Report, seconds: float) -> None:
        for listener in listeners:
            listener(report, seconds)

    return Context(
        cfg, registries, rt, st, deployer, on_pass, *_self_update(cfg), _targets(cfg, st, stop, rt),
        signature_reader(registries),
    )  # fmt: skip


def signature_reader(registries: Mapping[str, Registry]) -> Callable[[Watch, tuple[str, str] | None], Any]:
    """Reads an entry's cosign signatures from its registry with the pull's credentials (docker's own
    login when the pull uses docker's), over the registry's CA like its HEADs."""

    def reader(w: Watch, auth: tuple[str, str] | None) -> Any:
        from agent.registries.dockercfg import docker_config_auth  # only when a signature is read
        from agent.registries.oci import OciRegistry  # only when a signature is read

        creds = auth or docker_config_auth(w.image.host)
        registry = registries.get(w.source)
        cafile = registry.cafile if isinstance(registry, PrivateCA) else None  # ACR's [aliyun] ca_file
        return OciRegistry(auth=lambda host: creds, cafile=cafile)

    return reader


def _targets(
    cfg: Config, st: State, stop: threading.Event, local: DockerRuntime
) -> dict[tuple[str, str | None], Target]:
    """Per engine: a Swarm target for service entries (on the local engine too when labels may name
    services); a container target for other engines' containers. Each recovers only its own entries."""
    from agent.runtimes.docker import DockerRuntime  # the docker SDK: not for `check`
    from agent.runtimes.engines import client_for  # the docker SDK: not for `check`
    from agent.runtimes.swarm import SwarmRuntime  # the docker SDK: not for `check`

    out: dict[tuple[str, str | None], Target] = {}
    elsewhere = {w.container for w in cfg.watches if w.docker_host is not None}
    for host in sorted({w.docker_host or "" for w in cfg.watches} | ({""} if cfg.agent.discover else set())):
        on_host = [w for w in cfg.watches if (w.docker_host or "") == host]
        names = frozenset(w.container for w in on_host)
        scoped = ScopedState(st, names.__contains__ if host else lambda name: name not in elsewhere)
        tls = next((w.docker_tls_dir for w in on_host if w.docker_tls_dir), None)
        client = client_for(host, tls) if host else local.client
        if any(w.kind == "service" for w in on_host) or (not host and cfg.agent.discover):
            services = SwarmRuntime(client)
            out[("service", host or None)] = ServiceTarget(
                services, ServiceDeployer(services, scoped, stop=stop), host or None
            )
        if host and any(w.kind == "container" for w in on_host):
            rt = DockerRuntime(client, pull_timeout=cfg.agent.pull_timeout, pull_stall=cfg.agent.pull_stall)
            deployer = Deployer(rt, scoped, stop=stop, keep_images=cfg.agent.keep_images)
            out[("container", host)] = ContainerTarget(rt, deployer, host)
    return out


def observer(
    cfg: Config, st: State, rt: DockerRuntime
) -> Callable[[Watch], tuple[ContainerInfo | None, str | None]]:
    """What one entry's target runs now, on its own engine (a container or a service), and why it cannot
    be told; for `agent status`."""

    targets = _targets(cfg, st, threading.Event(), rt)
    targets.setdefault(("container", None), ContainerTarget(rt, Deployer(rt, st)))

    def observe(w: Watch) -> tuple[ContainerInfo | None, str | None]:
        found, problems = targets[(w.kind, w.docker_host)].observe([w])
        return found.get(w.container), problems.get(w.container)

    return observe


def local_services(cfg: Config, local: DockerRuntime) -> ServiceRuntime | None:
    """The local engine's services, for label discovery; None when labels are not used."""
    from agent.runtimes.swarm import SwarmRuntime  # the docker SDK: not for `check`

    return SwarmRuntime(local.client) if cfg.agent.discover is not None else None


def _build_watch(cfg: Config, acr: ListsBuilds, book: NoticeBook) -> Callable[[], list[Item]]:
    """The ACR build records worth telling, one request per watched repository."""
    from agent.notify.buildwatch import BuildSource, BuildWatch  # only with build watches

    assert cfg.notify is not None
    watch = BuildWatch(book, cfg.notify.stuck_after)
    return BuildSource(acr.builds, cfg.build_watch, watch)


def _agent_command(rt: DockerRuntime) -> str:
    """`agent`, or `docker exec NAME agent` when the agent runs in container NAME (for undo/retry hints)."""

    own = own_container_id()
    try:
        info = rt.inspect(own) if own else None
    except AgentError:
        info = None
    return agent_command(info.name if info else None)


def _self_update(cfg: Config) -> tuple[str | None, Callable[[str], str] | None]:
    """The agent's own container id, and how to start the helper that replaces it."""

    own = own_container_id()
    if own is None or not cfg.agent.self_update or cfg.path is None:
        return own, None
    from agent.runtimes.helper import start_self_update_helper  # the docker SDK, only for self_update

    config_path = str(cfg.path.resolve())
    return own, lambda target: start_self_update_helper(own, target, config_path)
