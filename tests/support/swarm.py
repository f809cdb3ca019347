"""A hand-written fake Swarm for the service deployer and label discovery."""

from __future__ import annotations

from dataclasses import replace

from agent.model import ImageRef
from agent.runtimes import ListedService, ServiceInfo

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
IMG = ImageRef.parse("127.0.0.1:5000/ns/web:latest")


class FakeSwarm:
    """Plays back a list of update states, one per look after the update."""

    def __init__(self, states: list[str | None], *, host_ports: bool = False) -> None:
        self.states = states
        self.labels: dict[str, str] = {}
        self.info = ServiceInfo(
            "id1", "svc", f"{IMG}@{OLD}", (f"{IMG.repository}@{OLD}",), 1, None, "", host_ports, None
        )
        self.updates: list[tuple[str, str | None]] = []
        self.rollbacks = 0

    def is_manager(self) -> bool:
        return True

    def list_services(self) -> list[ListedService]:
        return [ListedService(self.info.name, self.info.image, self.labels)]

    def service(self, name: str) -> ServiceInfo | None:
        if self.updates and self.states:
            state = self.states.pop(0)
            self.info = replace(self.info, update_state=state, update_message=f"msg {state}")
        return self.info

    def update(self, name: str, image: str, *, monitor: float, order: str | None, auth: object) -> None:
        self.updates.append((image, order))

    def rollback(self, name: str) -> None:
        self.rollbacks += 1
        self.info = replace(self.info, image=self.info.previous_image or "", previous_image=self.info.image)

    def failed_logs(self, name: str, tail: int = 20) -> str:
        return "task x: exit 3\nboom"
