"""Swarm services against a real single-node swarm on the test engine (joined here, left if we joined)."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.types import EndpointSpec, ServiceMode

from tests.integration.agentenv import World, by_container, world_fixture
from tests.support import images
from tests.support.wait import wait_until

SLOW_START = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]


@pytest.fixture
def world(prefix: str, tmp_path: Path, swarm: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, swarm)
    for s in swarm.services.list(filters={"name": prefix}):
        if s.name.startswith(prefix):
            with contextlib.suppress(docker.errors.DockerException):
                s.remove()
    wait_until(
        lambda: not [c for c in swarm.containers.list(all=True) if c.name.startswith(prefix)],
        60,
        "tasks gone",
    )


def create(w: World, name: str, digest: str, *, replicas: int = 1, **kw: Any) -> Any:
    """A service pinned to `digest`, as `docker service create` pins it."""
    w.client.login(username=images.auth_config()["username"], password=images.auth_config()["password"],
                   registry=w.image().split("/", 1)[0])  # fmt: skip
    kw.setdefault("endpoint_spec", EndpointSpec(ports={}))
    return w.client.services.create(
        f"{w.image()}@{digest}", name=w.prefix + name, mode=ServiceMode("replicated", replicas=replicas),
        stop_grace_period=1_000_000_000, **kw,
    )  # fmt: skip


def service(w: World, name: str) -> dict[str, Any]:
    return w.client.api.inspect_service(w.prefix + name)


def spec_image(w: World, name: str) -> str:
    return str(service(w, name)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])


def running_tasks(w: World, name: str) -> list[dict[str, Any]]:
    tasks = w.client.api.tasks(filters={"service": w.prefix + name, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def wait_running(w: World, name: str, n: int = 1) -> None:
    wait_until(lambda: len(running_tasks(w, name)) == n, 90, f"{n} running task(s) of {name}")


def started(w: World, replicas: int = 1, **kw: Any) -> str:
    """Service `svc` on a first image, its tasks running; returns that image's digest."""
    first = w.push_image("v1")
    create(w, "svc", first, replicas=replicas, **kw)
    wait_running(w, "svc", replicas)
    return first


def test_service_follows_its_tag_then_is_up_to_date(world: World) -> None:
    started(world)
    new = world.push_image("v2")
    cfg = world.config([{"service": "svc", "image": world.image(), "min_uptime": "2s"}])
    rc, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "svc"]
    assert (rc, r["status"], r["latest_digest"]) == (0, "updated", new), err
    assert spec_image(world, "svc").endswith("@" + new)
    uc = service(world, "svc")["Spec"]["UpdateConfig"]
    assert (uc["FailureAction"], uc["Monitor"], uc["Order"]) == ("rollback", 2_000_000_000, "start-first")
    rc, report, err = world.once(cfg)
    assert by_container(report)[world.prefix + "svc"]["status"] == "up_to_date", err


def test_crashing_image_is_rolled_back_by_swarm_and_quarantined(world: World) -> None:
    started(world)
    bad = world.push_image("v2", cmd=["sh", "-c", "echo boom-from-v2; exit 3"])
    cfg = world.config([{"service": "svc", "image": world.image(), "min_uptime": "3s"}])
    rc, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "svc"]
    assert (rc, r["status"], r["latest_digest"]) == (1, "rolled_back", bad), err
    assert "rolled back" in r["error"] and "boom-from-v2" in r["error"], r["error"]
    assert "@" + bad not in spec_image(world, "svc")
    wait_running(world, "svc")
    rc, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "svc"]
    assert (r["status"], bad in r["error"]) == ("skipped", True), report
    s = status(world, cfg)["svc"]
    assert (s["kind"], list(s["quarantined"]), s["history"][0]["outcome"]) == (
        "service",
        [bad],
        "rolled_back",
    )
    assert "boom-from-v2" in s["quarantined"][bad]


def test_unhealthy_image_is_rolled_back(world: World) -> None:
    started(world)
    bad = world.push_image("v2", healthcheck='--interval=1s --retries=2 --start-period=1s CMD ["false"]')
    cfg = world.config([{"service": "svc", "image": world.image(), "min_uptime": "2s"}])
    rc, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "svc"]
    assert (rc, r["status"], r["latest_digest"]) == (1, "rolled_back", bad), err


def test_replicas_all_move_to_the_new_digest(world: World) -> None:
    started(world, replicas=3)
    new = world.push_image("v2")
    cfg = world.config([{"service": "svc", "image": world.image(), "min_uptime": "1s"}])
    rc, report, err = world.once(cfg)
    assert (rc, by_container(report)[world.prefix + "svc"]["status"]) == (0, "updated"), err
    wait_running(world, "svc", 3)
    assert all(t["Spec"]["ContainerSpec"]["Image"].endswith("@" + new) for t in running_tasks(world, "svc"))


