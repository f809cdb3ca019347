"""Downtime: the world (containers, proxy, fake ACR), the request loops, one update per method, main."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

import bench.downtime as package
from bench.common import World, ouroboros_python, ouroboros_versions
from bench.downtime import DOC, ROOT, WORK, log
from bench.downtime.analyse import (
    EXTRAS,
    GATE,
    LOOP_MAX_REQUESTS,
    LOOP_MAX_SECONDS,
    MAX_IN_FLIGHT,
    METHODS,
    NAME_PERIOD,
    OBSERVERS,
    PERIOD,
    PROXY_PERIOD,
    REQUEST_TIMEOUT,
    Method,
    Sample,
    agent_phases,
    agent_timeline,
    analyse,
    parse_client_log,
    summarize,
    uptime_offset,
)
from bench.downtime.render import render, rerender, write_handover
from tests.support import env, images
from tests.support.world import wait_port

RECEIVER = ROOT / "bench" / "blog_receiver.sh"
# `timeout N`, because this busybox's `wget -T` segfaults. A lookup of a name Docker does not know is
# forwarded to the host's resolvers, which this sandbox cannot reach, so it is bounded too.
LOOKUP = (
    "timeout 2 nslookup -type=a \"$1\" 127.0.0.11 2>/dev/null | awk '/^Name:/{f=1} f&&/^Address/{print $2}'"
)
PROXY_CGI = r"""#!/bin/sh
# A reverse proxy to http://<name>:8080/ (name: the query string, default `web`). wget resolves the name
# on every request (glibc's getaddrinfo, as most clients do) and connects to the first address; no retry;
# after 2 s or on any error it answers 502 naming the address it tried.
if body=$(timeout 2 wget -O- "http://${QUERY_STRING:-web}:8080/" 2>/tmp/err.$$); then
  printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s\n' "$body"
else
  ip=$(sed -n 's/^Connecting to [^(]*(\([0-9.]*\):.*/\1/p' /tmp/err.$$ | head -n 1)
  if [ -n "$ip" ]; then why="upstream $ip"; else why="no address"; fi
  printf 'HTTP/1.0 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\n%s\n' "$why"
fi
rm -f /tmp/err.$$
"""
PROXY_CMD = ["sh", "-c", "chmod 755 /www/cgi-bin/p; trap 'exit 0' TERM; httpd -f -p 8081 -h /www & wait"]


# ---- one HTTP request, classified -------------------------------------------------------------------
def http_get(port: int, path: str, timeout: float = REQUEST_TIMEOUT) -> tuple[str, str]:
    """(outcome, body): outcome is "ok" or why not (refused, reset, empty, timeout, http 502...)."""
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
    except ConnectionRefusedError:
        return "refused", ""
    except ConnectionResetError:
        return "reset" if not chunks else "reset mid-answer", ""
    except TimeoutError:
        return "timeout", ""
    except OSError as e:
        return f"error {e.errno}", ""
    data = b"".join(chunks)
    if not data:
        return "empty", ""
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    code = parts[1].decode(errors="replace") if len(parts) > 1 else "?"
    text = body.decode(errors="replace").strip()
    return ("ok", text) if code == "200" else (f"http {code}", text)


class HostLoop:
    """Requests from the host to 127.0.0.1:port/path, one started every `period` s whatever the earlier ones
    are doing (an open loop, like independent users: a hanging request does not hold back the next),
    bounded in count and in time."""

    def __init__(self, port: int, path: str = "/", period: float = PERIOD) -> None:
        self.port, self.path, self.period = port, path, period
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT)
        self._slots = threading.Semaphore(MAX_IN_FLIGHT)
        self.delayed = 0  # requests sent late because MAX_IN_FLIGHT were pending

    def start(self) -> HostLoop:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._pool.shutdown(wait=True)
        return sorted(self.samples, key=lambda s: s.t)

    def _one(self) -> None:
        try:
            t0 = time.time()
            outcome, body = http_get(self.port, self.path)
            self.samples.append(Sample(time.time(), outcome, body, t0))
        finally:
            self._slots.release()

    def _run(self) -> None:
        t_end = time.monotonic() + LOOP_MAX_SECONDS
        nxt = time.monotonic()
        sent = 0
        while not self._stop.is_set() and sent < LOOP_MAX_REQUESTS and time.monotonic() < t_end:
            if not self._slots.acquire(blocking=False):
                self.delayed += 1
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
            self._pool.submit(self._one)
            sent += 1
            nxt += self.period
            delay = nxt - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                nxt = time.monotonic()

    def seen(self, marker: str) -> bool:
        return any(s.body == marker for s in self.samples[-50:])

    def answered(self) -> int:
        return sum(1 for s in self.samples if s.outcome == "ok")


def client_loop_cmd(n: int, target: str = "web", skip: str = "") -> list[str]:
    """The in-network client of tests/integration/test_safety.py (`wget http://web:8080/` in a loop), in two
    steps so that a failure can be told apart: resolve `target` through Docker's DNS, then GET the first
    address (`skip`: an address to leave out). Each line: /proc/uptime (10 ms) at the start, after the
    lookup and after the answer; the addresses; OK <page> or FAIL. A closed loop: one request at a time."""
    pick = f"grep -v -x '{skip}' | " if skip else ""
    script = (
        f"trap 'exit 0' TERM; lookup() {{ {LOOKUP}; }}; i=0; while [ $i -lt {n} ]; do i=$((i+1)); "
        f"read a rest </proc/uptime; ips=$(lookup {target} | {pick}tr '\\n' ,); "
        "read b rest </proc/uptime; ip=${ips%%,*}; "
        'if [ -n "$ip" ] && timeout 2 wget -q -O /tmp/o "http://$ip:8080/" 2>/dev/null; '
        'then r="OK $(cat /tmp/o)"; else r=FAIL; fi; '
        'read c rest </proc/uptime; echo "$a $b $c ${ips:-none} $r"; usleep 20000; done & wait'
    )
    return ["sh", "-c", script]


def agent_code() -> dict[str, Any]:
    """Which agent/ was measured: the commit, and a hash of uncommitted changes under agent/ if any."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    diff = git("diff", "HEAD", "--", "agent")
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty_files": git("diff", "HEAD", "--name-only", "--",
            "agent").split(), "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None}  # fmt: skip


