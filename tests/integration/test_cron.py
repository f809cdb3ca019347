"""The documented cron lines, run as cron runs them: `env -i PATH=/usr/bin:/bin`, through /bin/sh, with
the credentials only in the env file. main's line failed here: `agent: not found`, then no credentials."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import KEY_ID, KEY_SECRET, World, world_fixture

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "operations.md", *sorted((ROOT / "docs" / "zh").glob("*.md"))]
CRON = re.compile(r"^[`\s]*(\*/\d+ \* \* \* \* )(root )?([^`\n]+)", re.M)


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def documented_cron_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for m in CRON.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.relative_to(ROOT).as_posix(), m.group(3)))
    return found


def run_like_cron(command: str, moves: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    for documented, moved in moves.items():
        command = command.replace(documented, moved)
    return subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", "/bin/sh", "-c", command], cwd=cwd,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def test_docs_have_cron_lines_with_absolute_paths() -> None:
    commands = documented_cron_commands()
    assert {doc for doc, _ in commands} >= {"README.md", "docs/operations.md"}
    for doc, cmd in commands:
        assert "/usr/local/bin/agent once -c /etc/cr-agent/agent.toml" in cmd, (doc, cmd)
        assert ". /etc/cr-agent/env;" in cmd, (doc, cmd)


def test_documented_cron_lines_update_a_container_under_crons_environment(world: World) -> None:
    d1 = world.push_image("v1")
    world.run("web")
    cfg = world.config([{"container": "web", "image": world.image()}])
    env_file = world.tmp / "env"
    env_file.write_text(
        f"ALIBABA_CLOUD_ACCESS_KEY_ID={KEY_ID}\nALIBABA_CLOUD_ACCESS_KEY_SECRET={KEY_SECRET}\n"
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true\n"
        f"DOCKER_CONFIG={world.tmp / 'docker-config'}\n"
    )
    env_file.chmod(0o600)
    log = world.tmp / "cr-agent.log"
    moves = {
        "/usr/local/bin/agent": str(Path(sys.executable).parent / "agent"),
        "/etc/cr-agent/agent.toml": str(cfg),
        "/etc/cr-agent/env": str(env_file),
        "/var/log/cr-agent.log": str(log),
    }
    d2 = world.push_image("v2")
    for i, (doc, cmd) in enumerate(documented_cron_commands()):
        done = run_like_cron(cmd, moves, world.tmp)
        assert done.returncode == 0, f"{doc}: {cmd}\n{done.stdout}\n{done.stderr}"
        assert KEY_SECRET not in done.stdout + done.stderr
        if i == 0:
            assert d2 in world.running_digests("web") and d1 not in world.running_digests("web")
    assert log.is_file(), "the --log-json line appends to its log file"
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # pure JSON lines: no result table in the log file
    messages = [str(r["message"]) for r in records]
    assert any("pass done" in m and "checked=1" in m for m in messages), lines
    assert KEY_SECRET not in log.read_text()
