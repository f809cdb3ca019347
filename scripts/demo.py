"""The demo behind scripts/demo.sh: v1 runs, v2 is pushed, `agent once` replaces the container.

Everything lives on loopback and is removed at the end (scripts/demo_world.py); `--keep` keeps the
container, the images and the temporary directory to look at.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from scripts.demo_world import DemoWorld, free_port, say
from tests.support.fake_acr import DEFAULT_KEYS


def agent(world: DemoWorld, cfg: Path, *args: str) -> int:
    key_id, secret = next(iter(DEFAULT_KEYS.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIYUN_", "ALIBABA_CLOUD_"))}
    env.update({"ALIBABA_CLOUD_ACCESS_KEY_ID": key_id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret,
                "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",  # never ask 100.100.100.200
                "DOCKER_CONFIG": str(world.dir / "docker-config")})  # not the user's docker logins  # fmt: skip
    print(f"\n$ agent {' '.join(args)} -c {cfg}", flush=True)
    return subprocess.run([sys.executable, "-m", "agent", *args, "-c", str(cfg)], env=env).returncode


def answer(port: int, deadline: float = 10.0) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    end = time.monotonic() + deadline
    while True:
        try:
            with opener.open(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                return str(resp.read().decode().strip())
        except OSError:
            if time.monotonic() > end:
                return "(no answer)"
            time.sleep(0.1)


def story(world: DemoWorld) -> int:
    assert world.fake is not None
    port = free_port()
    cfg = world.dir / "agent.toml"
    name = world.prefix + "web"
    cfg.write_text(
        f'[agent]\nstate_dir = "{world.dir / "state"}"\n'
        f'[aliyun]\nregion = "cn-hangzhou"\nendpoint = "{world.fake.url}"   # the stand-in API\n'
        f'[[watch]]\ncontainer = "{name}"\nimage = "{world.ref}"\nsource = "aliyun"\nmin_uptime = "2s"\n'
    )
    say(f"config {cfg}:\n{cfg.read_text()}")
    world.push_version("hello from v1")
    world.run_web(port)
    say(f"{name} runs v1 on 127.0.0.1:{port}: {answer(port)!r}")
    agent(world, cfg, "check")
    agent(world, cfg, "once")
    world.push_version("hello from v2")
    say("pushed v2 to the registry; the stand-in ACR API now reports its digest")
    agent(world, cfg, "once", "--dry-run")
    code = agent(world, cfg, "once")
    say(f"{name} now answers {answer(port)!r}")
    agent(world, cfg, "status")
    return code


def _interrupted(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the world's clean-up


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/demo.sh", description=__doc__.splitlines()[0])
    p.add_argument("--keep", action="store_true", help="keep the container, images and temporary directory")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    say("everything runs on loopback and is removed at the end; nothing system-wide is changed")
    with DemoWorld(keep=args.keep or os.environ.get("CR_DEMO_KEEP") == "1") as world:
        say(f"work directory {world.dir}")
        return story(world)


if __name__ == "__main__":
    raise SystemExit(main())
