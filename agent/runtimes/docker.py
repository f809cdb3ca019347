"""The Runtime port on the Docker Engine API (docker-py 7). SDK exceptions never leave this module."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import docker
import requests
from docker.errors import DockerException, NotFound
from loguru import logger

from agent.errors import RuntimeFault
from agent.model import ContainerInfo
from agent.runtimes import ContainerState, Labels, Listed, ListedContainer
from agent.runtimes.pull import PullAborted, PullProgress, PullWatch, messages, start_pull
from agent.runtimes.relabel import COMPOSE_IMAGE, IMAGE_LABEL, relabel

_ANON = re.compile(r"^[0-9a-f]{64}$")
_EXIT = re.compile(r"\((-?\d+)\)")  # a listing's Status: "Exited (3) 2 seconds ago"
# Config keys an image provides; a container value equal to the old image's was inherited, not chosen.
_INHERITED_SCALARS = ("Healthcheck", "WorkingDir", "User", "StopSignal")

Json = dict[str, Any]


def _why(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()


@contextmanager
def _fault(action: str, secret: str | None = None) -> Iterator[None]:
    """Turn SDK and transport errors into RuntimeFault naming `action`, never `secret`."""
    try:
        yield
    except (DockerException, requests.RequestException) as exc:
        message = f"{action}: {_why(exc)}"
        if secret:
            message = message.replace(secret, "***")
        raise RuntimeFault(message) from exc


@dataclass
class CloneSpec:
    """What `clone` posts: the create body and the networks to connect after create."""

    config: Json
    connect: list[tuple[str, Json]] = field(default_factory=list)


def _bind_destination(bind: str) -> str:
    parts = bind.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _drop_inherited(cfg: Json, old: Json, published: set[str]) -> None:
    """Remove from container Config `cfg` what merely came from the old image's Config `old`."""
    if cfg.get("Entrypoint") == old.get("Entrypoint"):
        cfg.pop("Entrypoint", None)
        # Docker inherits the image CMD only when no ENTRYPOINT was given on create.
        if cfg.get("Cmd") == old.get("Cmd"):
            cfg.pop("Cmd", None)
            cfg.pop("ArgsEscaped", None)
    old_env = set(old.get("Env") or [])
    if cfg.get("Env"):
        cfg["Env"] = [e for e in cfg["Env"] if e not in old_env]
    old_labels = old.get("Labels") or {}
    if cfg.get("Labels"):
        cfg["Labels"] = {k: v for k, v in cfg["Labels"].items() if old_labels.get(k) != v}
    old_ports = old.get("ExposedPorts") or {}
    if cfg.get("ExposedPorts"):
        cfg["ExposedPorts"] = {
            p: v for p, v in cfg["ExposedPorts"].items() if p not in old_ports or p in published
        }
    old_volumes = old.get("Volumes") or {}
    if cfg.get("Volumes"):
        cfg["Volumes"] = {p: v for p, v in cfg["Volumes"].items() if p not in old_volumes}
    for key in _INHERITED_SCALARS:
        if key in cfg and cfg[key] == old.get(key):
            cfg.pop(key)


def _pin_anonymous_volumes(src: Json, host: Json, shared: set[str]) -> None:
    """Mount the source's anonymous volumes by name so the new container re-uses their data.

    `shared` holds destinations that come from VolumesFrom; those stay as they are.
    """
    mounts = host.get("Mounts") or []
    covered = {_bind_destination(b) for b in host.get("Binds") or []} | shared
    for m in src.get("Mounts") or []:
        name, dest = m.get("Name") or "", m.get("Destination")
        if m.get("Type") != "volume" or not _ANON.match(name) or dest in covered:
            continue
        given = next((s for s in mounts if s.get("Target") == dest), None)
        if given is not None:  # --mount type=volume without a source; or pinned by an earlier clone
            if given.get("Type") == "volume" and not given.get("Source"):
                given["Source"] = name
            continue
        spec: Json = {"Type": "volume", "Source": name, "Target": dest, "ReadOnly": not m.get("RW", True)}
        if m.get("Driver") and m["Driver"] != "local":
            spec["VolumeOptions"] = {"DriverConfig": {"Name": m["Driver"]}}
        mounts.append(spec)
    host["Mounts"] = mounts or None


def _endpoint(ep: Json, drop_aliases: set[str]) -> Json:
    aliases = [a for a in ep.get("Aliases") or [] if a not in drop_aliases]
    out: Json = {"IPAMConfig": ep.get("IPAMConfig") or None, "Links": ep.get("Links") or None}
    out["Aliases"] = aliases or None
    if ep.get("DriverOpts"):
        out["DriverOpts"] = ep["DriverOpts"]
    return out


