"""Small hand-written fakes for the ports. They count calls and fail on request."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace

from agent.errors import RegistryError, RuntimeFault
from agent.model import ContainerInfo, RepoKey
from agent.runtimes import ContainerState, Labels, ListedContainer, Sharer, sharing
from agent.runtimes.relabel import relabel


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    image_id: str
    running: bool = False
    exit_code: int = 0
    restart_count: int = 0
    health: str | None = None
    host_ports: bool = False
    cloned_from: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    started: bool = True
    network_mode: str = ""
    ipc_mode: str = ""
    pid_mode: str = ""
    volumes_from: tuple[str, ...] = ()
    links: tuple[str, ...] = ()  # the engine's form: "/target:/self/alias"
    auto_remove: bool = False

    def host_config(self) -> dict[str, object]:
        return {"NetworkMode": self.network_mode, "IpcMode": self.ipc_mode, "PidMode": self.pid_mode,
                "VolumesFrom": list(self.volumes_from), "Links": list(self.links), "AutoRemove": self.auto_remove}  # fmt: skip


@dataclass
class FakeRuntime:
    """Containers in a dict. `images` maps a pull reference's digest to (image_id, repo_digests)."""

    containers: dict[str, FakeContainer] = field(default_factory=dict)
    images: dict[str, tuple[str, ...]] = field(default_factory=dict)  # image_id -> RepoDigests
    fail: dict[str, Exception] = field(default_factory=dict)  # method -> error raised once
    on_start: dict[str, str] = field(default_factory=dict)  # image ref -> behaviour: crash|unhealthy|healthy
    platforms: dict[str, str] = field(default_factory=dict)  # image id -> why it does not fit this host
    pull_auths: list[tuple[str, str] | None] = field(default_factory=list)
    labels_of: dict[str, dict[str, str]] = field(default_factory=dict)  # image id -> the image's labels
    calls: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(
        self, name: str, image_id: str, repo_digests: tuple[str, ...], running: bool = True, **kw: object
    ) -> str:
        cid = f"{next(self._ids):064x}"
        self.images[image_id] = repo_digests
        self.containers[cid] = FakeContainer(cid, name, "img", image_id, running, **kw)  # type: ignore[arg-type]
        return cid

    def _maybe_fail(self, method: str) -> None:
        self.calls[method] += 1
        if method in self.fail:
            raise self.fail.pop(method)

    def _get(self, name: str) -> FakeContainer:
        for c in self.containers.values():
            if name in (c.id, c.name):
                return c
        raise RuntimeFault(f"no such container: {name}")

    def lookup(self, name: str) -> FakeContainer | None:
        try:
            return self._get(name)
        except RuntimeFault:
            return None

    def by_name(self) -> dict[str, FakeContainer]:
        return {c.name: c for c in self.containers.values()}

    # the Runtime port
    def inspect(self, name: str) -> ContainerInfo | None:
        c = self.lookup(name)
        if c is None:
            return None
        state = "running" if c.running else "exited"
        return ContainerInfo(c.id, c.name, c.image_id, self.images.get(c.image_id, ()), c.running, c.host_ports,
                             state=state, exit_code=c.exit_code)  # fmt: skip

    def engine_id(self) -> str:
        return "fake-engine"

    def image_of(self, ref: str) -> str:
        """The image id a create with `ref` (tag, digest reference or id) gets."""
        if ref in self.images:
            return ref
        by_digest = [i for i, digests in self.images.items() if ref in digests]
        return by_digest[0] if by_digest else getattr(self, "tags", {}).get(ref, "sha256:" + "0" * 64)

    def inspect_all(self, names: Collection[str]) -> dict[str, ContainerInfo]:
        self._maybe_fail("inspect_all")
        return {n: info for n in names if (info := self.inspect(n)) is not None}

    def list_containers(self, label: str | None = None, *, named: str | None = None) -> list[ListedContainer]:
        self._maybe_fail(
            "list_containers(named)"
            if named
            else "list_containers"
            if label is None
            else "list_containers(label)"
        )
        key, eq, value = (label or "").partition("=")
        return [
            ListedContainer(c.id, c.name, c.image, c.running, dict(c.labels), c.network_mode)
            for c in self.containers.values()
            if (label is None or (key in c.labels and (not eq or c.labels[key] == value)))
            and (named is None or named in c.name)
        ]

    def sharers(self, container: str) -> list[Sharer]:
        self._maybe_fail("sharers")
        x = self.lookup(container)
        if x is None:
            return []
        out = []
        for c in self.containers.values():
            shared = sharing.kinds(c.host_config(), x.id, x.name) if c.id != x.id else ()
            if shared:
                out.append(Sharer(c.id, c.name, shared, c.running, c.auto_remove, dict(c.labels)))
        return sorted(out, key=lambda s: s.name)

    def recreate_sharer(self, child: str, old_parent: str, new_parent: str, *, start: bool) -> str:
        self._maybe_fail("recreate_sharer")
        c = self._get(child)
        host = c.host_config()
        sharing.rewrite(host, old_parent, "", new_parent)
        volumes = tuple(str(v) for v in host["VolumesFrom"] or ())  # type: ignore[attr-defined]
        for ref in [*_donors(host), *(v.split(":")[0] for v in volumes)]:
            self._get(ref)  # like the engine, create refuses a missing one
        self.log.append(f"recreate {c.name}")
        del self.containers[c.id]
        cid = f"{next(self._ids):064x}"
        self.containers[cid] = replace(
            c, id=cid, cloned_from=c.id, network_mode=str(host["NetworkMode"]), ipc_mode=str(host["IpcMode"]),
            pid_mode=str(host["PidMode"]), volumes_from=volumes, running=False,
        )  # fmt: skip
        if start:
            self.start(cid)
        return cid

    def configured_image(self, name: str) -> str | None:
        self._maybe_fail("configured_image")
        c = self.lookup(name)
        return None if c is None else c.labels.get("cr-agent.image") or c.image

    def state(self, name: str) -> ContainerState | None:
        if "state" in self.fail:
            self._maybe_fail("state")
        c = self.lookup(name)
        if c is None:
            return None
        status = "running" if c.running else "exited" if c.started else "created"
        return ContainerState(
            status, c.running, False, c.exit_code, c.restart_count, c.health, "", c.image_id
        )

    def pull(self, reference: str, auth: tuple[str, str] | None = None) -> str:
        self.pull_auths.append(auth)
        self._maybe_fail("pull")
        self.log.append(f"pull {reference}")
        repo, _, digest = reference.partition("@")
        image_id = "sha256:" + digest[7:15] * 8
        self.images[image_id] = (f"{repo}@{digest}",)
        return image_id

    def platform_mismatch(self, image: str) -> str | None:
        return self.platforms.get(image)

    def tag(self, image: str, repository: str, tag: str) -> None:
        self._maybe_fail("tag")
        self.log.append(f"tag {image[:15]} {repository}:{tag}")
        self.tags = getattr(self, "tags", {})
        self.tags[f"{repository}:{tag}"] = image

    def rename(self, container: str, new_name: str) -> None:
        self._maybe_fail("rename")
        c = self._get(container)
        if self.lookup(new_name) is not None:
            raise RuntimeFault(f"name {new_name} in use")
        self.log.append(f"rename {c.name} {new_name}")
        c.name = new_name

    def publish(self, container: str, source: str) -> None:
        self._maybe_fail("publish")
        self.log.append(f"publish {self._get(container).name}")

    def clone(
        self, source: str, name: str, image: str, *, aliases: bool = True, labels: Labels = None
    ) -> str:
        self._maybe_fail("clone")
        src = self._get(source)
        if self.lookup(name) is not None:
            raise RuntimeFault(f"name {name} in use")
        cid = f"{next(self._ids):064x}"
        self.containers[cid] = replace(src, id=cid, name=name, image=image, image_id=self.image_of(image),
                                       running=False, restart_count=0, health=None, cloned_from=src.id,
                                       labels={**relabel(src.labels, src.image, "", image), **(labels or {})},
                                       started=False)  # fmt: skip
        self.log.append(f"clone {src.name} {name}")
        return cid

    def start(self, container: str) -> None:
        self._maybe_fail("start")
        c = self._get(container)
        for ref in _donors(c.host_config()):  # like the engine: a namespace is joined at start
            donor = self.lookup(ref)
            if donor is None or not donor.running:
                raise RuntimeFault(f"start {c.name}: cannot join the namespace of {ref[:12]}: not running")
        self.log.append(f"start {c.name}")
        c.started = True
        behaviour = self.on_start.get(c.image, "running") if c.cloned_from else "running"
        if behaviour == "crash":
            c.running, c.exit_code = False, 1
            return
        c.running = True
        c.health = {"healthy": "healthy", "unhealthy": "unhealthy", "starting": "starting"}.get(behaviour)

    def stop(self, container: str) -> None:
        self._maybe_fail("stop")
        c = self._get(container)
        self.log.append(f"stop {c.name}")
        c.running = False
        for other in list(self.containers.values()):  # its PID namespace ends: who joins it dies
            if other.pid_mode == f"container:{c.id}" and other.running:
                other.running, other.exit_code = False, 137
        if c.auto_remove:
            del self.containers[c.id]

    def drain(self, container: str) -> None:
        self._maybe_fail("drain")
        self.log.append(f"drain {self._get(container).name}")

    def remove(self, container: str) -> None:
        self._maybe_fail("remove")
        c = self.lookup(container)
        if c is None:  # like the engine adapter: already gone is fine
            return
        self.log.append(f"remove {c.name}")
        del self.containers[c.id]

    def image_labels(self, ref: str) -> dict[str, str]:
        return dict(self.labels_of.get(self.image_of(ref), {}))

    def exists_image(self, ref: str) -> bool:
        return any(ref in digests for digests in self.images.values()) or ref in self.images

    def image_in_use(self, image_id: str) -> bool:
        return any(c.image_id == image_id for c in self.containers.values())

    def remove_image(self, ref: str) -> None:
        self._maybe_fail("remove_image")
        self.log.append(f"remove_image {ref[:15]}")
        self.images.pop(ref, None)

    def logs(self, container: str, tail: int = 50) -> str:
        return f"last words of {self._get(container).name}"


