"""The Runtime port on the Docker Engine API (docker-py 7). SDK exceptions never leave it (faults.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

import docker
import requests
from loguru import logger

from agent.config.schema import AgentSettings
from agent.errors import RuntimeFault
from agent.model import ContainerInfo
from agent.runtimes import ContainerState, Labels, ListedContainer, Sharer, listing, namespaces, sharing
from agent.runtimes.clone import ANON, CloneSpec, clone_spec, endpoint, links
from agent.runtimes.faults import fault, unless_missing
from agent.runtimes.listing import IMAGE_LIST_FROM, Json
from agent.runtimes.pull import PullAborted, PullProgress, PullWatch, messages, start_pull
from agent.runtimes.relabel import COMPOSE_IMAGE, IMAGE_LABEL, relabel


class DockerRuntime:
    """Docker Engine adapter for the Runtime port."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        base_url: str | None = None,
        timeout: int = 120,
        image_list_from: int = IMAGE_LIST_FROM,
        pull_timeout: float = AgentSettings.pull_timeout,
        pull_stall: float = AgentSettings.pull_stall,
        drain_grace: float = 2.0,
        on_progress: Callable[[str, PullProgress], None] | None = None,
    ) -> None:
        self.pull_timeout, self.pull_stall, self.drain_grace = pull_timeout, pull_stall, drain_grace
        self.image_list_from = image_list_from
        self.on_progress = on_progress  # (reference, progress so far) after each message of a pull
        if client is None:
            with fault("connect to the Docker Engine"):
                if base_url:
                    client = docker.DockerClient(base_url=base_url, timeout=timeout)
                else:
                    client = docker.from_env(timeout=timeout)
        self.client = client
        self.api = client.api

    # -- reads ----------------------------------------------------------

    def _inspect(self, name: str) -> Json | None:
        return unless_missing(f"inspect container {name}", lambda: dict(self.api.inspect_container(name)))

    def _must_inspect(self, name: str) -> Json:
        data = self._inspect(name)
        if data is None:
            raise RuntimeFault(f"no such container: {name}")
        return data

    def _image(self, ref: str) -> Json | None:
        return listing.image(self.api, ref)

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
            stop_timeout=(data.get("Config") or {}).get("StopTimeout"),
            version=listing.version(image),
        )

    def inspect_all(self, names: Collection[str]) -> dict[str, ContainerInfo]:
        """Several containers by name: one container listing, and their images (listing.py).

        `host_ports` and `static_ip` are not filled in here: `inspect()` a container before changing it.
        """
        return listing.infos(self.api, names, self.image_list_from)

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

    def engine_id(self) -> str:
        with fault("ask the Docker Engine for its id"):
            return str(self.api.info().get("ID") or self.api.base_url)

    def list_containers(self, label: str | None = None, *, named: str | None = None) -> list[ListedContainer]:
        return listing.containers(self.api, label, named)

    def sharers(self, container: str) -> list[Sharer]:
        return sharing.find(self, container)

    def recreate_sharer(self, child: str, old_parent: str, new_parent: str, *, start: bool) -> str:
        return namespaces.recreate(self, child, old_parent, new_parent, start=start)

    def configured_image(self, name: str) -> str | None:
        data = self._inspect(name)
        if data is None:
            return None
        config = data.get("Config") or {}
        return (config.get("Labels") or {}).get(IMAGE_LABEL) or config.get("Image")

    def exists_image(self, ref: str) -> bool:
        return self._image(ref) is not None

    def image_labels(self, ref: str) -> dict[str, str]:
        image = self._image(ref) or {}
        return dict((image.get("Config") or {}).get("Labels") or {})

    def image_in_use(self, image_id: str) -> bool:
        """Whether any container, in any state, uses the image."""
        image = self._image(image_id)
        if image is None:
            return False
        with fault("list containers"):
            found = self.api.containers(all=True)
        return any(c.get("ImageID") == image["Id"] for c in found)

    def logs(self, container: str, tail: int = 50) -> str:
        with fault(f"read logs of {container}"):
            raw = self.api.logs(container, stdout=True, stderr=True, tail=tail)
        return bytes(raw).decode("utf-8", errors="replace")

    # -- images ---------------------------------------------------------

    def pull(self, reference: str, auth: tuple[str, str] | None = None) -> str:
        """Pull, following the engine's progress stream; abort past `pull_timeout` or `pull_stall`."""
        secret = auth[1] if auth else None
        watch = PullWatch(self.pull_timeout, self.pull_stall)
        with fault(f"pull {reference}", secret):
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
        with fault(f"inspect {image}"):
            found, engine = self.api.inspect_image(image), self.api.version()
        have = f"{found.get('Os')}/{found.get('Architecture')}"
        want = f"{engine.get('Os')}/{engine.get('Arch')}"
        return None if have == want else f"the image is for {have}, this host runs {want}"

    def tag(self, image: str, repository: str, tag: str) -> None:
        with fault(f"tag {image} as {repository}:{tag}"):
            ok = self.api.tag(image, repository, tag)
        if not ok:
            raise RuntimeFault(f"tag {image} as {repository}:{tag}: refused")

    def remove_image(self, ref: str) -> None:
        """Remove an image without force. Missing is fine; in use raises RuntimeFault."""
        unless_missing(f"remove image {ref}", lambda: self.api.remove_image(ref, force=False))

    # -- containers -----------------------------------------------------

    def rename(self, container: str, new_name: str) -> None:
        with fault(f"rename {container} to {new_name}"):
            self.api.rename(container, new_name)

    def start(self, container: str) -> None:
        with fault(f"start {container}"):
            self.api.start(container)

    def stop(self, container: str) -> None:
        data = self._must_inspect(container)
        timeout = (data.get("Config") or {}).get("StopTimeout")
        with fault(f"stop {container}"):
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
            wanted = endpoint(ep, drop)
            aliases = list(wanted.get("Aliases") or [])
            if not aliases:
                continue
            with fault(f"give {container} its aliases on {net}"):
                self.api.disconnect_container_from_network(container, net)
                self.api.connect_container_to_network(
                    container,
                    net,
                    aliases=[*aliases, name] if name not in aliases else aliases,
                    links=links(wanted.get("Links")),
                )

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
            with fault(f"disconnect {container} from {net}"):
                self.api.disconnect_container_from_network(container, net)
            with fault(f"connect {container} to {net} again, without aliases"):
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
        unless_missing(
            f"remove {container}", lambda: self.api.remove_container(container, v=False, force=True)
        )

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
            spec.hide_aliases()
        return self.create(spec, name, src, f"create {name} from {source} with {image}")

    def create(self, spec: CloneSpec, name: str, src: Json, what: str = "") -> str:
        """Create `name` from `spec` and connect its other networks; a half-made one is discarded."""
        with fault(what or f"create {name}"):
            new_id = str(self.api.create_container_from_config(spec.config, name)["Id"])
        try:
            for net, ep in spec.connect:
                ipam = ep.get("IPAMConfig") or {}
                with fault(f"connect {name} to network {net}"):
                    self.api.connect_container_to_network(
                        new_id,
                        net,
                        ipv4_address=ipam.get("IPv4Address") or None,
                        ipv6_address=ipam.get("IPv6Address") or None,
                        link_local_ips=ipam.get("LinkLocalIPs") or None,
                        aliases=ep.get("Aliases"),
                        links=links(ep.get("Links")),
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
            if ANON.match(m.get("Name") or "") and m["Name"] not in kept
        ]
        try:
            self.remove(new_id)
            for vol in fresh:
                with fault(f"remove volume {vol}"):
                    self.api.remove_volume(vol)
        except RuntimeFault:
            pass  # the original error matters more; a stray one is reported as a leftover next pass