def test_host_mode_port_gets_stop_first(world: World) -> None:
    port = 20000 + int(world.prefix[4:8], 16) % 20000
    started(world, endpoint_spec=EndpointSpec(ports={port: (8080, "tcp", "host")}))
    world.push_image("v2")
    cfg = world.config([{"service": "svc", "image": world.image(), "min_uptime": "1s"}])
    rc, report, err = world.once(cfg)
    assert (rc, by_container(report)[world.prefix + "svc"]["status"]) == (0, "updated"), err
    assert service(world, "svc")["Spec"]["UpdateConfig"]["Order"] == "stop-first"


def test_sigkill_mid_update_next_pass_records_swarms_end_state(world: World) -> None:
    started(world)
    new = world.push_image("v2")
    cfg = world.config([{"service": "svc", "image": world.image(), "min_uptime": "8s"}])
    p = world.spawn("once", "-c", str(cfg), "--json")
    wait_until(lambda: (service(world, "svc").get("UpdateStatus") or {}).get("State") == "updating", 60,
               "Swarm updating the service")  # fmt: skip
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    began = service(world, "svc")["UpdateStatus"]["StartedAt"]
    rc, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "svc"]
    assert (rc, r["status"], r["latest_digest"]) == (0, "updated", new), err
    assert "waiting for Swarm" in err
    after = service(world, "svc")
    assert after["UpdateStatus"]["State"] == "completed"
    assert after["UpdateStatus"]["StartedAt"] == began  # the same update: no second one was posted
    done = world.agent("status", "-c", str(cfg), "--json")
    history = {c["container"]: c["history"] for c in json.loads(done.stdout)["containers"]}
    assert history[world.prefix + "svc"][0]["outcome"] == "updated"


def test_agent_rollback_returns_the_service_to_its_previous_spec_and_pins_it(world: World) -> None:
    old = started(world)
    world.push_image("v2")
    cfg = world.config([{"service": "svc", "image": world.image(), "min_uptime": "1s"}])
    rc, report, err = world.once(cfg)
    assert rc == 0, err
    done = world.agent("rollback", "-c", str(cfg), world.prefix + "svc", "--json")
    assert done.returncode == 0, done.stderr
    assert spec_image(world, "svc").endswith("@" + old)
    rc, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "svc"]
    assert (r["status"], r["current_digest"], r.get("pinned")) == ("up_to_date", old, True), report


def mine(w: World, report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """This test's results only: label discovery sees the whole shared engine."""
    return {k[len(w.prefix) :]: v for k, v in by_container(report).items() if k.startswith(w.prefix)}


def status(w: World, cfg: Path) -> dict[str, dict[str, Any]]:
    done = w.agent("status", "-c", str(cfg), "--json")
    assert done.returncode in (0, 1) and done.stdout, done.stderr  # 1: an entry on the shared engine in error
    return {c["container"][len(w.prefix) :]: c for c in json.loads(done.stdout)["containers"]
            if c["container"].startswith(w.prefix)}  # fmt: skip


def test_a_service_labelled_enable_is_followed_and_status_shows_it(world: World) -> None:
    first = started(
        world, labels={"cr-agent.enable": "true", "cr-agent.source": "aliyun", "cr-agent.min_uptime": "1s"}
    )
    create(world, "plain", first)  # no label: not followed
    new = world.push_image("v2")
    cfg = world.config([], agent='discover = "labels"')
    rc, report, err = world.once(cfg)
    assert (rc, {k: v["status"] for k, v in mine(world, report).items()}) == (0, {"svc": "updated"}), err
    assert spec_image(world, "svc").endswith("@" + new) and spec_image(world, "plain").endswith("@" + first)
    assert service(world, "svc")["Spec"]["UpdateConfig"]["Monitor"] == 1_000_000_000  # from its label

    wait_running(world, "svc")
    s = status(world, cfg)["svc"]
    assert (s["kind"], s["origin"], s["exists"], s["running"], s["running_digest"]) == (
        "service", "labels", True, True, new,
    )  # fmt: skip
    assert (s["last_check"]["status"], s["history"][0]["outcome"], s["history"][0]["to_digest"]) == (
        "updated", "updated", new,
    )  # fmt: skip
    text = world.agent("status", "-c", str(cfg))
    assert f"{world.prefix}svc  ({world.image()})  [service]" in text.stdout, text.stdout
    done = world.agent("rollback", "-c", str(cfg), world.prefix + "svc", "--json")  # a labelled entry too
    assert done.returncode == 0, done.stderr
    assert spec_image(world, "svc").endswith("@" + first)
