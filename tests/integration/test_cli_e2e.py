"""End to end: `agent once` / `agent run` as subprocesses, real Docker, real registry, the fake ACR via the SDK."""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.agentenv import KEY_SECRET, World, by_container, world_fixture
from tests.support import images
from tests.support.wait import wait_until


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def test_once_replaces_the_container_when_acr_has_a_new_digest_and_keeps_its_data(world: World) -> None:
    d1 = world.push_http("v1")
    port = images.free_port()
    world.client.volumes.create(world.prefix + "data")
    world.run("web", ports={"8080/tcp": ("127.0.0.1", port)}, environment={"GREETING": "hello"},
              labels={"com.docker.compose.service": "web"}, volumes={world.prefix + "data": {"bind": "/data", "mode": "rw"}})  # fmt: skip
    world.client.containers.get(world.prefix + "web").exec_run(["sh", "-c", "echo precious > /data/file"])
    cfg = world.config([{"container": "web", "image": world.image()}])

    code, report, err = world.once(cfg)
    assert code == 0, err
    assert by_container(report)[world.prefix + "web"]["status"] == "up_to_date"
    assert by_container(report)[world.prefix + "web"]["current_digest"] == d1

    d2 = world.push_http("v2")
    world.fake.reset_stats()
    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "web"]
    assert code == 0, err
    assert (r["status"], r["current_digest"], r["latest_digest"], r["error"]) == ("updated", d1, d2, None)
    assert world.fake.stats()["actions"] == {"GetRepoTags": 1, "GetAuthorizationToken": 1}, world.fake.stats()
    assert wait_until(lambda: images.http_get(port).strip() == "v2", 20, "the new container serving v2")
    assert d2 in world.running_digests("web")
    inspect = world.container("web")
    assert "GREETING=hello" in inspect["Config"]["Env"]
    assert inspect["Config"]["Labels"]["com.docker.compose.service"] == "web"
    out = world.client.containers.get(world.prefix + "web").exec_run(["cat", "/data/file"]).output
    assert out.strip() == b"precious"
    assert world.containers() == [world.prefix + "web"]
    assert "checked=1 updated=1" in err

    world.fake.reset_stats()
    code, report, _ = world.once(cfg)
    assert code == 0 and by_container(report)[world.prefix + "web"]["status"] == "up_to_date"
    assert world.fake.stats()["total"] == 1  # a quiet pass: one ACR request, no pull


def test_dry_run_reports_would_update_and_changes_nothing(world: World) -> None:
    world.push_image("v1")
    c = world.run("app")
    world.push_image("v2")
    cfg = world.config([{"container": "app", "image": world.image()}])
    code, report, err = world.once(cfg, "--dry-run")
    assert code == 0, err
    assert by_container(report)[world.prefix + "app"]["status"] == "would_update"
    assert world.container("app")["Id"] == c.id


