"""SIGHUP never kills an update halfway (issue 20 item 2): a real `agent run`, held at a replacement step.

A lost SSH or tmux session sends SIGHUP. Before, `agent run` died of it at once: at `old_stopped` nothing
was left serving, at `health_wait` an unproven container stayed. Now it is a reload, done after the pass.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import ROOT, World, world_fixture
from tests.support.wait import wait_until

KILL_AT = "tests.support.kill_at"


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def paused_run(world: World, cfg: Path, step: str) -> tuple[subprocess.Popen[str], Path]:
    """`agent run` (its log in world.log_of), held at `step` of its first replacement until DIR/go."""
    where = world.tmp / f"pause-{step}"
    where.mkdir()
    log = open(world.tmp / f"agent-{len(world.procs)}.log", "w")  # noqa: SIM115 - closed with the world
    world._logs.append(log)
    p = subprocess.Popen(
        [sys.executable, "-m", KILL_AT, "--pause", str(where), step, "run", "-c", str(cfg), "--log-level", "DEBUG"],
        cwd=world.tmp, env=world.env(PYTHONPATH=str(ROOT)), stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    world.procs.append(p)
    wait_until(lambda: (where / "reached").exists() or p.poll() is not None, 90, f"the agent to reach {step}")
    assert p.poll() is None, world.log_of(p)
    return p, where


@pytest.mark.parametrize("step", ["old_stopped", "health_wait"])
def test_sighup_mid_replacement_lets_the_update_finish_then_reloads(world: World, step: str) -> None:
    world.push_image("v1")
    world.run("app")
    cfg = world.config([{"container": "app", "image": world.image()}])
    new = world.push_image("v2")
    p, where = paused_run(world, cfg, step)

    cfg.write_text(cfg.read_text().replace('interval = "1h"', 'interval = "2h"'))
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP received" in world.log_of(p), 20, "the SIGHUP to be noted")
    assert p.poll() is None, f"SIGHUP killed `agent run` at {step}:\n{world.log_of(p)}"
    assert "reloaded" not in world.log_of(p), "the config was swapped in during a pass"

    (where / "go").touch()
    wait_until(
        lambda: "reloaded:" in world.log_of(p) or p.poll() is not None, 120, "the reload after the pass"
    )
    log = world.log_of(p)
    assert p.poll() is None, log
    assert log.index("pass done:") < log.index("reloaded:"), "the reload waited for the pass"
    assert "schedule: every 3600s → every 7200s" in log
    assert world.containers() == [world.prefix + "app"], "exactly one container, under its own name"
    assert world.container("app")["State"]["Running"] and new in world.running_digests("app")
    assert "app: updated" in log, log

    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 0, world.log_of(p)


def test_agent_once_rides_out_sighup_at_old_stopped(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    cfg = world.config([{"container": "app", "image": world.image()}])
    new = world.push_image("v2")
    where = world.tmp / "pause-once"
    where.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", KILL_AT, "--pause", str(where), "old_stopped", "once", "-c", str(cfg)],
        cwd=world.tmp, env=world.env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    world.procs.append(p)
    wait_until(
        lambda: (where / "reached").exists() or p.poll() is not None, 90, "the agent to reach old_stopped"
    )
    p.send_signal(signal.SIGHUP)
    (where / "go").touch()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "SIGHUP received during the pass: ignored" in err
    assert world.container("app")["State"]["Running"] and new in world.running_digests("app")
