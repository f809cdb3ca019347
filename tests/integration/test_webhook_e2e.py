"""End to end, webhook mode: real HTTP against a real `agent run` subprocess, real Docker, the local
registry and the fake ACR.

Every daemon here polls only once an hour, so after its first pass (at start, waited for) only a
webhook can cause a pass. "Nothing happened" is never proven by sleeping: a hook's wake-up is queued
(and logged) before its HTTP answer is written, and a later, distinguishable wake-up (the "barrier":
`/v1/update?container=<ghost>`) must run a pass whose results name only the ghost container. Any
wake-up queued earlier would have run before it or been merged into it.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.agentenv import KEY_SECRET, World, world_fixture
from tests.support import images
from tests.support.payloads import acr_payload
from tests.support.wait import wait_until

GHOST = "ghost"  # a watch entry with no container: a pass for it alone is cheap and recognisable
_LISTENING = re.compile(r"webhook: listening on 127\.0\.0\.1:(\d+)")


@pytest.fixture
def world(prefix: str, tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[World]:
    yield from world_fixture(prefix, tmp_path, docker_client)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Daemon:
    """A running `agent run` with its webhook server on a port the OS chose."""

    world: World
    proc: subprocess.Popen[str]
    token: str
    port: int

    # -- HTTP -----------------------------------------------------------------------------
    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def hook(self, payload: Any, token: str | None = None) -> Answer:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        path = f"/hooks/aliyun/{self.token if token is None else token}"
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def update(self, *containers: str, token: str | None = None) -> Answer:
        query = "&".join(f"container={c}" for c in containers)
        path = "/v1/update" + (f"?{query}" if query else "")
        return self.request("POST", path, headers={"Authorization": f"Bearer {token or self.token}"})

    def health(self) -> dict[str, Any]:
        answer = self.request("GET", "/healthz", headers={"Authorization": f"Bearer {self.token}"})
        assert answer.status == 200, answer
        return dict(answer.json())

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        answer = self.request("GET", "/metrics")
        assert answer.status == 200, answer
        out = {}
        for family in text_string_to_metric_families(answer.body.decode()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    # -- the log --------------------------------------------------------------------------
    def log(self) -> str:
        return self.world.log_of(self.proc)

    def count(self, needle: str) -> int:
        return self.log().count(needle)

    # -- synchronisation ------------------------------------------------------------------
    def wait_passes(self, n: int, timeout: float = 60) -> dict[str, Any]:
        """Wait until `n` passes have finished and none is running; return /healthz."""

        def done() -> dict[str, Any] | None:
            h = self.health()
            assert h["passes"] <= n, f"more passes than expected: {h}"
            return h if h["passes"] == n and not h["pass_running"] else None

        h = wait_until(done, timeout, f"{n} finished passes")
        assert h is not None
        return h

    def barrier(self, timeout: float = 60) -> dict[str, Any]:
        """Queue a wake-up for the ghost entry alone and wait for its pass; return /healthz after it.

        Whatever was queued before the barrier has run by then, or was merged into the barrier's pass
        (whose results would then name more than the ghost)."""
        before = self.health()["passes"]
        ghost = ghost_name(self.world)
        assert self.update(ghost).status == 202

        def done() -> dict[str, Any] | None:
            h = self.health()
            return h if h["passes"] > before and not h["pass_running"] else None

        h = wait_until(done, timeout, "the barrier pass")
        assert h is not None and h["last_pass"]["results"] == {ghost: "skipped"}, h
        return h

    def stop(self) -> None:
        """SIGTERM, and the daemon must exit 0 within 30 s."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, self.log()
        assert "stopped" in self.log()


def ghost_name(world: World) -> str:
    return world.prefix + GHOST


