"""Pull progress of a large generated layer: a live bar on a TTY, none when stdout is not a TTY."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from agent.cli.progress import PullBars
from agent.runtimes.docker import DockerRuntime
from agent.runtimes.pull import PullProgress
from tests.integration.agentenv import World, world_fixture
from tests.support import images

BIG_MB = 200  # random bytes: the registry cannot compress them, so the pull takes a few seconds
BAR = re.compile(r"pull web.*\d+(\.\d+)?/\d+(\.\d+)? MB.*layers")


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def push_big(world: World, tag: str) -> str:
    return world.push_image(tag, tag=tag, random_mb=BIG_MB)  # type: ignore[no-any-return]


def drop_local(world: World, tag: str) -> None:
    world.client.images.remove(world.image(tag=tag), force=True)


def test_the_runtime_hands_the_progress_of_every_message_to_the_callback(world: World) -> None:
    push_big(world, "big1")
    drop_local(world, "big1")
    seen: list[tuple[float, tuple[int, int, int, int]]] = []
    out = io.StringIO()
    from rich.console import Console

    bars = PullBars(Console(file=out, force_terminal=True, width=120))

    def record(ref: str, progress: PullProgress) -> None:
        seen.append((time.monotonic(), progress.counts()))
        bars(ref, progress)

    with bars:
        DockerRuntime(on_progress=record).pull(world.image(tag="big1"), tuple(images.auth_config().values()))  # type: ignore[arg-type]
    downloading = [t for t, (got, total, _, _) in seen if 0 < got < total]
    # a pull that took a while, reported as it went (the engine sends ~10 progress messages a second)
    assert len(downloading) >= 5 and downloading[-1] - downloading[0] > 0.4, downloading
    got, total, done, layers = seen[-1][1]
    assert got == total >= BIG_MB << 20 and done == layers
    drawn = out.getvalue()
    assert BAR.search(drawn) and re.search(r"\b(\d+)/\1 layers", drawn), drawn[-2000:]


def once(world: World, cfg: Path, tty: bool) -> tuple[int, str, str]:
    """`agent once -c cfg`, stdout on a pseudo-terminal or a pipe; (exit code, stdout, stderr)."""
    cmd = [sys.executable, "-m", "agent", "once", "-c", str(cfg)]
    if not tty:
        done = subprocess.run(
            cmd, cwd=world.tmp, env=world.env(), capture_output=True, text=True, timeout=300
        )
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    p = subprocess.Popen(cmd, cwd=world.tmp, env={**world.env(), "TERM": "xterm", "COLUMNS": "120"},
                         stdout=slave, stderr=subprocess.PIPE, text=True)  # fmt: skip
    os.close(slave)
    _, err = p.communicate(timeout=300)
    reader.join(10)
    os.close(master)
    return p.returncode, b"".join(chunks).decode(errors="replace"), err


def test_a_bar_on_a_tty_and_clean_output_off_it(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    cfg = world.config([{"container": "app", "image": world.image()}])
    world.push_image("v2", random_mb=BIG_MB)  # latest: the large image the pass pulls
    drop_local(world, "latest")  # built here: its layers would already exist
    code, out, err = once(world, cfg, tty=False)
    assert code == 0, err
    assert out == "" and "\r" not in err and "━" not in err and "MB/s" not in err  # no bar, logs only
    progress = [line[:23] for line in err.splitlines() if re.search(r"pulling .*: .* of .* MB", line)]
    stamps = [time.mktime(time.strptime(s[:19], "%Y-%m-%d %H:%M:%S")) + float(s[19:]) for s in progress]
    assert all(
        b - a >= 4.9 for a, b in zip(stamps, stamps[1:], strict=False)
    )  # progress logs: at most every 5 s

    world.push_image("v3", random_mb=BIG_MB)
    drop_local(world, "latest")
    code, out, err = once(world, cfg, tty=True)
    assert code == 0, err
    assert BAR.search(out) and "━" in out, out[-2000:]
    assert "updated" in out and "\r" not in err and "━" not in err