def test_exit_codes_failed_skipped_and_secrets_absent(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    world.run("app2")
    cfg = world.config([
        {"container": "app", "image": world.image()},
        {"container": "ghost", "image": world.image(), "optional": True},
        {"container": "app2", "image": world.image("nothere")},
    ])  # fmt: skip
    code, report, err = world.once(cfg)
    res = by_container(report)
    assert code == 1
    assert res[world.prefix + "app"]["status"] == "up_to_date"
    assert res[world.prefix + "ghost"]["status"] == "skipped"
    assert (
        res[world.prefix + "app2"]["status"] == "failed"
        and "REPO_NOT_EXIST" in res[world.prefix + "app2"]["error"]
    )

    code, report, err = world.once(cfg, ALIBABA_CLOUD_ACCESS_KEY_SECRET="wrong-secret-value")
    assert code == 1
    assert "SignatureDoesNotMatch" in by_container(report)[world.prefix + "app"]["error"]
    assert "wrong-secret-value" not in err + str(report) and KEY_SECRET not in err + str(report)


def test_config_errors_exit_2_and_check_lists_every_problem(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[agent]\ninterval = "soon"\n[[watch]]\nimage = "registry.cn-hangzhou.aliyuncs.com/NS/x:1"\n'
    )
    done = world.agent("check", "-c", str(bad))
    assert done.returncode == 2
    for needle in ("agent.interval", "watch[0].container: required", "watch[0].image: upper-case"):
        assert needle in done.stderr
    assert world.agent("once", "-c", str(bad)).returncode == 2
    assert world.agent("once", "--bogus").returncode == 2
    assert world.agent("once", "-c", str(tmp_path / "missing.toml")).returncode == 2


def test_a_second_pass_while_one_holds_the_lock_exits_3(world: World) -> None:
    world.push_image("v1")
    cfg = world.config([{"container": "ghost", "image": world.image()}])
    lock = world.tmp / "state" / "agent.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert world.once(cfg)[0] == 3
    finally:
        os.close(fd)


def test_run_daemon_updates_on_schedule_and_stops_cleanly_on_sigterm(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    cfg = world.config([{"container": "app", "image": world.image()}], agent="")
    cfg.write_text(cfg.read_text().replace('interval = "1h"', 'interval = "2s"'))
    p = world.spawn("run", "-c", str(cfg))
    wait_until(lambda: "pass done" in world.log_of(p), 30, "the first pass at start")
    d2 = world.push_image("v2")
    wait_until(lambda: "updated=1" in world.log_of(p), 60, "the daemon to deploy v2")
    assert d2 in world.running_digests("app")
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0, world.log_of(p)
    assert world.containers() == [world.prefix + "app"]
    assert world.container("app")["State"]["Running"]
    assert "stopped" in world.log_of(p)


def test_enterprise_edition_end_to_end_with_repo_id_cached_and_a_notification(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    cfg = world.config(
        [{"container": "app", "image": world.image()}],
        extra='edition = "enterprise"\ninstance_id = "cri-test"',
    )
    with notify_sink(cfg) as sink:
        d2 = world.push_image("v2")
        world.fake.reset_stats()
        code, report, err = world.once(cfg)
        assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "updated", err
        assert d2 in world.running_digests("app")
        assert world.fake.stats()["actions"] == {
            "GetRepository": 1,
            "ListRepoTag": 1,
            "GetAuthorizationToken": 1,
        }
        (note,) = [hit.data for hit in sink.wait(1)]
        assert "1 updated" in note["title"] and f"{world.prefix}app updated" in note["message"]
        assert sink.url("json") not in err


@contextmanager
def notify_sink(cfg: Path) -> Iterator[Any]:
    """A JSON webhook on loopback, added to the config as its [notify] URL."""
    from tests.support.receiver import Receiver

    sink = Receiver()
    try:
        url = sink.url("json")
        cfg.write_text(
            cfg.read_text().replace("[[watch]]", f'[notify]\nurls = ["{url}"]\nlanguage = "en"\n[[watch]]', 1)
        )
        yield sink
    finally:
        sink.close()


def test_log_json_gives_flat_json_lines_only_and_no_table(world: World) -> None:
    """Issue 11 problems 5 and 8: cron's `--log-json >> file 2>&1` gets pure JSON lines, with fields."""
    import json

    world.push_image("v1")
    cfg = world.config([{"container": "ghost", "image": world.image(), "optional": True}])
    done = world.agent("once", "-c", str(cfg), "--log-json")
    assert done.stdout == ""  # no TTY, no --table: no human table mixed into the log
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert all(line["level"] in ("INFO", "WARNING") for line in lines)
    (skipped,) = [line for line in lines if line.get("event") == "plan.skipped"]
    assert (skipped["container"], skipped["status"]) == (world.prefix + "ghost", "skipped")
    assert skipped["image"] == world.image() and "skipped" in skipped["message"]
    assert any(line["message"].startswith("pass done") for line in lines)
    table = world.agent("once", "-c", str(cfg), "--log-json", "--table")
    assert table.stdout.startswith(world.prefix + "ghost") and "skipped" in table.stdout


def test_monitor_only_reports_would_update_notifies_once_and_never_pulls(world: World) -> None:
    world.push_image("v1")
    c = world.run("app")
    cfg = world.config([{"container": "app", "image": world.image()}], agent='mode = "notify"')
    with notify_sink(cfg) as sink:
        d2 = world.push_image("v2")
        world.fake.reset_stats()
        code, report, err = world.once(cfg)
        r = by_container(report)[world.prefix + "app"]
        assert code == 0 and (r["status"], r["latest_digest"]) == ("would_update", d2), err
        assert world.fake.stats()["actions"] == {"GetRepoTags": 1}  # no registry token: nothing pulled
        assert world.container("app")["Id"] == c.id and d2 not in world.running_digests("app")
        (note,) = [hit.data for hit in sink.wait(1)]
        assert (
            "1 update available" in note["title"] and f"{world.prefix}app update available" in note["message"]
        )
        code, report, _ = world.once(cfg)  # the same digest again: reported, not notified again
        assert by_container(report)[world.prefix + "app"]["seen_before"] is True
        assert len(sink.hits) == 1 and world.container("app")["Id"] == c.id


@pytest.mark.parametrize("cron", ["0 3 * * 0-2", "0 3 * * */2", "@daily"])
def test_run_accepts_every_schedule_check_accepts(world: World, cron: str) -> None:
    """Issue 11 problem 6: these passed `check`, then crashed `agent run` with rc 1."""
    world.push_image("v1")
    cfg = world.config([{"container": "ghost", "image": world.image()}])
    cfg.write_text(cfg.read_text().replace('interval = "1h"', f"cron = {cron!r}".replace("'", '"')))
    assert world.agent("check", "--config-only", "-c", str(cfg)).returncode == 0
    p = world.spawn("run", "-c", str(cfg))
    wait_until(lambda: "pass done" in world.log_of(p), 30, "the first pass at start")
    assert p.poll() is None and "schedule cron" in world.log_of(p)
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0, world.log_of(p)


def test_registry_source_with_configured_credentials_and_no_acr_calls(world: World) -> None:
    from tests.support import env as test_env

    world.push_image("v1")
    world.run("app")
    auth = f'[registry_auth."{test_env.REGISTRY}"]\nusername = "{test_env.REGISTRY_USER}"\npassword_env = "REG_PASSWORD"'
    cfg = world.config([{"container": "app", "image": world.image(), "source": "registry"}])
    cfg.write_text(cfg.read_text().replace("[[watch]]", auth + "\n[[watch]]", 1))
    d2 = world.push_image("v2")
    code, report, err = world.once(cfg, REG_PASSWORD=test_env.REGISTRY_PASSWORD)
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "updated", err
    assert d2 in world.running_digests("app")
    assert world.fake.stats()["total"] == 0

    world.push_image("v3")
    code, report, err = world.once(cfg, REG_PASSWORD="not-the-password")
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "failed", err
    assert "not-the-password" not in err + str(report)
    assert d2 in world.running_digests("app")


def test_run_with_a_busy_webhook_port_exits_2_with_a_clear_error(world: World) -> None:
    import socket

    world.push_image("v1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        hook = f'[webhook]\nlisten = "127.0.0.1:{port}"\ntoken = "0123456789abcdef0123"'
        cfg = world.config([{"container": "ghost", "image": world.image()}])
        cfg.write_text(cfg.read_text().replace("[[watch]]", hook + "\n[[watch]]", 1))
        done = world.agent("run", "-c", str(cfg), timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"webhook.listen: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "0123456789abcdef0123" not in done.stderr


def test_heartbeat_pings_around_passes_of_once_and_run(world: World) -> None:
    from tests.support.receiver import Receiver

    world.push_image("v1")
    world.run("app")
    rx = Receiver()
    hb = f'heartbeat_url = "{rx.url(path="/hb")}"'
    try:
        good = world.config([{"container": "app", "image": world.image()}], agent=hb)
        assert world.once(good)[0] == 0
        assert [h.path for h in rx.wait(2)] == ["/hb/start", "/hb"]
        bad = world.config([{"container": "app", "image": world.image(tag="nope")}], agent=hb)
        code, _, err = world.once(bad)
        assert code == 1 and rx.url() not in err
        start, fail = rx.wait(4)[2:]
        assert (start.path, fail.path) == ("/hb/start", "/hb/fail") and "tag 'nope' not found" in fail.text
        good = world.config([{"container": "app", "image": world.image()}], agent=hb)  # the same file again
        p = world.spawn("run", "-c", str(good))
        assert [h.path for h in rx.wait(6)[4:]] == ["/hb/start", "/hb"]
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, world.log_of(p)
    finally:
        rx.close()


def test_build_watch_tells_a_failed_acr_build_once_across_runs_of_once(world: World) -> None:
    import time

    world.push_image("v1")
    world.run("app")
    cfg = world.config([{"container": "app", "image": world.image(), "watch_builds": True}])
    world.fake.set_builds(f"{world.ns}/web", [("b-9", "FAILED", int(time.time() * 1000) - 60_000, "latest")])
    with notify_sink(cfg) as sink:
        assert world.once(cfg)[0] == 0  # a failed ACR build does not fail the deploy pass
        assert world.once(cfg)[0] == 0
        (note,) = [hit.data for hit in sink.wait(1)]
        assert "1 ACR build failed" in note["title"] and "build b-9, FAILED" in note["message"]
        assert len(sink.hits) == 1
