"""The ServiceRuntime port on the Docker Engine API (docker-py 7): Swarm services on a manager node."""

from __future__ import annotations

from typing import Any

import docker
from docker.types import RollbackConfig, UpdateConfig

from agent.errors import RuntimeFault
from agent.runtimes import ListedService, ServiceInfo
from agent.runtimes.faults import fault as _fault

Json = dict[str, Any]
NS = 1_000_000_000


def _host_ports(spec: Json) -> bool:
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return any(p.get("PublishMode") == "host" for p in ports)


def _image_of(spec: Json | None) -> str | None:
    if not spec:
        return None
    return str(spec["TaskTemplate"]["ContainerSpec"]["Image"])


def _repo_digest(image: str) -> str:
    """`host/ns/repo:tag@sha256:x` → `host/ns/repo@sha256:x`, the shape of a RepoDigests entry."""
    name, _, digest = image.partition("@")
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}@{digest}" if head else f"{last.split(':', 1)[0]}@{digest}"


class SwarmRuntime:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or docker.from_env(timeout=120)
        self.api = self.client.api

    def is_manager(self) -> bool:
        with _fault("docker info"):
            return bool((self.api.info().get("Swarm") or {}).get("ControlAvailable"))

    def _require_manager(self) -> None:
        if not self.is_manager():
            raise RuntimeFault(
                "this Docker engine is not a Swarm manager: run the agent on a manager node to drive services"
            )

    def _inspect(self, name: str) -> Json | None:
        self._require_manager()
        with _fault(f"inspect service {name}"):
            found = [s for s in self.api.services(filters={"name": name}) if s["Spec"]["Name"] == name]
        return found[0] if found else None

    def list_services(self) -> list[ListedService]:
        if not self.is_manager():
            return []
        with _fault("list services"):
            found = self.api.services()
        return [
            ListedService(s["Spec"]["Name"], str(_image_of(s["Spec"])), dict(s["Spec"].get("Labels") or {}))
            for s in found
        ]

    def service(self, name: str) -> ServiceInfo | None:
        s = self._inspect(name)
        if s is None:
            return None
        spec, status = s["Spec"], s.get("UpdateStatus") or {}
        image = str(_image_of(spec))
        with _fault(f"tasks of service {name}"):
            tasks = self.api.tasks(filters={"service": s["ID"], "desired-state": "running"})
        running = [t for t in tasks if (t.get("Status") or {}).get("State") == "running"]
        if "@" in image:
            digests: tuple[str, ...] = (
                image.split("@", 1)[0].rsplit(":", 1)[0] + "@" + image.split("@", 1)[1],
            )
        else:
            digests = tuple(self._task_digests(running))
        return ServiceInfo(
            s["ID"], name, image, digests, len(running), status.get("State"), str(status.get("Message") or ""),
            _host_ports(spec), _image_of(s.get("PreviousSpec")),
        )  # fmt: skip

    def _task_digests(self, tasks: list[Json]) -> list[str]:
        out: list[str] = []
        for t in tasks:
            cid = ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
            if not cid:
                continue
            try:
                image_id = self.api.inspect_container(cid)["Image"]
                out.extend(
                    d for d in self.api.inspect_image(image_id).get("RepoDigests") or [] if d not in out
                )
            except docker.errors.DockerException:
                continue  # a task on another node, or gone since the listing
        return out

    def update(
        self, name: str, image: str, *, monitor: float, order: str | None, auth: tuple[str, str] | None
    ) -> None:
        for attempt in (1, 2):  # another writer may bump Spec.Version between read and write
            s = self._inspect(name)
            if s is None:
                raise RuntimeFault(f"no such service: {name}")
            spec = s["Spec"]
            current = spec.get("UpdateConfig") or {}
            update_config = UpdateConfig(
                parallelism=current.get("Parallelism", 1),
                delay=current.get("Delay"),
                failure_action="rollback",
                monitor=int(monitor * NS),
                max_failure_ratio=current.get("MaxFailureRatio", 0.0),
                order=order or current.get("Order") or "stop-first",
            )
            own = spec.get("RollbackConfig") or {}
            rollback_config = RollbackConfig(  # a rollback that pauses on its first failed task helps no one
                parallelism=own.get("Parallelism", 0),
                delay=own.get("Delay"),
                monitor=int(monitor * NS),
                failure_action="continue",
                max_failure_ratio=own.get("MaxFailureRatio", 0.0),
                order=update_config["Order"],
            )
            task_template = dict(spec["TaskTemplate"])
            task_template["ContainerSpec"] = {**task_template["ContainerSpec"], "Image": image}
            secret = auth[1] if auth else None
            try:
                with _fault(f"update service {name} to {image}", secret):
                    if auth is not None:
                        host = image.split("/", 1)[0]
                        self.client.login(username=auth[0], password=auth[1], registry=host)
                    self.api.update_service(
                        s["ID"], s["Version"]["Index"], task_template=task_template, name=spec["Name"],
                        labels=spec.get("Labels"), mode=spec.get("Mode"), update_config=update_config,
                        rollback_config=rollback_config, endpoint_spec=spec.get("EndpointSpec"),
                    )  # fmt: skip
                return
            except RuntimeFault as fault:
                if attempt == 2 or "out of sequence" not in str(fault):
                    raise

    def rollback(self, name: str) -> None:
        s = self._inspect(name)
        if s is None:
            raise RuntimeFault(f"no such service: {name}")
        if not s.get("PreviousSpec"):
            raise RuntimeFault(f"service {name} has no previous spec to roll back to")
        with _fault(f"roll back service {name}"):
            url = self.api._url("/services/{0}/update", s["ID"])
            params = {"version": s["Version"]["Index"], "rollback": "previous"}
            self.api._raise_for_status(self.api._post_json(url, data=s["Spec"], params=params))

    def failed_logs(self, name: str, tail: int = 20) -> str:
        s = self._inspect(name)
        if s is None:
            return ""
        with _fault(f"tasks of service {name}"):
            tasks = self.api.tasks(filters={"service": s["ID"]})
        failed = [
            t
            for t in tasks
            if (t.get("Status") or {}).get("State") in ("failed", "rejected")
            or (t.get("Status") or {}).get("Err")
        ]
        for t in sorted(failed, key=lambda t: str(t.get("UpdatedAt", "")), reverse=True):
            status = t.get("Status") or {}
            cid = (status.get("ContainerStatus") or {}).get("ContainerID")
            text = ""
            if cid:
                try:
                    text = self.api.logs(cid, tail=tail).decode(errors="replace").strip()
                except docker.errors.DockerException:
                    text = ""
            err = str(status.get("Err") or status.get("Message") or "")
            return (f"task {t['ID'][:12]}: {err}\n" + text).strip()
        return ""
