"""What one pass works with: config, the registry and runtime ports, state, and the targets to update."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agent.config import Config, Watch
from agent.deploy import Deployer
from agent.model import Report
from agent.reconcile.targets import ContainerTarget, Target
from agent.registries import Registry
from agent.runtimes import Runtime
from agent.signatures.gate import ReaderFor
from agent.state import State


@dataclass
class Context:
    config: Config
    registries: Mapping[str, Registry]  # by watch source: "aliyun", "registry"
    runtime: Runtime
    state: State
    deployer: Deployer
    on_pass: Callable[[Report, float], None] | None = None
    self_id: str | None = None  # the agent's own container, when it runs in one
    start_helper: Callable[[str], str] | None = None  # self_update: starts the helper for that container
    # by (kind, docker_host); containers on the default engine fall back to runtime + deployer
    targets: dict[tuple[str, str | None], Target] = field(default_factory=dict)
    signature_reader: ReaderFor | None = None  # reads cosign signatures with an entry's pull credentials
    unsigned_ok: frozenset[str] = frozenset()  # entries deployed without a signature check (`--force`)
    told_own: set[str] = field(default_factory=set)  # own containers whose skip was logged (once per process)

    def __post_init__(self) -> None:
        self.targets.setdefault(("container", None), ContainerTarget(self.runtime, self.deployer))

    def target(self, w: Watch) -> Target:
        return self.targets[(w.kind, w.docker_host)]