# ---- the world ---------------------------------------------------------------------------------------
class Bench(World):
    """The benchmarks' World plus a user-defined network, the reverse proxy and the in-network clients."""

    def __init__(self, keep: bool = False) -> None:
        super().__init__("downtime", keep=keep)
        self.proxy_port: int | None = None

    @property
    def net(self) -> str:
        return self.prefix + "net"

    @property
    def tools_image(self) -> str:
        return self.ref("tools")

    def push_web(self, repo: str, marker: str, *, keep_local: bool = True) -> str:
        """The demo httpd image with `marker` as its page, pushed as repo:latest; return the image id.

        keep_local=False deletes the local image, as if CI had built it: the update's pull then downloads
        its new layers (the busybox layers are shared with the running version).
        """
        return self.build_push(repo, marker, http=True, keep_local=keep_local)[0]

    def ensure_proxy(self) -> int:
        """The user-defined network, and the reverse proxy container publishing 127.0.0.1:<port>."""
        if self.proxy_port is not None:
            return self.proxy_port
        self.api.create_network(self.net, driver="bridge")
        images.build_image(self.tools_image, marker=self.prefix + "tools", files={"/www/cgi-bin/p": PROXY_CGI},
                           cmd=PROXY_CMD, docker_client=self.client)  # fmt: skip
        port = images.free_port()
        hc = self.api.create_host_config(port_bindings={8081: ("127.0.0.1", port)}, network_mode=self.net)
        c = self.api.create_container(
            self.tools_image, name=self.prefix + "proxy", host_config=hc, ports=[8081]
        )
        self.api.start(c["Id"])
        wait_port(port, 30, "the proxy")
        self.proxy_port = port
        return port

    def run_web(self, name: str, ref: str, exposure: str, port: int | None = None, start: bool = True,
                alias: str = "web") -> str:  # fmt: skip
        if exposure == "port":
            hc = self.api.create_host_config(port_bindings={8080: ("127.0.0.1", port)})
            c = self.api.create_container(ref, name=name, host_config=hc, ports=[8080])
        else:  # as compose does it: on the project network, the service name as an alias
            nc = self.api.create_networking_config(
                {self.net: self.api.create_endpoint_config(aliases=[alias])}
            )
            hc = self.api.create_host_config(network_mode=self.net)
            c = self.api.create_container(ref, name=name, host_config=hc, networking_config=nc)
        if start:
            self.api.start(c["Id"])
        return str(c["Id"])

    def ip_of(self, name: str) -> str | None:
        nets = self.api.inspect_container(name)["NetworkSettings"]["Networks"]
        return (nets.get(self.net) or {}).get("IPAddress") or None

    def network_events(self, since: float, until: float, who: dict[str, str]) -> list[tuple[float, str, str]]:
        """(epoch s, connect|disconnect, who[container id]) on the bench network, from the engine's event log."""
        found = self.api.events(since=int(since), until=int(until) + 1, decode=True,
                                filters={"type": "network", "network": self.net})  # fmt: skip
        return [
            (
                e["timeNano"] / 1e9,
                e["Action"],
                who.get(e["Actor"]["Attributes"].get("container", ""), "other"),
            )
            for e in found
            if e.get("timeNano", 0) / 1e9 >= since and e["Action"] in ("connect", "disconnect")
        ]

    def run_client(self, name: str, target: str = "web", skip: str = "") -> str:
        hc = self.api.create_host_config(network_mode=self.net)
        c = self.api.create_container(self.tools_image, name=name, host_config=hc,
                                      command=client_loop_cmd(int(LOOP_MAX_SECONDS / 0.02), target, skip))  # fmt: skip
        self.api.start(c["Id"])
        return str(c["Id"])

    def client_samples(self, cid: str) -> list[Sample]:
        offset = uptime_offset()
        with contextlib.suppress(docker.errors.APIError):
            self.api.stop(cid, timeout=2)
        return parse_client_log(self.api.logs(cid).decode(errors="replace"), offset)


