"""The create body that recreates a container from its inspect result: pure, no I/O.

What the old image merely provided is dropped (so the new image's own values apply), anonymous volumes are
mounted by name (their data stays), and the networks are split into the one to create with and the rest.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

ANON = re.compile(r"^[0-9a-f]{64}$")  # an anonymous volume's name
# Config keys an image provides; a container value equal to the old image's was inherited, not chosen.
_INHERITED_SCALARS = ("Healthcheck", "WorkingDir", "User", "StopSignal")

Json = dict[str, Any]


@dataclass
class CloneSpec:
    """What `clone` posts: the create body and the networks to connect after create."""

    config: Json
    connect: list[tuple[str, Json]] = field(default_factory=list)

    def hide_aliases(self) -> None:
        """Join every network under the container's own name only (start-first: no traffic until publish)."""
        for ep in (self.config.get("NetworkingConfig") or {}).get("EndpointsConfig", {}).values():
            ep["Aliases"] = None
        for _, ep in self.connect:
            ep["Aliases"] = None


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
        if m.get("Type") != "volume" or not ANON.match(name) or dest in covered:
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


def endpoint(ep: Json, drop_aliases: set[str]) -> Json:
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
    rest = [(n, endpoint(ep, drop)) for n, ep in nets.items() if n != first]
    return {"EndpointsConfig": {first: endpoint(nets[first], drop)}}, rest


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


def links(given: list[str] | None) -> dict[str, str | None] | None:
    """Inspect's `/db:/web/alias` link entries as the SDK's {name: alias} map."""
    if not given:
        return None
    out: dict[str, str | None] = {}
    for link in given:
        name, _, alias = link.partition(":")
        out[name.lstrip("/")] = alias.rsplit("/", 1)[-1] or None
    return out
