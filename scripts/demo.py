"""The demo behind scripts/demo.sh: v1 runs, v2 is pushed, `agent once` replaces the container."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import env, images
from tests.support.fake_acr import DEFAULT_KEYS, FakeAcr

NAME, PORT = "cr-demo-web", int(os.environ.get("CR_DEMO_PORT", "18080"))
REF = f"{env.REGISTRY}/demo/web:latest"


def agent(cfg: Path, *args: str) -> int:
    key_id, secret = next(iter(DEFAULT_KEYS.items()))
    e = {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": key_id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret}
    print(f"\n$ agent {' '.join(args)} -c {cfg}", flush=True)
    return subprocess.run([sys.executable, "-m", "agent", *args, "-c", str(cfg)], env=e).returncode


def answer() -> str:
    for _ in range(50):
        try:
            return images.http_get(PORT).strip()
        except Exception:
            time.sleep(0.1)
    return "(no answer)"


def main() -> int:
    client = images.client()
    work = Path(tempfile.mkdtemp(prefix="cr-agent-demo-"))
    with contextlib.suppress(Exception):
        client.containers.get(NAME).remove(force=True)
    with FakeAcr(registry=env.REGISTRY) as fake:
        cfg = work / "agent.toml"
        cfg.write_text(
            f'[agent]\nstate_dir = "{work / "state"}"\n'
            f'[aliyun]\nregion = "cn-hangzhou"\nendpoint = "{fake.url}"\n'
            f'[[watch]]\ncontainer = "{NAME}"\nimage = "{REF}"\nsource = "aliyun"\nmin_uptime = "2s"\n'
        )
        print(f"demo: config {cfg}:\n{cfg.read_text()}")
        images.build_http_image(REF, "hello from v1", docker_client=client)
        images.push(REF, client)
        client.images.pull(REF, auth_config=images.auth_config())
        client.containers.run(REF, name=NAME, detach=True, ports={"8080/tcp": ("127.0.0.1", PORT)},
                              restart_policy={"Name": "unless-stopped"}, init=True)  # fmt: skip
        print(f"demo: {NAME} runs v1 on 127.0.0.1:{PORT}: {answer()!r}")
        agent(cfg, "once")
        images.build_http_image(REF, "hello from v2", docker_client=client)
        images.push(REF, client)
        print("\ndemo: pushed v2 to the registry; ACR's API now reports its digest")
        agent(cfg, "once", "--dry-run")
        code = agent(cfg, "once")
        print(f"\ndemo: {NAME} now answers {answer()!r}")
        agent(cfg, "status")
    if os.environ.get("CR_DEMO_KEEP") != "1":
        client.containers.get(NAME).remove(force=True)
        print(f"demo: removed {NAME} (CR_DEMO_KEEP=1 keeps it)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
