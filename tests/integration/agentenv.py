"""A small world for end-to-end tests: the fake ACR, a config file, and the agent run as a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from tests.support import env, images
from tests.support.fake_acr import FakeAcr
from tests.support.world import KEY_ID, KEY_SECRET, SLEEPER, agent_environ, agent_toml

__all__ = ["KEY_ID", "KEY_SECRET"]  # the fake ACR's keys, for the tests

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    prefix: str
    tmp: Path
    fake: FakeAcr
    client: docker.DockerClient
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    _logs: list[Any] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return self.prefix + "ns"  # carries the prefix, so the conftest purge removes its images

    def image(self, repo: str = "web", tag: str = "latest") -> str:
        return f"{env.REGISTRY}/{self.ns}/{repo}:{tag}"

    def push_http(self, marker: str, repo: str = "web", tag: str = "latest", **kw: Any) -> str:
        ref = self.image(repo, tag)
        images.build_http_image(ref, marker, docker_client=self.client, **kw)
        return images.push(ref, self.client)

    def push_image(self, marker: str, repo: str = "web", tag: str = "latest", **kw: Any) -> str:
        ref = self.image(repo, tag)
        kw.setdefault("cmd", SLEEPER)
        images.build_image(ref, marker=marker, docker_client=self.client, **kw)
        return images.push(ref, self.client)

    def run(self, name: str, repo: str = "web", tag: str = "latest", **kw: Any) -> Any:
        """Start a container from the pushed image (pulled the way a user would: by tag)."""
        ref = self.image(repo, tag)
        self.client.images.pull(ref, auth_config=images.auth_config())
        return self.client.containers.run(ref, name=self.prefix + name, detach=True, **kw)

    def config(self, watches: list[dict[str, Any]], extra: str = "", agent: str = "") -> Path:
        """agent.toml for `watches` (container or service names get the prefix; min_uptime 1s unless given)."""
        named = []
        for w in watches:
            w = {"min_uptime": "1s", **w}
            key = "service" if "service" in w else "container"
            named.append({**w, key: self.prefix + w[key]})
        path = self.tmp / "agent.toml"
        path.write_text(agent_toml(self.fake.url, self.tmp / "state", named, agent=f'interval = "1h"\n{agent}',
                                   extra=extra, timeout="3s"))  # fmt: skip
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return agent_environ(self.tmp / "docker-config", **extra)  # no stored docker credentials

    def agent(
        self, *args: str, timeout: float = 120, module: str = "agent", **env_extra: str
    ) -> subprocess.CompletedProcess[str]:
        """Run the agent; `module="tests.support.kill_at"` runs it with a test-only kill point."""
        return subprocess.run(
            [sys.executable, "-m", module, *args], cwd=self.tmp, env=self.env(PYTHONPATH=str(ROOT), **env_extra),
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def once(self, cfg: Path, *args: str, **env_extra: str) -> tuple[int, dict[str, Any], str]:
        done = self.agent("once", "-c", str(cfg), "--json", *args, **env_extra)
        try:
            report = json.loads(done.stdout) if done.stdout.strip() else {}
        except json.JSONDecodeError as e:
            raise AssertionError(f"stdout is not JSON: {done.stdout!r}\n{done.stderr}") from e
        return done.returncode, report, done.stderr

    def spawn(self, *args: str, **env_extra: str) -> subprocess.Popen[str]:
        log = open(self.tmp / f"agent-{len(self.procs)}.log", "w")  # noqa: SIM115 - closed with the world
        self._logs.append(log)
        p = subprocess.Popen(
            [sys.executable, "-m", "agent", *args], cwd=self.tmp, env=self.env(**env_extra),
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.procs.append(p)
        return p

    def log_of(self, p: subprocess.Popen[str]) -> str:
        return (self.tmp / f"agent-{self.procs.index(p)}.log").read_text()

    def container(self, name: str) -> dict[str, Any]:
        return self.client.api.inspect_container(self.prefix + name)

    def containers(self) -> list[str]:
        return sorted(
            n.lstrip("/") for c in self.client.api.containers(all=True, filters={"name": self.prefix})
            for n in c["Names"] if n.lstrip("/").startswith(self.prefix)
        )  # fmt: skip

    def running_digests(self, name: str) -> list[str]:
        image = self.client.api.inspect_image(self.container(name)["Image"])
        return [d.split("@", 1)[1] for d in image.get("RepoDigests") or []]

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)
        for f in self._logs:
            f.close()


def by_container(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["container"]: r for r in report["results"]}


def world_fixture(prefix: str, tmp: Path, client: docker.DockerClient) -> Iterator[World]:
    with FakeAcr(registry=env.REGISTRY) as fake:
        w = World(prefix, tmp, fake, client)
        try:
            yield w
        finally:
            w.close()
