"""Which containers share a namespace, volumes or a link with a given one: read from their HostConfig."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.runtimes import Sharer
from agent.runtimes.faults import fault

if TYPE_CHECKING:
    from agent.runtimes.docker import DockerRuntime

_MODES = (("NetworkMode", "network"), ("IpcMode", "ipc"), ("PidMode", "pid"))


def names_it(ref: str, target_id: str, target_name: str) -> bool:
    """Whether `ref` (an id, a short id or a name, as `container:` or `--volumes-from` give it) is the target."""
    ref = ref.lstrip("/")
    return ref == target_name or (len(ref) >= 12 and target_id.startswith(ref))


def kinds(host: dict[str, Any], target_id: str, target_name: str) -> tuple[str, ...]:
    """What of the target a container with HostConfig `host` shares: network, ipc, pid, volumes, link."""
    out = []
    for key, kind in _MODES:
        mode = host.get(key) or ""
        if mode.startswith("container:") and names_it(mode[len("container:") :], target_id, target_name):
            out.append(kind)
    if any(names_it(v.split(":")[0], target_id, target_name) for v in host.get("VolumesFrom") or []):
        out.append("volumes")
    if any(names_it(link.split(":")[0], target_id, target_name) for link in host.get("Links") or []):
        out.append("link")
    return tuple(out)


def rewrite(host: dict[str, Any], old_id: str, old_name: str, new_id: str) -> None:
    """Point every reference to the old container in HostConfig `host` at the new one (links go by name)."""
    for key, _ in _MODES:
        mode = host.get(key) or ""
        if mode.startswith("container:") and names_it(mode[len("container:") :], old_id, old_name):
            host[key] = f"container:{new_id}"
    given = host.get("VolumesFrom") or []
    host["VolumesFrom"] = [
        new_id + v[len(v.split(":")[0]) :] if names_it(v.split(":")[0], old_id, old_name) else v
        for v in given
    ] or None


def find(rt: DockerRuntime, container: str) -> list[Sharer]:
    """The sharers of `container`: one listing, then an inspect of each other container (a listing shows
    only the network mode)."""
    target = rt._inspect(container)
    if target is None:
        return []  # gone: the replacement itself reports that
    tid, tname = target["Id"], target["Name"].lstrip("/")
    with fault("list containers"):
        listed = rt.api.containers(all=True)
    out = []
    for c in listed:
        if c["Id"] == tid:
            continue
        data = rt._inspect(c["Id"])
        host = (data or {}).get("HostConfig") or {}
        shared = kinds(host, tid, tname)
        if data is None or not shared:
            continue
        out.append(Sharer(data["Id"], data["Name"].lstrip("/"), shared, bool(data["State"]["Running"]),
                          bool(host.get("AutoRemove")), dict((data.get("Config") or {}).get("Labels") or {})))  # fmt: skip
    return sorted(out, key=lambda s: s.name)
