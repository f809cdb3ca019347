"""Never worse than before: health gate, rollback, quarantine, crash recovery, SIGTERM, start-first.

Real Docker, real registry, real process kills.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from agent.deploy import OLD_SUFFIX
from agent.state import State
from tests.integration.agentenv import KEY_SECRET, ROOT, World, by_container, world_fixture
from tests.support import images
from tests.support.wait import wait_until

CRASH = ["sh", "-c", "echo 'fatal: no config' >&2; exit 3"]
# A reverse proxy's view: resolve `web` afresh per request and, like nginx's proxy_next_upstream,
# retry once when a connection fails (a name resolved just before the old container left the network).
# busybox-static's wget segfaults when given -T; nc is simpler anyway.
CLIENT_LOOP = (
    "get() { printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 8080 2>/dev/null | tail -n 1; };"
    " trap 'exit 0' TERM; while :; do r=$(get); [ -n \"$r\" ] || { echo RETRY; r=$(get); };"
    ' if [ -n "$r" ]; then echo "$r"; else echo FAIL; fi; done & wait'
)
KILL_AT = "tests.support.kill_at"
HTTP_SLOW = ["sh", "-c", "trap 'exit 0' TERM; sleep 2; httpd -f -p 8080 -h /www & wait"]


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


def write_volumes(world: World, name: str) -> None:
    c = world.client.containers.get(world.prefix + name)
    assert c.exec_run(["sh", "-c", "echo named > /named/f && echo anon > /anon/f"]).exit_code == 0


def assert_volumes_intact(world: World, name: str) -> None:
    c = world.client.containers.get(world.prefix + name)
    out = c.exec_run(["sh", "-c", "cat /named/f /anon/f"]).output.decode()
    assert out.split() == ["named", "anon"], out


def start_app(world: World, **kw: object) -> None:
    """v1 of an app with a named and an anonymous (image VOLUME) volume, holding data."""
    world.push_image("v1", volumes=["/anon"])
    world.client.volumes.create(world.prefix + "named")
    world.run("app", volumes={world.prefix + "named": {"bind": "/named", "mode": "rw"}}, **kw)
    write_volumes(world, "app")


def test_crashing_image_is_rolled_back_quarantined_and_not_redeployed(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image()}])
    old_id = world.container("app")["Id"]
    bad = world.push_image("v2-crash", volumes=["/anon"], cmd=CRASH)

    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "rolled_back", err
    assert "exited with code 3" in r["error"] and "fatal: no config" in r["logs"]
    assert world.container("app")["Id"] == old_id and world.container("app")["State"]["Running"]
    assert world.containers() == [world.prefix + "app"]
    assert_volumes_intact(world, "app")

    code, report, _ = world.once(cfg)  # the same bad digest: skipped, no pull, no redeploy loop
    r = by_container(report)[world.prefix + "app"]
    assert code == 0 and r["status"] == "skipped" and "quarantined" in r["error"]
    assert r["latest_digest"] == bad and world.container("app")["Id"] == old_id

    done = world.agent("retry", "-c", str(cfg), world.prefix + "app")
    assert done.returncode == 0 and "1 quarantined" in done.stdout
    code, report, _ = world.once(cfg)
    assert by_container(report)[world.prefix + "app"]["status"] == "rolled_back"

    good = world.push_image("v3", volumes=["/anon"])  # a newer digest lifts the quarantine by itself
    code, report, _ = world.once(cfg)
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "updated"
    assert good in world.running_digests("app")
    assert_volumes_intact(world, "app")


def test_failing_healthcheck_rolls_back(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image(), "health_timeout": "30s"}])
    world.push_image(
        "v2", volumes=["/anon"], healthcheck='--interval=1s --timeout=1s --retries=1 CMD ["false"]'
    )
    code, report, _ = world.once(cfg)
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "rolled_back" and "unhealthy" in r["error"]
    assert_volumes_intact(world, "app")


def test_passing_healthcheck_gates_the_update(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image(), "min_uptime": "1h"}])
    new = world.push_image("v2", volumes=["/anon"], healthcheck='--interval=1s --timeout=1s CMD ["true"]')
    code, report, err = world.once(cfg)  # min_uptime of 1h is not used: HEALTHCHECK decides first
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "updated", err
    assert new in world.running_digests("app")
    assert world.container("app")["State"]["Health"]["Status"] == "healthy"


def test_http_probe_passes_and_probe_timeout_rolls_back(world: World) -> None:
    port = images.free_port()
    world.push_http("v1")
    world.run("web", ports={"8080/tcp": ("127.0.0.1", port)})
    probe = (
        f'{{ http = "http://127.0.0.1:{port}/", expect_status = 200, timeout = "1s", interval = "200ms" }}'
    )
    cfg = world.config(
        [{"container": "web", "image": world.image(), "health": probe, "health_timeout": "20s"}]
    )
    world.push_http("v2", cmd=HTTP_SLOW)  # answers only after 2 s: the probe must wait for it
    code, report, err = world.once(cfg)
    assert code == 0 and by_container(report)[world.prefix + "web"]["status"] == "updated", err
    assert images.http_get(port).strip() == "v2", err

    world.push_image("v3-silent", repo="web")  # runs, but never answers HTTP
    cfg = world.config(
        [{"container": "web", "image": world.image(), "health": probe, "health_timeout": "3s"}]
    )
    code, report, _ = world.once(cfg)
    r = by_container(report)[world.prefix + "web"]
    assert code == 1 and r["status"] == "rolled_back" and "not healthy within 3s" in r["error"]
    wait_until(lambda: images.http_get(port).strip() == "v2", 20, "the restored v2 to answer again")


STEPS = ["pulled", "renamed", "created", "old_stopped", "started", "health_wait", "healthy", "old_removed"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_every_step_is_recovered_by_the_next_run(world: World, step: str) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image()}])
    new = world.push_image("v2", volumes=["/anon"])

    done = world.agent(step, "once", "-c", str(cfg), module=KILL_AT)
    assert done.returncode == -signal.SIGKILL, done.stderr

    code, report, err = world.once(cfg)  # recovery, then the normal pass
    assert code == 0, err
    assert world.containers() == [world.prefix + "app"], "exactly one container, under its own name"
    info = world.container("app")
    assert info["State"]["Running"]
    assert new in world.running_digests("app")
    assert_volumes_intact(world, "app")
    db = sqlite3.connect(world.tmp / "state" / "state.db")
    assert db.execute("SELECT count(*) FROM journal").fetchone() == (0,)
    assert not any(n.endswith(OLD_SUFFIX) for n in world.containers())


@pytest.mark.parametrize("step", ["created", "health_wait", "healthy", "old_stopped"])
def test_start_first_sigkill_is_recovered_by_the_next_run(world: World, step: str) -> None:
    net = world.client.networks.create(world.prefix + "net")
    start_app(world, network=net.name)
    cfg = world.config([{"container": "app", "image": world.image(), "strategy": "start-first"}])
    new = world.push_image("v2", volumes=["/anon"])
    done = world.agent(step, "once", "-c", str(cfg), module=KILL_AT)
    assert done.returncode == -signal.SIGKILL, done.stderr
    code, report, err = world.once(cfg)
    assert code == 0, err
    assert world.containers() == [world.prefix + "app"]
    assert world.container("app")["State"]["Running"] and new in world.running_digests("app")
    assert list(world.container("app")["NetworkSettings"]["Networks"]) == [net.name]
    assert_volumes_intact(world, "app")


def test_sigterm_during_the_health_wait_rolls_back_and_exits(world: World) -> None:
    start_app(world)
    cfg = world.config(
        [{"container": "app", "image": world.image(), "min_uptime": "5m", "health_timeout": "10m"}]
    )
    cfg.write_text(cfg.read_text().replace('interval = "1h"', 'interval = "1h"'))
    old_id = world.container("app")["Id"]
    world.push_image("v2", volumes=["/anon"])
    p = world.spawn("run", "-c", str(cfg), "--log-level", "DEBUG")
    wait_until(lambda: "step health_wait" in world.log_of(p), 60, "the health wait")
    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 0, world.log_of(p)
    assert world.containers() == [world.prefix + "app"]
    assert world.container("app")["Id"] == old_id and world.container("app")["State"]["Running"]
    assert_volumes_intact(world, "app")
    assert "shutdown requested" in world.log_of(p)


def test_stopped_container_is_updated_but_stays_stopped(world: World) -> None:
    start_app(world)
    world.client.containers.get(world.prefix + "app").stop(timeout=5)
    new = world.push_image("v2", volumes=["/anon"])
    code, report, _ = world.once(world.config([{"container": "app", "image": world.image()}]))
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "updated"
    assert new in world.running_digests("app") and not world.container("app")["State"]["Running"]


def test_start_first_answers_requests_throughout_the_swap(world: World) -> None:
    net = world.client.networks.create(world.prefix + "net")
    world.push_http("v1")
    world.run("web", network=net.name)
    world.client.networks.get(net.id).disconnect(world.prefix + "web")
    world.client.networks.get(net.id).connect(world.prefix + "web", aliases=["web"])
    client = world.client.containers.run(
        world.image(), name=world.prefix + "client", network=net.name, detach=True,
        command=["sh", "-c", CLIENT_LOOP],
    )  # fmt: skip
    wait_until(lambda: b"v1" in client.logs(), 20, "the client loop to get answers")
    cfg = world.config(
        [{"container": "web", "image": world.image(), "strategy": "start-first", "min_uptime": "2s"}]
    )
    world.push_http("v2")
    code, report, err = world.once(cfg)
    r = by_container(report)[world.prefix + "web"]
    assert code == 0 and r["status"] == "updated" and r["strategy"] == "start-first", err
    wait_until(lambda: client.logs().split()[-1] == b"v2", 20, "answers from v2")
    n = client.logs().split()
    client.stop(timeout=5)
    fails = [i for i, x in enumerate(n) if x == b"FAIL"]
    context = [b" ".join(n[max(0, i - 3) : i + 4]) for i in fails[:5]]
    assert not fails, f"{len(fails)} failed requests out of {len(n)}: {context}"
    assert n.count(b"v1") > 0 and n.count(b"v2") > 0
    assert n.count(b"RETRY") <= 2, "more than the one race at the moment the old container leaves"


def test_history_status_rollback_pin_and_unpin(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image()}])
    d1 = world.running_digests("app")[0]
    d2 = world.push_image("v2", volumes=["/anon"])
    assert world.once(cfg)[0] == 0

    done = world.agent("rollback", "-c", str(cfg), world.prefix + "app", "--json")
    assert done.returncode == 0, done.stderr
    assert d1 in world.running_digests("app")
    assert_volumes_intact(world, "app")
    code, report, _ = world.once(cfg)  # pinned: the tag's newer digest is not followed
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "up_to_date"
    assert d1 in world.running_digests("app")

    status = world.agent("status", "-c", str(cfg), "--json")
    assert status.returncode == 0
    (c,) = json.loads(status.stdout)["containers"]
    assert c["pinned"] == d1 and c["running_digest"] == d1
    assert [h["outcome"] for h in c["history"]][:2] == ["updated", "updated"]
    assert c["history"][0]["to_digest"] == d1 and c["history"][1]["to_digest"] == d2
    assert c["last_check"]["latest_digest"] == d2

    human = world.agent("status", "-c", str(cfg))
    assert "pinned" in human.stdout and world.prefix + "app" in human.stdout

    assert world.agent("unpin", "-c", str(cfg), world.prefix + "app").returncode == 0
    code, report, _ = world.once(cfg)
    assert by_container(report)[world.prefix + "app"]["status"] == "updated"
    assert d2 in world.running_digests("app")

    bad = world.agent("rollback", "-c", str(cfg), "nobody")
    assert bad.returncode == 2 and "not a watched container" in bad.stderr
    subprocess.run(["true"], check=True)


# ---- issue 10: the new container runs the pulled digest, never whatever the tag says ---------


def test_a_pinned_and_a_following_container_on_one_repository_each_run_their_own_digest(world: World) -> None:
    d1 = world.push_image("v1")
    world.run("pinned")
    world.run("follows")
    cfg = world.config([{"container": "pinned", "image": world.image()},
                        {"container": "follows", "image": world.image()}])  # fmt: skip
    d2 = world.push_image("v2")
    assert world.once(cfg)[0] == 0
    State(world.tmp / "state").pin(world.prefix + "pinned", d1)  # as `agent rollback` does
    d3 = world.push_image("v3")
    code, report, err = world.once(cfg)  # both pulls first (in parallel), then both replacements
    assert code == 0, err
    assert {r["container"]: r["status"] for r in report["results"]} == {
        world.prefix + "pinned": "updated", world.prefix + "follows": "updated"}  # fmt: skip
    assert d1 in world.running_digests("pinned") and d3 in world.running_digests("follows")
    tagged = world.client.api.inspect_image(world.image())["RepoDigests"]
    assert any(d3 in t for t in tagged), "the tag follows the entry that follows it"
    assert d2 not in world.running_digests("pinned") + world.running_digests("follows")


# ---- issue 9: other actors on the same engine -----------------------------------------------


def paused_once(world: World, cfg: Path, step: str) -> tuple[subprocess.Popen[str], Path]:
    """`agent once --json`, held at `step` until `resume` lets it go on."""
    where = world.tmp / f"pause-{step}-{len(world.procs)}"
    where.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", KILL_AT, "--pause", str(where), step, "once", "-c", str(cfg), "--json",
         "--log-level", "DEBUG"],
        cwd=world.tmp, env=world.env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    world.procs.append(p)
    wait_until(lambda: (where / "reached").exists() or p.poll() is not None, 90, f"the agent to reach {step}")
    assert p.poll() is None, p.communicate()
    return p, where


def resume(p: subprocess.Popen[str], where: Path) -> tuple[int, dict, str]:
    (where / "go").touch()
    out, err = p.communicate(timeout=120)
    assert out.strip(), f"once --json printed nothing:\n{err}"
    return p.returncode, json.loads(out), err


def journal(world: World) -> list[tuple[str, str]]:
    return [(e.container, e.step) for e in State(world.tmp / "state").journal()]


def quarantined(world: World, name: str) -> dict[str, str]:
    return State(world.tmp / "state").quarantined(world.prefix + name)


def test_two_agents_with_different_state_dirs_never_lose_the_container(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image(), "min_uptime": "3s"}])
    other = world.tmp / "other.toml"
    other.write_text(cfg.read_text().replace(str(world.tmp / "state"), str(world.tmp / "state2"))
                     .replace("[[watch]]", '[[watch]]\nstrategy = "start-first"'))  # fmt: skip
    new = world.push_image("v2", volumes=["/anon"])
    runs = [subprocess.Popen([sys.executable, "-m", "agent", "once", "-c", str(c), "--json"], cwd=world.tmp,
                             env=world.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for c in (cfg, other)]  # fmt: skip
    world.procs.extend(runs)
    done = [(p.wait(180), json.loads(p.communicate()[0])) for p in runs]
    statuses = sorted(by_container(report)[world.prefix + "app"]["status"] for _, report in done)
    assert world.containers() == [world.prefix + "app"], statuses
    assert world.container("app")["State"]["Running"] and new in world.running_digests("app")
    assert_volumes_intact(world, "app")
    assert "updated" in statuses and [code for code, _ in done] == [0, 0], done
    for c in (cfg, other):  # and each agent's next pass sees it as it is
        code, report, err = world.once(c)
        assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "up_to_date", err


def test_a_user_recreating_the_container_during_a_start_first_gate_leaves_no_orphan(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image(), "strategy": "start-first"}])
    world.push_image("theirs", repo="other")
    world.push_image("v2", volumes=["/anon"])
    p, where = paused_once(world, cfg, "health_wait")
    world.client.containers.get(world.prefix + "app").remove(force=True)  # docker rm -f app
    theirs = world.run("app", repo="other").id  # docker run --name app ...
    code, report, err = resume(p, where)
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "failed" and "recreated by someone else" in r["error"], err
    assert r["error"].count("by someone else") == 1, r["error"]  # issue 20.5: no clause twice
    assert world.containers() == [world.prefix + "app"], "no --cr-agent-new left running on the volume"
    assert world.container("app")["Id"] == theirs and journal(world) == []


def test_the_old_container_removed_during_a_failing_gate_is_reported_once_and_never_up_to_date(
    world: World,
) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image(), "min_uptime": "20s"}])
    bad = world.push_image("v2-dies", volumes=["/anon"], cmd=["sh", "-c", "sleep 3; exit 3"])
    p, where = paused_once(world, cfg, "health_wait")
    world.client.containers.get(world.prefix + "app" + OLD_SUFFIX).remove(force=True)
    code, report, err = resume(p, where)
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "failed", err
    assert "exited with code 3" in r["error"] and "removed by someone else" in r["error"]
    assert bad in quarantined(world, "app") and journal(world) == []
    assert world.containers() == [world.prefix + "app"] and bad in world.running_digests("app")
    for _ in range(2):  # later passes: failed with the container's state, no recovery traceback
        code, report, err = world.once(cfg)
        r = by_container(report)[world.prefix + "app"]
        assert code == 1 and r["status"] == "failed" and "exited, exit code 3" in r["error"], err
        assert "recovery" not in err and "Traceback" not in err


def test_compose_recreating_the_container_in_the_stop_first_window_converges(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image()}])
    world.push_image("theirs", repo="other")
    world.push_image("v2", volumes=["/anon"])
    old_id = world.container("app")["Id"]
    p, where = paused_once(world, cfg, "created")
    world.client.containers.get(world.prefix + "app").remove(force=True)  # the agent's new, not started
    theirs = world.run("app", repo="other").id
    code, report, err = resume(p, where)
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "failed" and "recreated by someone else" in r["error"], err
    assert r["error"].count("by someone else") == 1, r["error"]
    assert "Traceback" not in err and journal(world) == []
    assert world.container("app")["Id"] == theirs and world.container("app")["State"]["Running"]
    kept = world.container("app" + OLD_SUFFIX)
    assert kept["Id"] == old_id and not kept["State"]["Running"]
    db = sqlite3.connect(world.tmp / "state" / "state.db")
    assert db.execute("SELECT outcome FROM history").fetchall() == [("failed",)]
    code, report, err = world.once(cfg)  # the next pass says what is left, without a traceback
    assert "recovery failed" not in err and "Traceback" not in err
    assert OLD_SUFFIX in by_container(report)[world.prefix + "app"]["error"]


def test_the_user_removing_the_new_container_during_the_gate_does_not_quarantine(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image(), "min_uptime": "20s"}])
    new = world.push_image("v2", volumes=["/anon"])
    old_id = world.container("app")["Id"]
    p, where = paused_once(world, cfg, "health_wait")
    world.client.containers.get(world.prefix + "app").remove(force=True)
    code, report, err = resume(p, where)
    r = by_container(report)[world.prefix + "app"]
    assert code == 1 and r["status"] == "failed" and "removed by someone else" in r["error"], err
    assert world.container("app")["Id"] == old_id and world.container("app")["State"]["Running"]
    assert_volumes_intact(world, "app")
    assert quarantined(world, "app") == {} and journal(world) == []
    cfg = world.config([{"container": "app", "image": world.image()}])
    code, report, err = world.once(cfg)  # not quarantined: the next pass deploys it
    assert code == 0 and new in world.running_digests("app"), err


def test_a_missing_container_fails_once_unless_optional(world: World) -> None:
    world.push_image("v1")
    code, report, err = world.once(world.config([{"container": "ghost", "image": world.image()}]))
    r = by_container(report)[world.prefix + "ghost"]
    assert code == 1 and r["status"] == "failed" and "not found" in r["error"]
    assert "WARNING" in err and "optional = true" in err
    code, report, err = world.once(
        world.config([{"container": "ghost", "image": world.image(), "optional": True}])
    )
    assert code == 0 and by_container(report)[world.prefix + "ghost"]["status"] == "skipped", err


# ---- issue 9: secrets and broken state -----------------------------------------------------------


def test_no_secret_reaches_any_output_channel(world: World) -> None:
    from tests.support.receiver import Receiver

    start_app(world)
    token, sts = "webhook-token-" + "x" * 24, "sts-token-" + "y" * 24
    dump = world.tmp / "hook-env"
    leak = f"echo {KEY_SECRET} {token} {sts}"  # a hook that prints every secret it was given (or knows)
    sink = Receiver()
    try:
        cfg = world.config(
            [{"container": "app", "image": world.image(), "pre_update": f"env > {dump}; {leak}; exit 1"}],
            extra=f'security_token = "{sts}"\n[webhook]\nlisten = "127.0.0.1:1"\ntoken = "{token}"\n'
            f'[notify]\nurls = ["{sink.url("json")}"]\non = ["skipped", "failed"]',
        )
        world.push_image("v2", volumes=["/anon"])
        code, report, err = world.once(cfg)
        assert by_container(report)[world.prefix + "app"]["status"] == "skipped", err
        assert "***" in by_container(report)[world.prefix + "app"]["error"]
        status = world.agent("status", "-c", str(cfg), "--json")
        channels = {
            "log": err, "report": json.dumps(report), "status": status.stdout + status.stderr,
            "hook env": dump.read_text(), "notification": json.dumps([h.text for h in sink.hits]),
            "state": b"".join(p.read_bytes() for p in (world.tmp / "state").iterdir()).decode("latin-1"),
        }  # fmt: skip
        assert sink.hits and "pre_update hook failed" in channels["notification"]
        for name, text in channels.items():
            for secret in (KEY_SECRET, token, sts):
                assert secret not in text, f"{secret[:8]}... reached the {name}"
    finally:
        sink.close()


def test_a_corrupt_state_db_is_moved_aside_and_the_containers_to_check_are_named(world: World) -> None:
    start_app(world)
    cfg = world.config([{"container": "app", "image": world.image()}])
    (world.tmp / "state").mkdir()
    (world.tmp / "state" / "state.db").write_bytes(b"garbage, not sqlite " * 200)
    code, report, err = world.once(cfg)
    assert code == 0 and by_container(report)[world.prefix + "app"]["status"] == "up_to_date", err
    assert "was corrupt" in err and "check that these containers exist" in err and world.prefix + "app" in err
    assert [p.name.split("-")[0] for p in (world.tmp / "state").glob("state.db.corrupt-*")] == [
        "state.db.corrupt"
    ]