def start(
    world: World,
    watches: list[dict[str, Any]],
    *,
    debounce: str | None = "0s",
    match: str = "any",
    inline_token: bool = False,
    log_level: str = "INFO",
    extra: str = "",
) -> Daemon:
    """Write a config with a [webhook] table on 127.0.0.1:0, start `agent run`, wait for the first pass."""
    token = secrets.token_hex(20)
    # The ghost's repository exists in the fake's table (a pass for it is one API call), its container never does.
    if f"{world.ns}/{GHOST}" not in world.fake.static:
        world.fake.set_tags(f"{world.ns}/{GHOST}", {"latest": "sha256:" + "1" * 64})
    watches = [*watches, {"container": GHOST, "image": world.image(GHOST), "optional": True}]
    lines = ["[webhook]", 'listen = "127.0.0.1:0"', f'match = "{match}"']
    lines.append(f'token = "{token}"' if inline_token else 'token_env = "CR_AGENT_WEBHOOK_TOKEN"')
    if debounce is not None:
        lines.append(f'debounce = "{debounce}"')
    cfg = world.config(watches, extra="\n".join(lines) + "\n" + extra)
    env = {} if inline_token else {"CR_AGENT_WEBHOOK_TOKEN": token}
    proc = world.spawn("run", "-c", str(cfg), "--log-level", log_level, **env)

    def listening() -> int | None:
        assert proc.poll() is None, world.log_of(proc)
        m = _LISTENING.search(world.log_of(proc))
        return int(m.group(1)) if m else None

    port = wait_until(listening, 30, "the webhook server to listen")
    assert port is not None
    d = Daemon(world, proc, token, port)
    d.wait_passes(1, 60)  # the pass at start (schedule); from now on only hooks cause passes
    assert d.count("pass started (schedule)") == 1
    return d


def running_image(world: World, name: str) -> tuple[str, str, bool]:
    c = world.container(name)
    return c["Id"], c["Image"], bool(c["State"]["Running"])


def image_id(world: World, repo: str = "web", tag: str = "latest") -> str:
    return str(world.client.api.inspect_image(world.image(repo, tag))["Id"])