def _networks(src: Json, host: Json) -> tuple[Json | None, list[tuple[str, Json]]]:
    """Split the source's networks into the one to create with and the ones to connect after."""
    mode = host.get("NetworkMode") or "default"
    nets: Json = (src.get("NetworkSettings") or {}).get("Networks") or {}
    if mode in ("host", "none") or mode.startswith("container:") or not nets:
        return None, []
    cfg = src.get("Config") or {}
    drop = {src["Id"][:12], cfg.get("Hostname") or ""}
    wanted = "bridge" if mode == "default" else mode
    first = next((n for n, ep in nets.items() if wanted in (n, ep.get("NetworkID"))), None)
    if first is None:  # the network named by NetworkMode was disconnected
        first = next(iter(nets))
        host["NetworkMode"] = first
    rest = [(n, _endpoint(ep, drop)) for n, ep in nets.items() if n != first]
    return {"EndpointsConfig": {first: _endpoint(nets[first], drop)}}, rest


def clone_spec(src: Json, old_image: Json, shared_destinations: set[str] | None = None) -> CloneSpec:
    """The create body that recreates container `src` (an inspect result); pure, no I/O.

    `old_image` is the inspect result of the image `src` runs ({} when it is gone).
    """
    cfg: Json = copy.deepcopy(src.get("Config") or {})
    host: Json = copy.deepcopy(src.get("HostConfig") or {})
    mode = host.get("NetworkMode") or ""
    published = {p for p, b in (host.get("PortBindings") or {}).items() if b}
    _drop_inherited(cfg, old_image.get("Config") or {}, published)
    if mode.startswith("container:"):
        # The hostname and ports belong to the other container; create refuses them.
        for key in ("Hostname", "Domainname", "ExposedPorts"):
            cfg.pop(key, None)
    elif mode != "host" and cfg.get("Hostname") == src["Id"][:12]:
        cfg.pop("Hostname", None)
    _pin_anonymous_volumes(src, host, shared_destinations or set())
    networking, connect = _networks(src, host)
    cfg["HostConfig"] = host
    if networking:
        cfg["NetworkingConfig"] = networking
    return CloneSpec(cfg, connect)


def _links(links: list[str] | None) -> dict[str, str | None] | None:
    if not links:
        return None
    out: dict[str, str | None] = {}
    for link in links:
        name, _, alias = link.partition(":")
        out[name.lstrip("/")] = alias.rsplit("/", 1)[-1] or None
    return out