def _donors(host: dict[str, object]) -> list[str]:
    """The containers whose namespaces a HostConfig joins."""
    modes = [str(host[k] or "") for k in ("NetworkMode", "IpcMode", "PidMode")]
    return [m.removeprefix("container:") for m in modes if m.startswith("container:")]


@dataclass
class FakeRegistry:
    tags: dict[str, dict[str, str]]  # "ns/name" -> {tag: digest}
    error: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    creds: tuple[str, str] | None = ("cr_temp_user", "tok")

    def latest(self, repo: RepoKey, tags: Collection[str]) -> dict[str, str]:
        self.calls.append((repo.path, tuple(tags)))
        if repo.path in self.error:
            raise self.error[repo.path]
        known = self.tags.get(repo.path)
        if known is None:
            raise RegistryError(f"repository {repo.path} not found", code="REPO_NOT_EXIST")
        return {t: d for t, d in known.items() if t in tags}

    def credentials(self, host: str) -> tuple[str, str] | None:
        return self.creds


class StepClock:
    """A monotonic clock that moves on by `step` seconds each time it is read: waits end without sleeping."""

    def __init__(self, step: float, start: float = 0.0) -> None:
        self.step, self.now = step, start

    def __call__(self) -> float:
        self.now += self.step
        return self.now