# ---------------------------------------------------------------------------------------------------
def test_a_valid_aliyun_hook_deploys_the_new_image_and_we_measure_post_to_running(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    old_id, _, _ = running_image(world, "app")
    # The default debounce (500 ms), as a user would run it.
    d = start(world, [{"container": "app", "image": world.image()}], debounce=None, log_level="DEBUG")
    d2 = world.push_image("v2")
    new_image = image_id(world)

    t0 = time.monotonic()
    answer = d.hook(acr_payload(world.ns, "web"))
    assert answer.status == 202, answer
    assert answer.json() == {"queued": [world.prefix + "app"]}

    def new_container_running() -> bool:
        cid, image, running = running_image(world, "app")
        return cid != old_id and image == new_image and running

    wait_until(new_container_running, 60, "the new container running", interval=0.02)
    elapsed = time.monotonic() - t0
    h = d.wait_passes(2)
    assert h["last_pass"]["results"] == {world.prefix + "app": "updated"}, h
    assert h["last_pass"]["reason"] == "wake-up"
    assert d2 in world.running_digests("app")
    assert world.containers() == [world.prefix + "app"]  # the old one is gone, nothing left behind
    assert d.token not in d.log() and KEY_SECRET not in d.log()  # not even at DEBUG level
    print(f"\nwebhook POST -> new container running: {elapsed:.2f}s (default debounce)")
    assert elapsed < 30
    d.stop()


def test_the_payload_digest_is_ignored_the_agent_asks_acr(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    d = start(world, [{"container": "app", "image": world.image()}])
    d2 = world.push_image("v2")
    world.fake.reset_stats()
    forged = "sha256:" + secrets.token_hex(32)
    assert d.hook(acr_payload(world.ns, "web", digest=forged)).status == 202
    h = d.wait_passes(2)
    assert h["last_pass"]["results"] == {world.prefix + "app": "updated"}, h
    real = images.registry_digest(f"{world.ns}/web", "latest")
    assert real == d2 and forged != d2
    assert d2 in world.running_digests("app") and forged not in world.running_digests("app")
    assert world.fake.stats()["actions"].get("GetRepoTags") == 1, world.fake.stats()  # it asked ACR
    assert forged not in d.log()

    # A hook (with yet another forged digest) for a tag that did not change: a check, no change.
    cid = world.container("app")["Id"]
    assert d.hook(acr_payload(world.ns, "web", digest="sha256:" + secrets.token_hex(32))).status == 202
    h = d.wait_passes(3)
    assert h["last_pass"]["results"] == {world.prefix + "app": "up_to_date"}, h
    assert world.container("app")["Id"] == cid
    assert d.count("pass started (wake-up)") == 2 and d.count("updated=1") == 1


def test_a_wrong_token_gets_404_and_nothing_happens(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    d = start(world, [{"container": "app", "image": world.image()}], inline_token=True)
    world.push_image("v2")  # a pass now would update: it must not run
    cid = world.container("app")["Id"]
    unknown = d.request("POST", "/no/such/path", b"{}", {"Content-Type": "application/json"})
    payload = acr_payload(world.ns, "web")
    for token in ("x" * len(d.token), d.token[:-1], d.token + "0", "", d.token.upper()):
        answer = d.hook(payload, token=token)
        assert (answer.status, answer.json()) == (404, {"error": "not found"}), token
        assert answer.body == unknown.body  # the same answer as an unknown path: no hint
    # With the right token in the wrong place (the update API's bearer), the hook path still says 404.
    assert d.request("POST", "/hooks/aliyun", json.dumps(payload).encode(),
                     {"Content-Type": "application/json", "Authorization": f"Bearer {d.token}"}).status == 404  # fmt: skip
    assert d.update(token="wrong-" + d.token).status == 401
    assert d.request("POST", "/v1/update").status == 401

    # A wake-up is logged before its answer is sent: none was queued.
    assert d.count("wake-up queued") == 0
    assert d.health()["passes"] == 1
    h = d.barrier()
    assert h["passes"] == 2 and d.count("pass started (wake-up)") == 1
    assert world.container("app")["Id"] == cid
    m = d.metrics()
    assert m[("cr_agent_webhook_requests_total", (("kind", "aliyun"), ("outcome", "unauthorized")))] == 6
    assert m[("cr_agent_webhook_requests_total", (("kind", "generic"), ("outcome", "unauthorized")))] == 2
    assert d.token not in d.log()
    # Eight wrong tokens from one address within the minute: one warning line; the metrics count all.
    warnings = [line for line in d.log().splitlines() if "WARNING" in line and "webhook:" in line]
    assert len(warnings) == 1 and "/hooks/aliyun/***" in warnings[0], warnings
    d.stop()


def test_bad_requests_get_400_413_405_415_and_the_daemon_keeps_serving(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    d = start(world, [{"container": "app", "image": world.image()}])
    hook = f"/hooks/aliyun/{d.token}"
    json_ct = {"Content-Type": "application/json"}
    valid = json.dumps(acr_payload(world.ns, "web")).encode()
    no_push_data = json.dumps({"repository": {"namespace": world.ns, "name": "web"}}).encode()
    cases: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
        ("POST", hook, b"{not json", json_ct, 400),
        ("POST", hook, b"[1, 2]", json_ct, 400),
        ("POST", hook, b"", json_ct, 400),
        ("POST", hook, no_push_data, json_ct, 400),
        ("POST", hook, json.dumps(acr_payload("bad ns", "web")).encode(), json_ct, 400),
        ("POST", hook, b"x" * (64 * 1024 + 1), json_ct, 413),
        ("POST", hook, valid, {"Content-Type": "text/plain"}, 415),
        ("POST", "/v1/update", b"x" * 100_000, {"Authorization": f"Bearer {d.token}"}, 413),
        ("POST", "/v1/update?containers=app", None, {"Authorization": f"Bearer {d.token}"}, 400),
        ("GET", hook, None, {}, 405),
        ("PUT", hook, b"{}", json_ct, 405),
        ("GET", "/v1/update", None, {"Authorization": f"Bearer {d.token}"}, 405),
        ("POST", "/healthz", b"", {}, 405),
        ("DELETE", "/metrics", None, {}, 405),
    ]
    for method, path, body, headers, status in cases:
        answer = d.request(method, path, body, headers)
        assert answer.status == status, (method, path[:40], answer)
        assert "error" in answer.json(), answer
        if status == 405:
            assert answer.headers["allow"] in ("POST", "GET, HEAD")
        assert d.proc.poll() is None
    # Not even HTTP.
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01garbage that is no request line\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.")

    assert d.proc.poll() is None
    h = d.health()
    assert h["status"] == "ok" and h["passes"] == 1
    assert d.count("wake-up queued") == 0
    assert d.barrier()["passes"] == 2
    m = d.metrics()

    def hooks(kind: str, outcome: str) -> float:
        return m.get(("cr_agent_webhook_requests_total", (("kind", kind), ("outcome", outcome))), 0.0)

    assert hooks("aliyun", "bad_request") == 5
    assert hooks("aliyun", "too_large") == 1 and hooks("generic", "too_large") == 1
    assert hooks("aliyun", "method_not_allowed") == 2 and hooks("generic", "method_not_allowed") == 1
    assert hooks("aliyun", "unsupported_media_type") == 1
    assert d.token not in d.log()
    d.stop()


def test_a_hook_during_a_pass_is_queued_and_runs_a_second_pass_that_deploys(world: World) -> None:
    d1 = world.push_image("v1")
    world.run("app")
    d2 = world.push_image("v2")
    web = f"{world.ns}/web"
    world.fake.set_tags(web, {"latest": d1})  # ACR's view: v1 until we say otherwise
    d = start(world, [{"container": "app", "image": world.image()}])
    ghost = ghost_name(world)

    # A slow pass for the ghost entry alone: its one ACR request is delayed 3 s.
    world.fake.inject("delay", count=1, delay=3, action="GetRepoTags")
    assert d.update(ghost_name(world)).status == 202
    wait_until(lambda: d.health()["pass_running"], 10, "the slow pass to start")

    world.fake.set_tags(web, {"latest": d2})  # "the push", then ACR's hook, while the slow pass runs
    assert d.hook(acr_payload(world.ns, "web")).status == 202
    h = d.health()
    assert h["pass_running"] and h["passes"] == 1, h  # the hook arrived during pass 2
    assert d.count("wake-up queued") == 2

    h = d.wait_passes(3, 60)
    assert h["last_pass"]["results"] == {world.prefix + "app": "updated"}, h
    assert d2 in world.running_digests("app")
    log = d.log()
    # Pass 2 (ghost, slow) finished before pass 3 (the hook's) started: never two at once.
    starts = [m.start() for m in re.finditer(r"pass started \(wake-up\)", log)]
    dones = [m.start() for m in re.finditer(r"pass done:", log)]
    assert len(starts) == 2 and len(dones) == 3
    assert dones[1] < starts[1] < dones[2]
    assert f"{ghost}: skipped" in log[starts[0] : dones[1]]


def test_a_burst_of_50_hooks_makes_one_pass_and_one_deployment(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    old = world.container("app")["Id"]
    d = start(world, [{"container": "app", "image": world.image()}], debounce="2s")
    world.push_image("v2")
    payload = acr_payload(world.ns, "web")
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: d.hook(payload).status, range(50)))
    assert answers == [202] * 50
    assert d.count("wake-up queued") == 50

    h = d.wait_passes(2, 60)
    assert h["last_pass"]["results"] == {world.prefix + "app": "updated"}, h
    assert world.container("app")["Id"] != old
    h = d.barrier()  # nothing else was queued behind the burst
    assert h["passes"] == 3
    assert d.count("pass started (wake-up)") == 2
    assert d.count("updated=1") == 1
    m = d.metrics()
    assert m[("cr_agent_updates_total", ())] == 1
    assert m[("cr_agent_webhook_requests_total", (("kind", "aliyun"), ("outcome", "accepted")))] == 50
    assert world.containers() == [world.prefix + "app"]


def test_healthz_and_metrics_report_passes_updates_api_and_hook_counters_and_no_secret(world: World) -> None:
    world.push_image("v1")
    world.run("app")
    d = start(world, [{"container": "app", "image": world.image()}], inline_token=True)
    h = d.health()
    assert h["status"] == "ok" and h["passes"] == 1 and h["pass_running"] is False
    assert h["last_pass"]["reason"] == "schedule" and h["last_pass"]["ok"] is True
    assert h["last_pass"]["results"] == {world.prefix + "app": "up_to_date", ghost_name(world): "skipped"}
    first_time = h["last_pass"]["time"]

    world.push_image("v2")
    assert d.hook(acr_payload(world.ns, "web")).status == 202
    assert d.hook(acr_payload(world.ns, "unwatched")).json() == {"queued": []}
    assert d.hook(acr_payload(world.ns, "web"), token="nope" * 8).status == 404
    h = d.wait_passes(2)
    assert h["last_pass"]["ok"] is True and h["last_pass"]["reason"] == "wake-up"
    assert h["last_pass"]["results"] == {world.prefix + "app": "updated"}
    assert h["last_pass"]["time"] > first_time and h["last_pass"]["duration"] >= 0
    assert abs(h["last_pass"]["time"] - time.time()) < 120 and h["uptime"] > 0

    m = d.metrics()
    assert m[("cr_agent_passes_total", ())] == 2
    assert m[("cr_agent_updates_total", ())] == 1
    assert m[("cr_agent_results_total", (("status", "updated"),))] == 1
    assert m[("cr_agent_results_total", (("status", "up_to_date"),))] == 1
    assert m[("cr_agent_last_pass_ok", ())] == 1
    assert m[("cr_agent_api_requests_total", (("action", "GetRepoTags"), ("outcome", "ok")))] == 3
    assert m[("cr_agent_api_requests_total", (("action", "GetAuthorizationToken"), ("outcome", "ok")))] == 1
    assert m[("cr_agent_webhook_requests_total", (("kind", "aliyun"), ("outcome", "accepted")))] == 1
    assert m[("cr_agent_webhook_requests_total", (("kind", "aliyun"), ("outcome", "ignored")))] == 1
    assert m[("cr_agent_webhook_requests_total", (("kind", "aliyun"), ("outcome", "unauthorized")))] == 1

    assert d.request("GET", "/healthz").json() == {"status": "ok"}  # without the token: liveness only
    for path in ("/healthz", "/metrics"):
        for method in ("GET", "HEAD"):
            answer = d.request(method, path)
            assert answer.status == 200
            everything = (answer.body + json.dumps(answer.headers).encode()).decode()
            for secret in (d.token, KEY_SECRET):
                assert secret not in everything, (path, method)
    log = d.log()
    assert d.token not in log and KEY_SECRET not in log
    d.stop()


def test_the_generic_update_api_wakes_one_container_or_all(world: World) -> None:
    world.push_image("v1")
    world.push_image("a1", repo="api")
    world.run("app")
    world.run("app2", repo="api")
    d = start(world, [
        {"container": "app", "image": world.image()},
        {"container": "app2", "image": world.image("api")},
    ])  # fmt: skip
    d2 = world.push_image("v2")
    a2 = world.push_image("a2", repo="api")
    app, app2 = world.prefix + "app", world.prefix + "app2"

    # Refused: unknown container (nothing queued, not even the known one), bad query, no/wrong bearer.
    answer = d.update(app, "nobody")
    assert (answer.status, answer.json()["unknown"]) == (404, ["nobody"])
    assert d.update(app, "").status == 400
    assert d.update(app, token="x" * 40).status == 401
    assert d.count("wake-up queued") == 0

    answer = d.update(app2)
    assert (answer.status, answer.json()) == (202, {"queued": [app2]})
    h = d.wait_passes(2)
    assert h["last_pass"]["results"] == {app2: "updated"}, h
    assert a2 in world.running_digests("app2") and d2 not in world.running_digests("app")

    answer = d.update()
    assert answer.status == 202
    assert answer.json() == {"queued": sorted([app, app2, ghost_name(world)])}
    h = d.wait_passes(3)
    assert h["last_pass"]["results"] == {app: "updated", app2: "up_to_date", ghost_name(world): "skipped"}, h
    assert d2 in world.running_digests("app")
    assert world.containers() == sorted([app, app2])
    d.stop()


def test_match_tag_wakes_only_the_entries_following_the_pushed_tag(world: World) -> None:
    world.fake.set_tags(f"{world.ns}/{GHOST}", {"latest": "sha256:" + "1" * 64, "v2": "sha256:" + "2" * 64})
    d = start(world, [], match="tag")
    assert d.hook(acr_payload(world.ns, GHOST, tag="v2")).json() == {"queued": []}
    assert d.count("wake-up queued") == 0
    assert d.hook(acr_payload(world.ns, GHOST, tag="latest")).json() == {"queued": [ghost_name(world)]}
    h = d.wait_passes(2)
    assert h["last_pass"]["results"] == {ghost_name(world): "skipped"}


def test_a_failure_to_take_the_run_lock_does_not_stop_later_hooks(world: World) -> None:
    d = start(world, [])
    lock = world.tmp / "state" / "agent.lock"
    lock.unlink()
    lock.mkdir()  # the lock file cannot be opened (as with a full or read-only disk): an OSError
    assert d.update().status == 202
    wait_until(lambda: "Is a directory" in d.log(), 20, "the failed attempt to take the lock")
    lock.rmdir()
    d.barrier(timeout=15)  # the next hook must still run a pass (times out under the bug)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_the_metrics_listener_serves_metrics_and_health_details_without_a_webhook(world: World) -> None:
    """[metrics] alone: `agent run` serves /metrics and /healthz (details, on loopback) and no hook endpoint."""
    digest = world.push_image("v1")
    world.run("app")
    app = world.prefix + "app"
    cfg = world.config(
        [{"container": "app", "image": world.image()}], extra='[metrics]\nlisten = "127.0.0.1:0"'
    )
    proc = world.spawn("run", "-c", str(cfg))

    def listening() -> int | None:
        assert proc.poll() is None, world.log_of(proc)
        m = re.search(r"metrics: listening on 127\.0\.0\.1:(\d+)", world.log_of(proc))
        return int(m.group(1)) if m else None

    port = wait_until(listening, 30, "the metrics listener")
    d = Daemon(world, proc, token="", port=int(port or 0))

    def first_pass() -> dict[str, Any] | None:
        h = d.request("GET", "/healthz").json()
        return h if h.get("passes") == 1 and not h["pass_running"] else None

    h = wait_until(first_pass, 60, "the first pass, seen through /healthz")
    assert h is not None and h["status"] == "ok" and h["last_pass"]["results"][app] == "up_to_date"
    answer = d.request("GET", "/metrics")
    assert answer.status == 200
    m = metric_samples(answer.body.decode())
    assert m[("cr_agent_container_status", (("container", app), ("status", "up_to_date")))] == 1
    info = [k for k in m if k[0] == "cr_agent_container_info" and ("container", app) in k[1]]
    assert len(info) == 1 and ("digest", digest) in info[0][1], info
    assert m[("cr_agent_api_requests_total", (("action", "GetRepoTags"), ("outcome", "ok")))] >= 1
    assert m[("cr_agent_last_pass_timestamp_seconds", ())] > 0
    assert (
        d.request("POST", "/hooks/aliyun/anything", b"{}", {"Content-Type": "application/json"}).status == 404
    )
    assert d.request("POST", "/v1/update").status == 404
    d.stop()


def test_once_with_metrics_file_writes_the_textfile_for_node_exporter(world: World) -> None:
    """`agent once --metrics-file` writes last pass time, per-container status, running digest and ACR counts."""
    world.push_image("v1")
    world.run("app")
    new = world.push_image("v2")
    app = world.prefix + "app"
    cfg = world.config([{"container": "app", "image": world.image()}])
    out_dir = world.tmp / "textfile"
    out_dir.mkdir()
    target = out_dir / "cr_agent.prom"
    rc, report, err = world.once(cfg, "--metrics-file", str(target))
    assert rc == 0, err
    assert [r["status"] for r in report["results"]] == ["updated"]
    m = metric_samples(target.read_text())
    assert m[("cr_agent_container_status", (("container", app), ("status", "updated")))] == 1
    assert (
        m[("cr_agent_container_info", (("container", app), ("digest", new), ("image", world.image())))] == 1
    )
    assert m[("cr_agent_updates_total", ())] == 1
    assert m[("cr_agent_api_requests_total", (("action", "GetRepoTags"), ("outcome", "ok")))] >= 1
    assert abs(m[("cr_agent_last_pass_timestamp_seconds", ())] - time.time()) < 300
    assert [p.name for p in out_dir.iterdir()] == ["cr_agent.prom"]  # nothing half-written left beside it
    done = world.agent("once", "-c", str(cfg), "--dry-run", "--metrics-file", str(target))
    assert done.returncode == 2 and "--metrics-file" in done.stderr
