"""tests/support/world.py, the world the benchmarks share with the tests: it works, and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys

import docker

from tests.support.world import World


def test_world_serves_the_agent_and_removes_only_what_it_made(docker_client: docker.DockerClient) -> None:
    with World("t", prefix="crt-", private_registry=True) as w:
        old = w.push("web", "v1")
        name = w.run("web", "web")
        twin_id, _ = w.build_push(
            "twin", "v2"
        )  # the same build as the next one: one image id, two repositories
        new_id, new = w.build_push("web", "v2", keep_local=False)
        assert new_id == twin_id and w.api.inspect_image(w.ref("twin"))["Id"] == twin_id  # the twin keeps it
        assert w.api.inspect_container(name)["State"]["Running"]
        # keep_local=False: as if built elsewhere, the local tag stays on the running image
        assert w.api.inspect_image(w.ref("web"))["Id"] == w.running_image("web") != new_id
        cfg = w.agent_config("agent.toml", [{"container": name, "image": w.ref("web"), "min_uptime": "0s"}])
        done = subprocess.run([sys.executable, "-m", "agent", "once", "-c", str(cfg), "--json"], cwd=w.dir,
                              env=w.agent_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        (result,) = json.loads(done.stdout)["results"]
        assert result["status"] == "updated", result
        assert w.running_image("web") == new_id and old != new
        procs, run_dir = list(w._procs), w.dir
    assert not w.containers()
    refs = [
        r
        for i in docker_client.api.images()
        for r in (i.get("RepoTags") or []) + (i.get("RepoDigests") or [])
    ]
    assert not [r for r in refs if f"/{w.ns}/" in r]
    assert all(p.poll() is not None for p in procs)  # the registry and the fake ACR
    assert not run_dir.exists()
