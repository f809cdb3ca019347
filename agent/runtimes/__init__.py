"""The Runtime port: what the agent asks of a container engine."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from agent.model import ContainerInfo


@dataclass(frozen=True)
class ContainerState:
    status: str  # created, running, restarting, exited, paused, dead, removing
    running: bool
    restarting: bool
    exit_code: int
    restart_count: int
    health: str | None  # starting, healthy, unhealthy; None without a HEALTHCHECK
    started_at: str
    image_id: str


Labels = dict[str, str] | None  # labels to add to a container


@dataclass(frozen=True)
class ListedContainer:
    """One container as a single listing shows it: no inspect."""

    id: str
    name: str
    image: str  # the reference it was created with, or an image id when that no longer names its image
    running: bool
    labels: dict[str, str]
    network_mode: str = ""


@dataclass(frozen=True)
class Sharer:
    """A container that shares a namespace or volumes with another (`--network/--ipc/--pid container:X`,
    `--volumes-from X`, `--link X`)."""

    id: str
    name: str
    kinds: tuple[str, ...]  # network, ipc, pid, volumes, link
    running: bool
    auto_remove: bool  # started with --rm: the engine removes it once it stops
    labels: dict[str, str]


class Runtime(Protocol):
    def inspect(self, name: str) -> ContainerInfo | None:
        """The container called (or with id) `name`, or None when there is none."""
        ...

    def inspect_all(self, names: Collection[str]) -> dict[str, ContainerInfo]:
        """Many containers at once, for observing; missing names are left out.

        May leave `host_ports` and `static_ip` unset: `inspect()` again before changing a container.
        """
        ...

    def state(self, name: str) -> ContainerState | None: ...

    def engine_id(self) -> str:
        """What identifies the engine, whichever address reaches it."""
        ...

    def list_containers(self, label: str | None = None, *, named: str | None = None) -> list[ListedContainer]:
        """Every container in any state, with one list call; only those carrying `label` (`key` or
        `key=value`), and only those whose name contains `named`, when given (the engine filters)."""
        ...

    def sharers(self, container: str) -> list[Sharer]:
        """Every container on this engine that shares a namespace or volumes with `container`, or links to
        it; none when it is gone."""
        ...

    def recreate_sharer(self, child: str, old_parent: str, new_parent: str, *, start: bool) -> str:
        """Recreate `child` (same image reference and configuration) with each reference to `old_parent` (an
        id) turned into `new_parent`; start it when `start`. Its old container is put back on failure."""
        ...

    def configured_image(self, name: str) -> str | None:
        """The tag reference the container follows (its `cr-agent.image` label, else Config.Image), or None."""
        ...

    def pull(self, reference: str, auth: tuple[str, str] | None = None) -> str:
        """Pull `host/ns/repo@sha256:...`; return the image id. Raises RuntimeFault."""
        ...

    def platform_mismatch(self, image: str) -> str | None:
        """Why `image` cannot run on this engine's OS/architecture, or None when it fits."""
        ...

    def tag(self, image: str, repository: str, tag: str) -> None: ...

    def rename(self, container: str, new_name: str) -> None: ...

    def clone(
        self, source: str, name: str, image: str, *, aliases: bool = True, labels: Labels = None
    ) -> str:
        """Create (not start) container `name` with `source`'s whole configuration and `image`.

        `labels` are added to (or replace) the source's labels.
        Anonymous volumes of `source` are re-attached, never recreated empty. Returns the new id.
        Without `aliases` it joins the networks under its own name only (see `publish`).
        """
        ...

    def publish(self, container: str, source: str) -> None:
        """Give `container` the network aliases of `source` (start-first, once it is proven)."""
        ...

    def start(self, container: str) -> None: ...

    def stop(self, container: str) -> None:
        """Stop honouring the container's own stop signal and stop timeout."""
        ...

    def drain(self, container: str) -> None:
        """Take the container's aliases off its user-defined networks (start-first, once the new one is proven).

        It stays reachable at its address for a grace period, for requests that resolved it just before.
        """
        ...

    def remove(self, container: str) -> None:
        """Force-remove the container. Never removes its volumes."""
        ...

    def logs(self, container: str, tail: int = 50) -> str: ...

    def exists_image(self, ref: str) -> bool: ...

    def image_labels(self, ref: str) -> dict[str, str]:
        """The image's own labels (its OCI `org.opencontainers.image.*` ones among them); {} when missing."""
        ...

    def image_in_use(self, image_id: str) -> bool:
        """Whether any container, in any state, uses the image."""
        ...

    def remove_image(self, ref: str) -> None:
        """Remove without force; a missing image is fine. Raises RuntimeFault when in use."""
        ...


@dataclass(frozen=True)
class ListedService:
    """One Swarm service as the service listing shows it."""

    name: str
    image: str  # the spec's image, repo:tag@sha256:... when pinned
    labels: dict[str, str]  # the service's own labels (not its tasks' container labels)


@dataclass(frozen=True)
class ServiceInfo:
    """A Swarm service, reduced to what the agent needs."""

    id: str
    name: str
    image: str  # the spec's image: repo:tag@sha256:... when pinned, else repo:tag
    digests: tuple[str, ...]  # the pinned digest, else the running tasks' RepoDigests entries
    replicas_running: int
    update_state: str | None  # UpdateStatus.State; None before the first update
    update_message: str
    host_ports: bool  # a host-mode published port: start-first cannot bind it twice on one node
    previous_image: str | None


class ServiceRuntime(Protocol):
    """The Swarm side of an engine: services, driven through the Engine API on a manager."""

    def is_manager(self) -> bool: ...

    def list_services(self) -> list[ListedService]:
        """Every service, one listing; none on an engine that is not a Swarm manager."""
        ...

    def service(self, name: str) -> ServiceInfo | None: ...

    def update(
        self, name: str, image: str, *, monitor: float, order: str | None, auth: tuple[str, str] | None
    ) -> None:
        """Point the service at `image` with FailureAction=rollback and the given Monitor (seconds).

        `order` None keeps the service's own. Raises RuntimeFault.
        """
        ...

    def rollback(self, name: str) -> None:
        """Swarm's own rollback to the PreviousSpec."""
        ...

    def failed_logs(self, name: str, tail: int = 20) -> str:
        """The last log lines of the most recent failed task, when its container is on this node."""
        ...
