"""Issue 21 items 2, 4, 5 on the real engine: `agent check` looks at the host, `agent init` writes entries
from what runs, `agent update NAME` updates one entry on demand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.agentenv import ROOT, World, by_container, world_fixture


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


# ---- agent check ----------------------------------------------------------------------------------------
def test_check_finds_a_missing_container_and_a_foreign_image_each_with_its_fix(world: World) -> None:
    world.push_image("v1")
    world.push_image("api v1", repo="api")  # another image: not one also tagged ns/web
    world.run("app")
    world.run("other", repo="api")
    cfg = world.config([
        {"container": "app", "image": world.image()},
        {"container": "other", "image": world.image()},  # runs ns/api, watched as ns/web
        {"container": "ghost", "image": world.image()},
        {"container": "maybe", "image": world.image(), "optional": True},
    ])  # fmt: skip
    done = world.agent("check", "-c", str(cfg))
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "config OK" in out and "answers (Docker " in out and "is writable" in out
    assert f"ok      container `{world.prefix}app` runs {world.image()}" in out
    assert f"PROBLEM container `{world.prefix}ghost` not found\n          fix: start it first" in out
    assert f"WARNING container `{world.prefix}other` runs {world.image('api')}, not an image of" in out
    assert f"{world.image().rsplit(':', 1)[0]}\n          fix: set `image`" in out  # names both
    assert f"`{world.prefix}maybe` not found (optional" in out
    assert "1 problem(s), 1 warning(s)" in out

    good = world.config([{"container": "app", "image": world.image()}])
    done = world.agent("check", "-c", str(good))
    assert done.returncode == 0 and "PROBLEM" not in done.stdout, done.stdout + done.stderr


def test_the_untouched_example_says_container_web_not_found(world: World) -> None:
    example = world.tmp / "agent.toml"
    shutil.copy(ROOT / "agent.toml.example", example)
    text = example.read_text().replace('"/var/lib/cr-agent"', f'"{world.tmp / "state"}"', 1)
    example.write_text(text)
    done = world.agent("check", "-c", str(example))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "PROBLEM container `web` not found" in done.stdout


def test_check_says_when_docker_is_down_or_the_socket_needs_root(world: World) -> None:
    cfg = world.config([{"container": "app", "image": world.image()}])
    done = world.agent("check", "-c", str(cfg), DOCKER_HOST=f"unix://{world.tmp}/none.sock")
    assert done.returncode == 1
    assert "Docker is not running, or its socket is elsewhere" in done.stdout
    assert "fix: start Docker (systemctl start docker), or set DOCKER_HOST" in done.stdout

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the agent as another user")
    public = Path(tempfile.mkdtemp(prefix=world.prefix))  # pytest's tmp is root's alone
    try:
        public.chmod(0o755)
        state = public / "root-only"
        state.mkdir(mode=0o700)
        mine = public / "agent.toml"
        mine.write_text(cfg.read_text().replace(str(world.tmp / "state"), str(state)))
        mine.chmod(0o644)
        env = {**world.env(), "PYTHONPATH": str(ROOT), "HOME": str(public)}
        env.pop("DOCKER_HOST", None)
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-m", "agent", "check", "-c", str(mine)],
                              cwd=public, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        shutil.rmtree(public)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the Docker socket needs root (permission denied)" in done.stdout
    assert "fix: run as root (sudo agent …), or add this user to the `docker` group" in done.stdout
    assert f"state_dir {state} is not writable" in done.stdout
    assert "fix: run as root, or set [agent] state_dir to a directory this user can write" in done.stdout


# ---- agent init -------------------------------------------------------------------------------------------
def test_init_lists_acr_containers_and_writes_a_config_check_accepts(world: World) -> None:
    d1 = world.push_image("v1")
    world.run("local")  # from 127.0.0.1:5000: only with --all
    acr_ref = f"registry.cn-hangzhou.aliyuncs.com/{world.ns}/web:stable"
    world.client.images.get(world.image()).tag(acr_ref)  # as if pulled from ACR
    world.client.containers.run(acr_ref, name=world.prefix + "shop", detach=True)

    done = world.agent("init")
    assert done.returncode == 0, done.stderr
    assert f'[[watch]]\ncontainer = "{world.prefix}shop"\nimage = "{acr_ref}"' in done.stdout
    assert world.prefix + "local" not in done.stdout and "`agent init --all`" in done.stdout

    done = world.agent("init", "--all")
    assert f'container = "{world.prefix}local"\nimage = "{world.image()}"' in done.stdout
    assert f"# {world.prefix}local: {world.image()}, running {d1}" in done.stdout

    path = world.tmp / "written.toml"
    done = world.agent("init", "--write", str(path))
    assert done.returncode == 0 and f"wrote {path}" in done.stdout, done.stderr
    text = path.read_text()
    assert text.startswith("# cr-agent configuration, written by `agent init`") and "[aliyun]" in text
    assert f'container = "{world.prefix}shop"' in text
    check = world.agent("check", "--config-only", "-c", str(path))
    assert check.returncode == 0 and "config OK" in check.stdout, check.stdout + check.stderr
    check = world.agent("check", "-c", str(path))  # and the engine look finds our container
    assert f"ok      container `{world.prefix}shop` runs {acr_ref}" in check.stdout

    path.write_text("# mine\n")
    done = world.agent("init", "--write", str(path))
    assert done.returncode == 2 and "exists; give --force" in done.stderr
    assert path.read_text() == "# mine\n"
    assert world.agent("init", "--write", str(path), "--force").returncode == 0
    assert f'container = "{world.prefix}shop"' in path.read_text()


# ---- agent update -----------------------------------------------------------------------------------------
def test_update_replaces_one_entry_in_notify_mode_and_respects_pins_unless_forced(world: World) -> None:
    d1 = world.push_image("v1")
    world.run("app")
    world.run("bystander")
    cfg = world.config([{"container": "app", "image": world.image()},
                        {"container": "bystander", "image": world.image()}], agent='mode = "notify"')  # fmt: skip
    d2 = world.push_image("v2")
    code, report, err = world.once(cfg)
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "would_update", err

    done = world.agent("update", world.prefix + "app", "-c", str(cfg), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert [r["container"] for r in report["results"]] == [world.prefix + "app"]  # that entry only
    r = report["results"][0]
    assert (r["status"], r["current_digest"], r["latest_digest"]) == ("updated", d1, d2)
    assert d2 in world.running_digests("app") and d2 not in world.running_digests("bystander")

    # a pin (agent rollback) holds unless --force, which unpins
    assert world.agent("rollback", world.prefix + "app", "-c", str(cfg)).returncode == 0
    assert d1 in world.running_digests("app")
    done = world.agent("update", world.prefix + "app", "-c", str(cfg), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["results"][0]["status"] == "up_to_date"
    assert f"pinned to {d1}" in done.stderr and "--force" in done.stderr
    done = world.agent("update", world.prefix + "app", "-c", str(cfg), "--json", "--force")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["status"] == "updated" and "unpinned" in done.stderr
    assert d2 in world.running_digests("app")


def test_update_respects_the_quarantine_unless_forced_and_refuses_unknown_names(world: World) -> None:
    from agent.state import State

    world.push_image("v1")
    world.run("app")
    cfg = world.config([{"container": "app", "image": world.image()}])
    d2 = world.push_image("v2")
    State(world.tmp / "state").quarantine(world.prefix + "app", d2, "rolled back: unhealthy")
    done = world.agent("update", world.prefix + "app", "-c", str(cfg), "--json")
    r = json.loads(done.stdout)["results"][0]
    assert (done.returncode, r["status"]) == (0, "skipped") and "quarantined" in r["error"]
    done = world.agent("update", world.prefix + "app", "-c", str(cfg), "--force", "--table")
    assert done.returncode == 0 and "updated" in done.stdout, done.stdout + done.stderr
    assert d2 in world.running_digests("app")

    done = world.agent("update", "nobody-here", "-c", str(cfg))
    assert done.returncode == 2 and "'nobody-here' is not a watched container" in done.stderr
