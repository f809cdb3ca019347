"""Recreate a container that shares another's namespaces or volumes, pointing it at that one's successor."""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any

from agent.errors import RuntimeFault
from agent.model import OLD_SUFFIX
from agent.runtimes.clone import clone_spec
from agent.runtimes.sharing import rewrite

if TYPE_CHECKING:
    from agent.runtimes.docker import DockerRuntime


def image_reference(rt: DockerRuntime, src: dict[str, Any]) -> str:
    """What to create the copy with: the reference it was created with while that still names its image
    (so `docker ps` shows a name, not an id), else a digest reference, else the image id."""
    ref = (src.get("Config") or {}).get("Image") or ""
    if ref and not ref.startswith("sha256:") and (rt._image(ref) or {}).get("Id") == src["Image"]:
        return str(ref)
    digests = (rt._image(src["Image"]) or {}).get("RepoDigests") or []
    repo = ref.split("@")[0].rsplit(":", 1)[0] if ":" in ref.split("/")[-1] else ref.split("@")[0]
    same = [d for d in digests if d.split("@")[0] == repo]
    return str(same[0] if same else src["Image"])


def _unfollow_rename(src: dict[str, Any]) -> None:
    """The engine renames a link's target along with the container (`/X--cr-agent-old:/me/db` once X was
    renamed aside): link to the name again, which the new container holds now."""

    def fix(link: str) -> str:
        target, sep, alias = link.partition(":")
        return target.removesuffix(OLD_SUFFIX) + sep + alias

    host = src["HostConfig"]
    host["Links"] = [fix(link) for link in host.get("Links") or []] or None
    for ep in ((src.get("NetworkSettings") or {}).get("Networks") or {}).values():
        if ep.get("Links"):
            ep["Links"] = [fix(link) for link in ep["Links"]]


def recreate(rt: DockerRuntime, child: str, old_parent: str, new_parent: str, *, start: bool) -> str:
    """Recreate `child` with its references to `old_parent` turned into `new_parent`; start it when `start`.
    The old container is kept until the new one started; on failure it is put back."""
    src = copy.deepcopy(rt._must_inspect(child))
    name = src["Name"].lstrip("/")
    rewrite(src["HostConfig"], old_parent, "", new_parent)  # by name it already names the successor
    _unfollow_rename(src)
    spec = clone_spec(src, rt._image(src["Image"]) or {}, rt._shared_destinations(src))
    spec.config["Image"] = image_reference(rt, src)
    was_running = bool(src["State"]["Running"])
    rt.rename(src["Id"], name + OLD_SUFFIX)
    new_id = None
    try:
        new_id = rt.create(spec, name, src)
        if was_running:
            rt.stop(src["Id"])
        if start:
            rt.start(new_id)
    except RuntimeFault:
        if new_id is not None:
            rt.remove(new_id)
        rt.rename(src["Id"], name)
        if was_running:
            with contextlib.suppress(RuntimeFault):  # the first error is the one to report
                rt.start(src["Id"])  # where it was: still better than not running
        raise
    rt.remove(src["Id"])
    return new_id
