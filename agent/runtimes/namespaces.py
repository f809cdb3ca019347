"""Recreate a container that shares another's network namespace (`network_mode: container:<id>`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.errors import RuntimeFault
from agent.model import OLD_SUFFIX
from agent.runtimes.clone import clone_spec
from agent.runtimes.faults import fault

if TYPE_CHECKING:
    from agent.runtimes.docker import DockerRuntime


def rejoin(rt: DockerRuntime, child: str, parent_id: str) -> str:
    """Recreate `child`, same image and configuration, in `parent_id`'s network namespace; start it if
    it was running. The old container is kept until the new one started; on failure it is put back."""
    src = rt._must_inspect(child)
    name = src["Name"].lstrip("/")
    spec = clone_spec(src, rt._image(src["Image"]) or {}, rt._shared_destinations(src))
    spec.config["Image"] = src["Image"]
    spec.config["HostConfig"]["NetworkMode"] = f"container:{parent_id}"
    was_running = bool(src["State"]["Running"])
    rt.rename(src["Id"], name + OLD_SUFFIX)
    new_id = None
    try:
        with fault(f"create {name} in the network of {parent_id[:12]}"):
            new_id = str(rt.api.create_container_from_config(spec.config, name)["Id"])
        if was_running:
            rt.stop(src["Id"])
            rt.start(new_id)
    except RuntimeFault:
        if new_id is not None:
            rt.remove(new_id)
        rt.rename(src["Id"], name)
        if was_running:
            rt.start(src["Id"])  # in its old, gone namespace: still better than not running
        raise
    rt.remove(src["Id"])
    return new_id