def wait_for(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---- the container's own times -------------------------------------------------------------------------
def measure_start(b: Bench, i: int) -> dict[str, Any]:
    """`docker start` → first answer on a published port (a 2 ms host loop), and `docker stop`'s duration."""
    marker = f"{b.prefix}base-{i}"
    b.push_web("base", marker)
    name = f"{b.prefix}base-{i}"
    port = images.free_port()
    cid = b.run_web(name, b.ref("base"), "port", port, start=False)
    loop = HostLoop(port, "/", period=0.002)
    try:
        loop.start()
        time.sleep(0.2)
        t0 = time.time()
        b.api.start(cid)
        t_started = time.time()
        wait_for(lambda: loop.seen(marker), 30, f"{name} to answer")
        first = min(s.t for s in loop.samples if s.body == marker)
        time.sleep(0.3)
        t1 = time.time()
        b.api.stop(cid)
        t2 = time.time()
        time.sleep(0.1)
        samples = loop.stop()
        last = max((s.t for s in samples if s.body == marker), default=t1)
        return {"start_to_answer_ms": round((first - t0) * 1000, 1), "start_call_ms": round((t_started - t0) * 1000, 1),
                "stop_call_ms": round((t2 - t1) * 1000, 1), "stop_to_last_answer_ms": round((last - t1) * 1000, 1)}  # fmt: skip
    finally:
        loop.stop()
        b.remove_containers(name)


def measure_dns_race(b: Bench, i: int) -> dict[str, Any]:
    """When a starting container's alias appears in Docker's DNS, against the start call and its first answer.

    A container already answers as `web`; a client loop resolves `web`, leaves that one's address out, and
    GETs the other (the new one) as soon as the lookup returns it; a second loop only resolves.
    """
    b.ensure_proxy()
    anchor = f"{b.prefix}race-anchor-{i}"
    b.push_web("race", f"{b.prefix}race-{i}")
    b.run_web(anchor, b.ref("race"), "proxy")
    skip = b.ip_of(anchor) or ""
    con = b.run_client(f"{b.prefix}race-client-{i}", "web", skip)
    name = f"{b.prefix}race-new-{i}"
    try:
        time.sleep(1.0)
        cid = b.run_web(name, b.ref("race"), "proxy", start=False)
        t0 = time.time()
        b.api.start(cid)
        t1 = time.time()
        time.sleep(3.0)
        samples = b.client_samples(con)
        tried = [s for s in samples if s.ips and s.t0 is not None and s.t0 + (s.dns_s or 0) >= t0 - 0.01]
        first_dns = min(((s.t0 or 0) + (s.dns_s or 0) for s in tried), default=None)
        first_ok = min((s.t for s in tried if s.outcome == "ok"), default=None)
        first_try = tried[0] if tried else None

        def rel(x: float | None) -> float | None:
            return None if x is None else round((x - t0) * 1000, 1)

        return {"start_call_ms": rel(t1), "in_dns_ms": rel(first_dns), "first_answer_ms": rel(first_ok),
                "first_request_ms": [rel((first_try.t0 or 0) + (first_try.dns_s or 0)), rel(first_try.t),
                                     first_try.outcome] if first_try else None}  # fmt: skip
    finally:
        b.remove_containers(f"{b.prefix}race-")


# ---- one update, observed -------------------------------------------------------------------------------
def run_method(b: Bench, m: Method, i: int, ouro: Path | None) -> dict[str, Any]:
    slug = f"{m.key}-{i}"
    name = b.prefix + slug
    repo = "web-" + m.key.replace("ouroboros", "o")  # Ouroboros skips images whose name has "ouroboros"
    ref = b.ref(repo)
    old, new = (
        f"{b.prefix}{slug}-v1",
        f"{b.prefix}{slug}-v2",
    )  # unique pages: images are not shared between runs
    v1 = b.push_web(repo, old)
    port = images.free_port() if m.exposure == "port" else None
    if m.exposure == "proxy":
        b.ensure_proxy()
    old_id = b.run_web(name, ref, m.exposure, port)
    ips: dict[str, str | None] = {"old": b.ip_of(name)} if m.exposure == "proxy" else {}
    if port:
        loops = {"host": HostLoop(port, "/")}
    else:
        loops = {"alias": HostLoop(b.proxy_port or 0, "/cgi-bin/p?web", PROXY_PERIOD),
                 "name": HostLoop(b.proxy_port or 0, f"/cgi-bin/p?{name}", NAME_PERIOD)}  # fmt: skip
    first = next(iter(loops.values()))
    wait_for(lambda: http_get(first.port, first.path, 2.0) == ("ok", old), 30, f"{name} to answer {old}")
    b.push_web(repo, new, keep_local=False)
    b.api.tag(
        v1, ref.rsplit(":", 1)[0], "latest"
    )  # the host's tag names what it pulled last (Ouroboros needs it)
    client = None
    out: dict[str, Any] = {"method": m.key, "run": i}
    samples: dict[str, list[Sample]] = {}
    try:
        if m.exposure == "proxy":
            client = b.run_client(f"{b.prefix}client-{slug}")
        for loop in loops.values():
            loop.start()
        wait_for(lambda: all(lp.answered() >= 20 for lp in loops.values()), 30, "the loops to get answers")
        time.sleep(0.3)
        t0 = time.time()
        out["tool"] = tool = run_tool(b, m, name, ref, port, ouro)
        out["tool_wall_ms"] = round((time.time() - t0) * 1000, 1)
        wait_for(lambda: all(lp.seen(new) for lp in loops.values()), 30, f"answers from {new}")
        if m.exposure == "proxy":
            ips["new"] = b.ip_of(name)
            who = {old_id: "old", b.api.inspect_container(name)["Id"]: "new"}
            out["network_events"] = b.network_events(t0, time.time(), who)
        time.sleep(0.5)
    finally:
        for key, loop in loops.items():
            samples[key] = loop.stop()
        if client:
            samples["client"] = b.client_samples(client)
        b.remove_containers(name)
        b.remove_containers(f"{b.prefix}client-{slug}")
    out["t_trigger"] = t0
    out["ips"] = ips
    for key, ss in samples.items():
        out[key] = analyse(ss, old, new, ips, since=t0)
        if key in loops:
            out[key]["sent_late"] = loops[key].delayed
    tl = tool.get("timeline")
    main_obs = out.get("host") or out.get("alias")
    if tl and main_obs and main_obs["gap_from"]:
        # Where the longest gap sits against the agent's steps (ms after the step).
        for step in ("stop_old", "start_new", "healthy"):
            if step in tl:
                out[f"gap_from_minus_{step}_ms"] = round((main_obs["gap_from"] - tl[step]) * 1000, 1)
                out[f"gap_to_minus_{step}_ms"] = round((main_obs["gap_to"] - tl[step]) * 1000, 1)
    return out


def run_tool(b: Bench, m: Method, name: str, ref: str, port: int | None, ouro: Path | None) -> dict[str, Any]:
    if m.tool == "agent":
        return run_agent(b, m, name, ref)
    if m.tool == "ouroboros":
        assert ouro is not None
        # A minimal environment: Ouroboros also reads its options from environment variables. Its own
        # registry login flags, and an empty DOCKER_CONFIG so that it cannot use anyone's stored login.
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(b.dir), "LANG": "C.UTF-8",
             "DOCKER_CONFIG": str(b.docker_config("empty", False))}  # fmt: skip
        cmd = [str(ouro), "--run-once", "--monitor", name, "--repo-user", env.REGISTRY_USER,
               "--repo-pass", env.REGISTRY_PASSWORD, "--skip-startup-notifications", "--log-level", "debug"]  # fmt: skip
        notes = []
        for _attempt in range(3):
            done = subprocess.run(cmd, env=e, cwd=b.dir, capture_output=True, text=True, timeout=180)
            text = (done.stdout + done.stderr).replace(env.REGISTRY_PASSWORD, "***")
            (b.dir / f"ouroboros-{name}.log").write_text(text)
            # At start-up it inspects the image of every running container on the host; when another user's
            # image disappears meanwhile, its error handler itself raises (AttributeError: docker_socket)
            # and it exits before touching anything. Counted, and run again.
            if (
                done.returncode != 0
                and "has no attribute 'docker_socket'" in text
                and "will be updated" not in text
            ):
                notes.append("crashed at start-up (AttributeError: docker_socket) when another container's image "
                             "vanished during its scan; run again")  # fmt: skip
                continue
            break
        if done.returncode != 0 or f"{name} will be updated" not in text:
            raise RuntimeError(f"ouroboros did not update {name} (rc {done.returncode}):\n{text[-1500:]}")
        if "has no attribute 'servers'" in text:
            notes.append("its notifier raised AttributeError after the update")
        return {"rc": done.returncode, "notes": notes}
    e = {**os.environ, "DOCKER_CONFIG": str(b.docker_config("blog", True))}
    done = subprocess.run(["bash", str(RECEIVER), name, ref, f"127.0.0.1:{port}:8080"], env=e,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"blog_receiver.sh failed ({done.returncode}): {done.stderr}")
    return {"rc": done.returncode}