class DockerRuntime:
    """Docker Engine adapter for the Runtime port."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        base_url: str | None = None,
        timeout: int = 120,
        pull_timeout: float = 900.0,
        pull_stall: float = 60.0,
        drain_grace: float = 2.0,
        on_progress: Callable[[str, PullProgress], None] | None = None,
    ) -> None:
        self.pull_timeout, self.pull_stall, self.drain_grace = pull_timeout, pull_stall, drain_grace
        self.on_progress = on_progress  # (reference, progress so far) after each message of a pull
        if client is None:
            with _fault("connect to the Docker Engine"):
                if base_url:
                    client = docker.DockerClient(base_url=base_url, timeout=timeout)
                else:
                    client = docker.from_env(timeout=timeout)
        self.client = client
        self.api = client.api

    # -- reads ----------------------------------------------------------

    def _inspect(self, name: str) -> Json | None:
        try:
            with _fault(f"inspect container {name}"):
                return dict(self.api.inspect_container(name))
        except RuntimeFault as fault:
            if isinstance(fault.__cause__, NotFound):
                return None
            raise

    def _must_inspect(self, name: str) -> Json:
        data = self._inspect(name)
        if data is None:
            raise RuntimeFault(f"no such container: {name}")
        return data

    def _image(self, ref: str) -> Json | None:
        try:
            with _fault(f"inspect image {ref}"):
                return dict(self.api.inspect_image(ref))
        except RuntimeFault as fault:
            if isinstance(fault.__cause__, NotFound):
                return None
            raise

    def inspect(self, name: str) -> ContainerInfo | None:
        data = self._inspect(name)
        if data is None:
            return None
        host = data.get("HostConfig") or {}
        image = self._image(data["Image"]) or {}
        bindings = host.get("PortBindings") or {}
        nets = ((data.get("NetworkSettings") or {}).get("Networks") or {}).values()
        static = any(
            (ep.get("IPAMConfig") or {}).get(k) for ep in nets for k in ("IPv4Address", "IPv6Address")
        )
        return ContainerInfo(
            id=data["Id"],
            name=data["Name"].lstrip("/"),
            image_id=data["Image"],
            repo_digests=tuple(image.get("RepoDigests") or ()),
            running=bool(data["State"]["Running"]),
            host_ports=any(bindings.values())
            or bool(host.get("PublishAllPorts"))
            or host.get("NetworkMode") == "host",
            static_ip=static or bool((data.get("Config") or {}).get("MacAddress")),
            state=data["State"].get("Status", ""),
            exit_code=int(data["State"].get("ExitCode") or 0),
        )

    def inspect_all(self, names: Collection[str]) -> dict[str, ContainerInfo]:
        """Several containers by name with one list call and one inspect per distinct image.

        `host_ports` and `static_ip` are not filled in here: `inspect()` a container before changing it.
        """
        wanted = set(names)
        with _fault("list containers"):
            listed = self.api.containers(all=True)
        found: dict[str, Json] = {}
        for c in listed:
            for n in c.get("Names") or []:
                if n.lstrip("/") in wanted:
                    found[n.lstrip("/")] = c
        digests: dict[str, tuple[str, ...]] = {}
        for image_id in {c["ImageID"] for c in found.values()}:
            digests[image_id] = tuple((self._image(image_id) or {}).get("RepoDigests") or ())
        out = {}
        for name, c in found.items():
            code = _EXIT.search(c.get("Status") or "") if c.get("State") != "running" else None
            out[name] = ContainerInfo(
                c["Id"], name, c["ImageID"], digests[c["ImageID"]], c.get("State") == "running",
                state=c.get("State") or "", exit_code=int(code.group(1)) if code else 0,
            )  # fmt: skip
        return out

    def state(self, name: str) -> ContainerState | None:
        data = self._inspect(name)
        if data is None:
            return None
        st = data["State"]
        return ContainerState(
            status=st.get("Status", ""),
            running=bool(st.get("Running")),
            restarting=bool(st.get("Restarting")),
            exit_code=int(st.get("ExitCode") or 0),
            restart_count=int(data.get("RestartCount") or 0),
            health=(st.get("Health") or {}).get("Status"),
            started_at=st.get("StartedAt", ""),
            image_id=data["Image"],
        )

    def find(self, label: str) -> list[Listed]:
        with _fault(f"list containers labelled {label}"):
            found = self.api.containers(all=True, filters={"label": label})
        return [
            Listed(c["Id"], (c.get("Names") or ["/"])[0].lstrip("/"), c.get("State") == "running",
                   dict(c.get("Labels") or {}))
            for c in found
        ]  # fmt: skip

    def engine_id(self) -> str:
        with _fault("ask the Docker Engine for its id"):
            return str(self.api.info().get("ID") or self.api.base_url)

    def list_containers(self) -> list[ListedContainer]:
        with _fault("list containers"):
            found = self.api.containers(all=True)
        return [
            ListedContainer(
                c["Id"], (c.get("Names") or ["/"])[0].lstrip("/"), c.get("Image") or "",
                c.get("State") == "running", dict(c.get("Labels") or {}),
                (c.get("HostConfig") or {}).get("NetworkMode") or "",
            )
            for c in found
        ]  # fmt: skip

    def rejoin(self, child: str, parent_id: str) -> str:
        from agent.runtimes.namespaces import rejoin

        return rejoin(self, child, parent_id)

    def configured_image(self, name: str) -> str | None:
        data = self._inspect(name)
        if data is None:
            return None
        config = data.get("Config") or {}
        return (config.get("Labels") or {}).get(IMAGE_LABEL) or config.get("Image")

    def list_names(self, prefix: str) -> list[str]:
        """Names of containers in any state that start with `prefix`."""
        with _fault(f"list containers named {prefix}*"):
            found = self.api.containers(all=True, filters={"name": prefix})
        names = {n.lstrip("/") for c in found for n in c.get("Names") or []}
        return sorted(n for n in names if n.startswith(prefix) and "/" not in n)

    def exists_image(self, ref: str) -> bool:
        return self._image(ref) is not None

    def image_in_use(self, image_id: str) -> bool:
        """Whether any container, in any state, uses the image."""
        image = self._image(image_id)
        if image is None:
            return False
        with _fault("list containers"):
            found = self.api.containers(all=True)
        return any(c.get("ImageID") == image["Id"] for c in found)

    def logs(self, container: str, tail: int = 50) -> str:
        with _fault(f"read logs of {container}"):
            raw = self.api.logs(container, stdout=True, stderr=True, tail=tail)
        return bytes(raw).decode("utf-8", errors="replace")

    # -- images ---------------------------------------------------------

    def pull(self, reference: str, auth: tuple[str, str] | None = None) -> str:
        """Pull, following the engine's progress stream; abort past `pull_timeout` or `pull_stall`."""
        secret = auth[1] if auth else None
        watch = PullWatch(self.pull_timeout, self.pull_stall)
        with _fault(f"pull {reference}", secret):
            try:
                response = start_pull(self.api, reference, auth, self.pull_stall)
            except requests.Timeout:
                raise RuntimeFault(
                    f"pull {reference}: the engine did not answer; {watch.stalled()}"
                ) from None
            try:
                for msg in messages(response, watch):
                    if msg.get("error"):
                        error = str(msg["error"]).replace(secret, "***") if secret else msg["error"]
                        raise RuntimeFault(f"pull {reference}: {error}")
                    if self.on_progress is not None:
                        self.on_progress(reference, watch.progress)
                    line = watch.due_report()
                    if line:
                        logger.info("pulling {}: {}", reference, line)
            except PullAborted as e:
                raise RuntimeFault(f"pull {reference}: {e}") from None
            except ValueError as e:
                raise RuntimeFault(
                    f"pull {reference}: the engine's progress stream is not JSON: {e}"
                ) from None
            finally:
                response.close()  # the engine cancels a pull whose client has gone
        image = self._image(reference)
        if image is None:
            raise RuntimeFault(f"pull {reference}: the image is not present after the pull")
        return str(image["Id"])

    def platform_mismatch(self, image: str) -> str | None:
        with _fault(f"inspect {image}"):
            found, engine = self.api.inspect_image(image), self.api.version()
        have = f"{found.get('Os')}/{found.get('Architecture')}"
        want = f"{engine.get('Os')}/{engine.get('Arch')}"
        return None if have == want else f"the image is for {have}, this host runs {want}"

    def tag(self, image: str, repository: str, tag: str) -> None:
        with _fault(f"tag {image} as {repository}:{tag}"):
            ok = self.api.tag(image, repository, tag)
        if not ok:
            raise RuntimeFault(f"tag {image} as {repository}:{tag}: refused")

    def remove_image(self, ref: str) -> None:
        """Remove an image without force. Missing is fine; in use raises RuntimeFault."""
        try:
            with _fault(f"remove image {ref}"):
                self.api.remove_image(ref, force=False)
        except RuntimeFault as fault:
            if not isinstance(fault.__cause__, NotFound):
                raise

    # -- containers -----------------------------------------------------

    def rename(self, container: str, new_name: str) -> None:
        with _fault(f"rename {container} to {new_name}"):
            self.api.rename(container, new_name)

    def start(self, container: str) -> None:
        with _fault(f"start {container}"):
            self.api.start(container)

    def stop(self, container: str) -> None:
        data = self._must_inspect(container)
        timeout = (data.get("Config") or {}).get("StopTimeout")
        with _fault(f"stop {container}"):
            # Without `timeout` the engine applies the container's own StopTimeout (or 10 s);
            # passing it also stretches the HTTP read timeout to cover the wait.
            if timeout is not None and timeout >= 0:
                self.api.stop(container, timeout=timeout)
            else:
                self.api.stop(container)

    def publish(self, container: str, source: str) -> None:
        """Give `container` the network aliases `source` has, on each user-defined network they share.

        `source`'s container name is added as an alias too, so the name never stops resolving while the two
        containers swap names. A network where `source` has no aliases left (it was drained: a recovery runs
        this again) is skipped.
        """
        src = self._must_inspect(source)
        mine = (self._must_inspect(container).get("NetworkSettings") or {}).get("Networks") or {}
        name = str(src.get("Name") or "").lstrip("/")
        drop = {src["Id"][:12], (src.get("Config") or {}).get("Hostname") or ""}
        for net, ep in ((src.get("NetworkSettings") or {}).get("Networks") or {}).items():
            if net in ("bridge", "host", "none") or net not in mine:
                continue
            wanted = _endpoint(ep, drop)
            aliases = list(wanted.get("Aliases") or [])
            if not aliases:
                continue
            with _fault(f"give {container} its aliases on {net}"):
                self.api.disconnect_container_from_network(container, net)
                self.api.connect_container_to_network(
                    container, net, aliases=[*aliases, name] if name not in aliases else aliases,
                    links=_links(wanted.get("Links")),
                )  # fmt: skip

    def drain(self, container: str) -> None:
        """Take the container out of its user-defined networks' DNS names, then let late requests land.

        Docker removes an endpoint's interface before its DNS records (docs/safety.md): a client that
        resolved the address just before sends to nobody. So the container joins each network again at
        once, under its own name only; Docker hands out the lowest free address, in practice the one it
        just had, and such a request arrives with the kernel's retry 1 s later. `drain_grace` covers that.
        """
        data = self._must_inspect(container)
        nets = [
            n
            for n in (data.get("NetworkSettings") or {}).get("Networks") or {}
            if n not in ("bridge", "host", "none") and not n.startswith("container:")
        ]
        for net in nets:
            with _fault(f"disconnect {container} from {net}"):
                self.api.disconnect_container_from_network(container, net)
            with _fault(f"connect {container} to {net} again, without aliases"):
                self.api.connect_container_to_network(container, net)
            was = data["NetworkSettings"]["Networks"][net].get("IPAddress")
            now = (self._must_inspect(container)["NetworkSettings"]["Networks"].get(net) or {}).get(
                "IPAddress"
            )
            if was != now:  # a lower address was free: a request sent to `was` just now is lost
                logger.info("{} rejoined {} at {}, not at {}", container, net, now, was)
        if nets:
            time.sleep(self.drain_grace)

    def remove(self, container: str) -> None:
        """Force-remove; never the volumes. A container that is already gone is fine."""
        try:
            with _fault(f"remove {container}"):
                self.api.remove_container(container, v=False, force=True)
        except RuntimeFault as fault:
            if not isinstance(fault.__cause__, NotFound):
                raise

    def _shared_destinations(self, src: Json) -> set[str]:
        dests: set[str] = set()
        for entry in (src.get("HostConfig") or {}).get("VolumesFrom") or []:
            other = self._must_inspect(entry.split(":")[0])
            dests.update(m["Destination"] for m in other.get("Mounts") or [])
        return dests

    def clone(
        self, source: str, name: str, image: str, *, aliases: bool = True, labels: Labels = None
    ) -> str:
        src = self._must_inspect(source)
        old_image = self._image(src["Image"]) or {}
        spec = clone_spec(src, old_image, self._shared_destinations(src))
        spec.config["Image"] = image
        self._relabel(spec.config, src, image)
        if labels:
            spec.config["Labels"] = {**(spec.config.get("Labels") or {}), **labels}
        if not aliases:  # start-first: no traffic by alias until publish()
            for ep in (spec.config.get("NetworkingConfig") or {}).get("EndpointsConfig", {}).values():
                ep["Aliases"] = None
            for _, ep in spec.connect:
                ep["Aliases"] = None
        with _fault(f"create {name} from {source} with {image}"):
            new_id = str(self.api.create_container_from_config(spec.config, name)["Id"])
        try:
            for net, ep in spec.connect:
                ipam = ep.get("IPAMConfig") or {}
                with _fault(f"connect {name} to network {net}"):
                    self.api.connect_container_to_network(
                        new_id,
                        net,
                        ipv4_address=ipam.get("IPv4Address") or None,
                        ipv6_address=ipam.get("IPv6Address") or None,
                        link_local_ips=ipam.get("LinkLocalIPs") or None,
                        aliases=ep.get("Aliases"),
                        links=_links(ep.get("Links")),
                        driver_opt=ep.get("DriverOpts"),
                    )
        except RuntimeFault:
            self._discard(new_id, src)
            raise
        return new_id

    def _relabel(self, config: Json, src: Json, image: str) -> None:
        compose = COMPOSE_IMAGE in (config.get("Labels") or {})
        image_id = str((self._image(image) or {}).get("Id") or "") if compose else ""
        created_with = (src.get("Config") or {}).get("Image") or ""
        config["Labels"] = relabel(config.get("Labels") or {}, created_with, image_id, image)

    def _discard(self, new_id: str, src: Json) -> None:
        """Remove a half-made clone and the fresh anonymous volumes only it had."""
        kept = {m.get("Name") for m in src.get("Mounts") or []}
        made = self._inspect(new_id) or {}
        fresh = [
            m["Name"]
            for m in made.get("Mounts") or []
            if _ANON.match(m.get("Name") or "") and m["Name"] not in kept
        ]
        try:
            self.remove(new_id)
            for vol in fresh:
                with _fault(f"remove volume {vol}"):
                    self.api.remove_volume(vol)
        except RuntimeFault:
            pass  # the original error matters more; a stray here is reported by list_names