def run_agent(b: Bench, m: Method, name: str, ref: str) -> dict[str, Any]:
    d = b.dir / name
    watch = {"container": name, "image": ref, "strategy": m.strategy, **GATE}
    cfg = b.agent_config(f"{name}/agent.toml", [watch], state=f"{name}/state")
    e = b.agent_env()  # start-up as after a pip install: bytecode cached (bench/work/pycache)
    args = ["once", "-c", str(cfg), "--json", "--log-level", "DEBUG", "--log-json"]
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args], cwd=d, env=e, capture_output=True, text=True, timeout=300
    )
    (d / "agent.log").write_text(done.stderr)
    try:
        result = json.loads(done.stdout)["results"][0]
    except (ValueError, KeyError, IndexError):
        raise RuntimeError(
            f"agent gave no report (rc {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
        ) from None
    if done.returncode != 0 or result.get("status") != "updated":
        raise RuntimeError(f"agent did not update {name}: {result}\n{done.stderr[-3000:]}")
    strategy = str(result.get("strategy") or m.strategy)
    tl = agent_timeline(done.stderr, name)
    return {"rc": done.returncode, "strategy": strategy, "timeline": tl, "phases": agent_phases(tl, strategy)}


# ---- the whole benchmark --------------------------------------------------------------------------------


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the callers' finally: everything is cleaned up


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.downtime", description=(package.__doc__ or "").splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="1 run per method, no extras, Ouroboros only if installed; "
                                                        "writes bench/work/quick/")  # fmt: skip
    p.add_argument("--runs", type=int, help="runs per method (default 5; quick 1)")
    p.add_argument(
        "--extras",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stop-first behind the proxy (default: on, off in quick)",
    )
    p.add_argument("--no-ouroboros", action="store_true", help="skip Ouroboros")
    p.add_argument("--only", nargs="*", metavar="KEY", help="these methods only (results go to bench/work/)")
    p.add_argument(
        "--keep", action="store_true", help="keep the run directory (agent logs) under bench/work/runs/"
    )
    p.add_argument("--from-json", metavar="PATH", help="only rewrite the page from a run's downtime.json")
    p.add_argument("--handover", type=int, metavar="N", help="only N start-first updates with clients that never "
                   "retry; rewrites the page's hand-over block")  # fmt: skip
    a = p.parse_args(argv)
    if a.from_json and "updates" in json.loads(Path(a.from_json).read_text()):
        return write_handover(json.loads(Path(a.from_json).read_text()))
    if a.from_json:
        return rerender(Path(a.from_json).resolve())
    if a.handover:
        return handover(a.handover, keep=a.keep)
    runs = a.runs or (1 if a.quick else 5)
    extras = (not a.quick) if a.extras is None else a.extras
    py = None if a.no_ouroboros else ouroboros_python(install=not a.quick)
    ouro = py.parent / "ouroboros" if py is not None else None
    methods = [m for m in METHODS + EXTRAS if (m in METHODS or extras) if not a.only or m.key in a.only]
    methods = [m for m in methods if ouro is not None or m.tool != "ouroboros"]
    to_doc = not (a.quick or a.only or runs < 3)
    started = time.monotonic()
    b = Bench(keep=a.keep)

    signal.signal(signal.SIGTERM, _exit_on_signal)
    out: dict[str, Any] = {
        "runs": runs, "quick": a.quick, "methods": {m.key: m.label for m in methods}, "periods_ms": [PERIOD * 1000, PROXY_PERIOD * 1000, NAME_PERIOD * 1000],
        "gate": GATE, "agent_code": agent_code(), "rounds": [], "errors": [],
        "command": "python -m bench.downtime" + "".join(f" {x}" for x in (argv if argv is not None else sys.argv[1:])
                                                        if x != "--keep"), "to_doc": to_doc,
    }  # fmt: skip
    try:
        b.__enter__()
        out["facts"] = b.facts
        if py is not None:
            out["ouroboros"] = ", ".join(f"{k} {v}" for k, v in ouroboros_versions(py).items())
        for i in range(runs):
            rnd: dict[str, Any] = {"start": measure_start(b, i)}
            if any(m.exposure == "proxy" for m in methods):
                rnd["dns_race"] = measure_dns_race(b, i)
            log(f"round {i + 1}/{runs}: container start {rnd['start']}; alias in DNS {rnd.get('dns_race')}")
            for m in methods:
                try:
                    r = run_method(b, m, i, ouro)
                except Exception as e:  # noqa: BLE001 - one broken method must not hide the others
                    log(f"{m.key} run {i}: FAILED: {e}")
                    out["errors"].append({"method": m.key, "run": i, "error": str(e)[-3000:]})
                    continue
                rnd[m.key] = r
                log(f"{m.key} run {i}: " + "; ".join(
                    f"{k} {r[k]['failed']}/{r[k]['requests']} failed, gap {r[k]['longest_gap_ms']} ms"
                    for k in OBSERVERS if k in r))  # fmt: skip
            out["rounds"].append(rnd)
    finally:
        out["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        b.close()
    out["seconds"] = round(time.monotonic() - started, 1)
    out["summary"] = summarize(out, methods)
    res = WORK / ("quick" if a.quick else "results")
    res.mkdir(parents=True, exist_ok=True)
    (res / "downtime.json").write_text(json.dumps(out, indent=1) + "\n")
    text = render(out, methods, res)
    target = DOC if to_doc else res / "benchmarks-downtime.md"
    target.write_text(text)
    log(
        f"wrote {(res / 'downtime.json').relative_to(ROOT)} and {target.relative_to(ROOT)} in {out['seconds']} s"
    )
    return 1 if out["errors"] else 0


# ---- --handover N: start-first only, N updates, clients that never retry ------------------------------------
def handover(updates: int, keep: bool = False) -> int:
    method = next(m for m in METHODS if m.key == "agent-start")
    b = Bench(keep=keep)
    out: dict[str, Any] = {
        "updates": updates,
        "agent_code": agent_code(),
        "gate": GATE,
        "runs": [],
        "errors": [],
    }
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        b.__enter__()
        out["facts"] = b.facts
        for i in range(updates):
            try:
                r = run_method(b, method, i, None)
            except Exception as e:  # noqa: BLE001 - count it and go on
                log(f"update {i + 1}: FAILED: {e}")
                out["errors"].append({"run": i, "error": str(e)[-3000:]})
                continue
            out["runs"].append(r)
            log(f"update {i + 1}/{updates}: " + "; ".join(
                f"{k} {r[k]['failed']} failed, {r[k]['stalled_over_0_9s']} stalled" for k in OBSERVERS if k in r))  # fmt: skip
    finally:
        out["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        b.close()
    out["seconds"] = round(time.monotonic() - started, 1)
    res = WORK / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "handover.json").write_text(json.dumps(out, indent=1) + "\n")
    return write_handover(out)
