"""Webhook load benchmark: a bounded load on a real `agent run`, and webhook push-to-running.

Everything runs on loopback, in a `World` (tests/support/world.py through bench/common.py): the agent
(`agent run`, a subprocess), the fake ACR API as a process (told each new digest), a private
registry and the Docker engine, with a few real containers.

Phases, each bounded by a duration and a request count, stopping by themselves:

1. `GET /healthz`, sustained, from `--threads` client threads (one connection per request, as the
   server closes every connection);
2. `POST /hooks/aliyun/<token>` with ACR's payload for the watched repository, the same way. Every
   hook is accepted (202) and queues a wake-up; the daemon's debounce must turn them into at most
   one pass per debounce window (the tag does not change, so those passes are cheap checks);
3. webhook push-to-running, `--reps` times per debounce value: push a new image (then drop the local
   copy, so the agent really pulls it), POST the hook, and poll Docker until the new container runs.
   The agent's own log timestamps split the time into: debounce wait, ACR API + pull, replace.

Reported: requests/s, latency p50/p99/max, errors (and 503 "busy" answers), the agent's VmRSS and
VmHWM from /proc before and after, passes run, push-to-running median/min/max, and machine facts.
Everything created carries the prefix `crb-<hex>-` and is removed at the end (only that).

    python -m bench.webhook_load            # the full run (about 1-2 minutes)
    python -m bench.webhook_load --quick    # a CI smoke run: 1 s phases, one rep
    python -m bench.webhook_load --json-out results.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import math
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from prometheus_client.parser import text_string_to_metric_families

from bench.common import World, agent_cmd, agent_events, wait_agent_event
from tests.support import payloads


def log(msg: str) -> None:
    print(f"[webhook-load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- measurements ---------------------------------------------------------------------------------
def percentile(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `xs`."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def spread(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "median": round(statistics.median(xs), 3), "min": round(min(xs), 3),
            "max": round(max(xs), 3), "values": [round(x, 3) for x in xs]}  # fmt: skip


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid` in KiB (from /proc/<pid>/status)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# ---- HTTP -----------------------------------------------------------------------------------------
def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class LoadResult:
    name: str
    threads: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self, ok_status: int) -> dict[str, Any]:
        n = sum(self.statuses.values()) + sum(self.errors.values())
        ms = [x * 1000 for x in self.latencies]
        bad = sum(c for s, c in self.statuses.items() if s != ok_status) + sum(self.errors.values())
        return {
            "endpoint": self.name, "threads": self.threads, "requests": n, "seconds": round(self.seconds, 2),
            "rps": round(n / self.seconds, 1) if self.seconds else None,
            "p50_ms": round(percentile(ms, 50) or 0, 2), "p99_ms": round(percentile(ms, 99) or 0, 2),
            "max_ms": round(max(ms, default=0), 2), "errors": bad, "busy_503": self.statuses.get(503, 0),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "exceptions": dict(self.errors),
        }  # fmt: skip


def load(name: str, port: int, request: Callable[[], tuple[str, str, bytes | None, dict[str, str]]],
         *, threads: int, seconds: float, max_requests: int) -> LoadResult:  # fmt: skip
    """`threads` clients, each sending requests back to back until `seconds` pass or `max_requests` are sent."""
    result = LoadResult(name, threads)
    lock = threading.Lock()
    sent = 0
    deadline = time.monotonic() + seconds

    def client() -> None:
        nonlocal sent
        lat: list[float] = []
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        while time.monotonic() < deadline:
            with lock:
                if sent >= max_requests:
                    break
                sent += 1
            method, path, body, headers = request()
            t0 = time.perf_counter()
            try:
                status, _ = call(port, method, path, body, headers)
            except (OSError, http.client.HTTPException) as e:
                errors[type(e).__name__] += 1
                continue
            lat.append(time.perf_counter() - t0)
            statuses[status] += 1
        with lock:
            result.latencies += lat
            result.statuses.update(statuses)
            result.errors.update(errors)

    workers = [threading.Thread(target=client, name=f"load-{i}") for i in range(threads)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    result.seconds = time.monotonic() - t0
    return result


# ---- the world: fake ACR, images, containers, the agent -------------------------------------------
def acr_payload(namespace: str, name: str, tag: str = "latest") -> bytes:
    return json.dumps(payloads.acr_payload(namespace, name, tag)).encode()


class Bench:
    """A World (bench/common.py) plus the `agent run` process under load."""

    def __init__(self, args: argparse.Namespace, w: World) -> None:
        self.args, self.w = args, w
        self.token = secrets.token_hex(24)
        self.agent: subprocess.Popen[str] | None = None
        self.agent_log: Path | None = None
        self.port = 0
        self.runs = 0

    def config(self, debounce: str, containers: list[tuple[str, str]]) -> Path:
        webhook = f'[webhook]\nlisten = "127.0.0.1:0"\ntoken_env = "CR_AGENT_WEBHOOK_TOKEN"\ndebounce = "{debounce}"\n'
        watches = [
            {"container": name, "image": self.w.ref(repo), "min_uptime": "1s"} for name, repo in containers
        ]
        return self.w.agent_config(f"agent-{debounce}.toml", watches, extra=webhook)

    def start_agent(self, cfg: Path) -> None:
        self.runs += 1
        self.agent_log = self.w.dir / f"agent-{self.runs}.log"
        with open(self.agent_log, "w") as out:
            self.agent = subprocess.Popen(
                agent_cmd("run", "--log-json", "-c", str(cfg)), cwd=self.w.dir, env=self.w.agent_env(CR_AGENT_WEBHOOK_TOKEN=self.token),
                stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        self.port = int(wait_agent_event(self.agent, self.agent_log, "server.listening", 60)["port"])
        wait_agent_event(self.agent, self.agent_log, "pass.done", 60)

    def stop_agent(self) -> int | None:
        if self.agent is None or self.agent.poll() is not None:
            return self.agent.returncode if self.agent else None
        self.agent.send_signal(signal.SIGTERM)
        try:
            return self.agent.wait(30)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait(10)
            return None

    def log_text(self) -> str:
        return self.agent_log.read_text() if self.agent_log else ""

    def events(self, offset: int, *names: str) -> list[dict[str, Any]]:
        """The agent's `--log-json` events (those named) logged after `offset` characters of its log."""
        return agent_events(self.log_text()[offset:], *names)

    def health(self) -> dict[str, Any]:
        status, body = call(self.port, "GET", "/healthz", headers={"Authorization": f"Bearer {self.token}"})
        if status != 200:
            raise RuntimeError(f"/healthz answered {status}")
        return dict(json.loads(body))

    def api_seconds(self) -> float:
        _, body = call(self.port, "GET", "/metrics")
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == "cr_agent_api_request_duration_seconds_sum":
                    total += s.value
        return total

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.agent is not None and self.agent.poll() is not None:
                raise RuntimeError(f"the agent exited while waiting for {what}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)


# ---- phases ---------------------------------------------------------------------------------------
def load_phases(b: Bench, debounce: float) -> dict[str, Any]:
    a = b.args
    out: dict[str, Any] = {}
    pid = b.agent.pid if b.agent else 0
    out["rss_kib_before"] = proc_status(pid)
    passes0 = b.health()["passes"]

    log(f"phase 1: GET /healthz, {a.threads} threads, {a.seconds}s")
    r = load("GET /healthz", b.port, lambda: ("GET", "/healthz", None, {}),
             threads=a.threads, seconds=a.seconds, max_requests=a.max_requests)  # fmt: skip
    out["healthz"] = r.summary(200)
    out["healthz"]["passes"] = b.health()["passes"] - passes0
    out["rss_kib_after_healthz"] = proc_status(pid)

    log(f"phase 2: POST /hooks/aliyun/<token>, {a.threads} threads, {a.seconds}s")
    body = acr_payload(b.w.ns, "web")
    path = f"/hooks/aliyun/{b.token}"
    headers = {"Content-Type": "application/json"}
    passes1 = b.health()["passes"]
    offset = len(b.log_text())
    started_wall = time.time()
    r = load("POST /hooks/aliyun/<token>", b.port, lambda: ("POST", path, body, headers),
             threads=a.threads, seconds=a.seconds, max_requests=a.max_requests)  # fmt: skip
    out["hooks"] = r.summary(202)
    # Every queued wake-up must be followed by a pass that started after it and finished; then stay
    # quiet for one more debounce window (plus a margin), in case one was queued while that pass began.
    while True:
        h = b.wait(lambda: settled(b, offset), 5 * debounce + 120, "the pass after the hooks")
        time.sleep(debounce + 1.0)
        if b.health()["passes"] == h["passes"]:
            break
    starts = [e["ts"] - started_wall for e in b.events(offset, "pass.start") if e["reason"] == "wake-up"]
    passes = h["passes"] - passes1
    span = max(starts, default=0.0)  # from the first hook to the start of the last pass it caused
    bound = 1 + math.floor(span / debounce) if debounce > 0 else None
    out["hooks"].update(
        passes=passes, passes_bound=bound, passes_within_bound=bound is None or passes <= bound,
        pass_starts_after_first_hook_s=[round(x, 2) for x in starts],
        wakeups_logged=len(b.events(offset, "wake.queued")),
    )  # fmt: skip
    out["rss_kib_after_hooks"] = proc_status(pid)
    return out


def settled(b: Bench, offset: int) -> dict[str, Any] | None:
    """/healthz once the last wake-up queued since `offset` has been followed by a finished pass."""
    events = b.events(offset, "wake.queued", "pass.start", "pass.done")
    h = b.health()

    def last(name: str, **fields: str) -> int:
        match = [i for i, e in enumerate(events) if e["event"] == name and fields.items() <= e.items()]
        return match[-1] if match else -1

    last_start = last("pass.start", reason="wake-up")
    if last_start > last("wake.queued") and last("pass.done") > last_start and not h["pass_running"]:
        return h
    return None


def new_container_running(b: Bench, container: str, old: str, image_id: str) -> bool:
    with contextlib.suppress(docker.errors.NotFound):
        c = b.w.api.inspect_container(container)
        return bool(c["Id"] != old and c["Image"] == image_id and c["State"]["Running"])
    return False


def pass_finished(b: Bench, passes_before: int) -> dict[str, Any] | None:
    h = b.health()
    return h if h["passes"] > passes_before and not h["pass_running"] else None


def push_to_running(b: Bench, container: str, reps: int, layer_mb: int) -> dict[str, Any]:
    """POST -> the new container running, with a breakdown from the agent's log timestamps."""
    rows: list[dict[str, float]] = []
    for i in range(reps):
        # Not kept locally, so the agent pulls the new layers from the registry, as on a real host.
        marker = f"lat-{b.runs}-{i}-{secrets.token_hex(4)}"
        image_id, digest = b.w.build_push("lat", marker, payload=layer_mb << 20, keep_local=False)
        passes = b.health()["passes"]
        api0 = b.api_seconds()
        offset = len(b.log_text())
        old = b.w.api.inspect_container(container)["Id"]
        t0 = time.time()
        status, _ = call(b.port, "POST", "/hooks/aliyun/" + b.token, acr_payload(b.w.ns, "lat"),
                         {"Content-Type": "application/json"})  # fmt: skip
        if status != 202:
            raise RuntimeError(f"hook answered {status}")

        new = functools.partial(new_container_running, b, container, old, image_id)
        b.wait(new, 120, "the new container running", interval=0.01)
        t_running = time.time()
        h = b.wait(lambda: pass_finished(b, passes), 120, "pass done")  # noqa: B023
        if h["last_pass"]["results"].get(container) != "updated":
            raise RuntimeError(f"unexpected pass: {h['last_pass']}")
        api = b.api_seconds() - api0
        events = b.events(offset, "wake.queued", "pass.start", "plan.update")
        marks: dict[str, float] = {}
        for key, name, fields in (("queued", "wake.queued", {}), ("started", "pass.start", {"reason": "wake-up"}),
                                  ("replacing", "plan.update", {"container": container})):  # fmt: skip
            marks[key] = next(e["ts"] for e in events if e["event"] == name and fields.items() <= e.items())
        log(f"  rep {i + 1}: {digest}")
        row = {
            "post_to_running_s": t_running - t0,
            "post_to_queued_s": marks["queued"] - t0, "debounce_wait_s": marks["started"] - marks["queued"],
            "api_s": api, "pull_s": max(0.0, marks["replacing"] - marks["started"] - api),
            "replace_to_running_s": t_running - marks["replacing"],
        }  # fmt: skip
        log("  rep {}: POST->running {:.2f}s (debounce wait {:.2f}, API {:.3f}, pull ~{:.2f}, replace {:.2f})".format(
            i + 1, row["post_to_running_s"], row["debounce_wait_s"], row["api_s"], row["pull_s"],
            row["replace_to_running_s"]))  # fmt: skip
        rows.append(row)
    keys = (
        "post_to_running_s",
        "debounce_wait_s",
        "api_s",
        "pull_s",
        "replace_to_running_s",
        "post_to_queued_s",
    )
    return {"reps": reps, "layer_mb": layer_mb, **{k: spread([r[k] for r in rows]) for k in keys}}


# ---- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.webhook_load", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI smoke run: short phases, one rep, small sizes")
    p.add_argument("--seconds", type=float, help="duration of each load phase (default 15, quick 1)")
    p.add_argument("--threads", type=int, help="client threads per load phase (default 8, quick 4)")
    p.add_argument("--max-requests", type=int, default=100_000, help="cap on requests per load phase")
    p.add_argument(
        "--containers", type=int, help="watched containers on the loaded repository (default 3, quick 1)"
    )
    p.add_argument(
        "--debounce", default=None, help='the daemon\'s [webhook] debounce (default "500ms", as the agent)'
    )
    p.add_argument(
        "--latency-debounce",
        default=None,
        help='comma-separated debounce values for push-to-running (default "500ms,0s", quick: --debounce)',
    )
    p.add_argument(
        "--reps", type=int, help="push-to-running repetitions per debounce value (default 5, quick 1)"
    )
    p.add_argument(
        "--layer-mb", type=int, help="size of the new image layer each push adds (default 8, quick 0)"
    )
    p.add_argument("--json-out", help="also write the results as JSON to this file")
    p.add_argument(
        "--keep", action="store_true", help="keep the run directory (agent logs) for a post-mortem"
    )
    a = p.parse_args(argv)
    q = a.quick
    a.seconds = a.seconds if a.seconds is not None else (1.0 if q else 15.0)
    a.threads = a.threads or (4 if q else 8)
    a.containers = a.containers or (1 if q else 3)
    a.debounce = a.debounce or "500ms"
    a.latency_debounce = [
        d for d in (a.latency_debounce or (a.debounce if q else "500ms,0s")).split(",") if d
    ]
    a.reps = a.reps or (1 if q else 5)
    a.layer_mb = a.layer_mb if a.layer_mb is not None else (0 if q else 8)
    return a


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so the clean-up in main() runs


def main(argv: list[str] | None = None) -> int:
    from agent.durations import parse_duration

    a = parse_args(argv)
    results: dict[str, Any] = {"quick": a.quick}
    with World("webhook-load", keep=a.keep) as w:
        signal.signal(signal.SIGTERM, _interrupt)  # after the World's own: stop the agent first
        b = Bench(a, w)
        try:
            results["prefix"], results["machine"] = w.prefix, w.facts
            results["params"] = {k: getattr(a, k) for k in ("seconds", "threads", "max_requests", "containers",
                                                            "debounce", "latency_debounce", "reps", "layer_mb")}  # fmt: skip
            log(f"prefix {w.prefix}: images, {a.containers + 1} containers")
            w.push("web", "web-v1")
            w.push("lat", "lat-v1")
            names = [(w.run(f"web-{i}", "web"), "web") for i in range(a.containers)] + [
                (w.run("lat", "lat"), "lat")
            ]
            debounce = parse_duration(a.debounce)
            b.start_agent(b.config(a.debounce, names))
            log(f"agent pid {b.agent.pid if b.agent else '?'} on port {b.port}, debounce {a.debounce}")
            results["load"] = load_phases(b, debounce)
            results["push_to_running"] = {}
            for i, value in enumerate(a.latency_debounce):
                if i or value != a.debounce:
                    results.setdefault("exit_codes", []).append(b.stop_agent())
                    b.start_agent(b.config(value, names))
                log(f"push-to-running, debounce {value}, {a.reps} reps, new layer {a.layer_mb} MB")
                results["push_to_running"][value] = push_to_running(b, w.cname("lat"), a.reps, a.layer_mb)
            results["rss_kib_end"] = proc_status(b.agent.pid) if b.agent else None
            results.setdefault("exit_codes", []).append(b.stop_agent())
        finally:
            log("cleaning up")
            b.stop_agent()
    report(results)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=2) + "\n")
    ok = results["load"]["hooks"]["passes_within_bound"] and all(
        c == 0 for c in results.get("exit_codes", [])
    )
    ok = ok and results["load"]["healthz"]["errors"] == 0 and results["load"]["hooks"]["errors"] == 0
    return 0 if ok else 1


def report(r: dict[str, Any]) -> None:
    m, ld = r["machine"], r["load"]
    print(f"\nmachine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, kernel {m['kernel']}, "
          f"Docker {m['docker']}, Python {m['python']}, load avg at start {m['loadavg_at_start']}, "
          f"{m['running_containers_on_host']} containers running on the host")  # fmt: skip
    print("\n| endpoint | threads | requests | req/s | p50 ms | p99 ms | max ms | errors | 503 | passes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in ("healthz", "hooks"):
        s = ld[key]
        print(f"| `{s['endpoint']}` | {s['threads']} | {s['requests']} | {s['rps']} | {s['p50_ms']} | "
              f"{s['p99_ms']} | {s['max_ms']} | {s['errors']} | {s['busy_503']} | {s['passes']} |")  # fmt: skip
    hk = ld["hooks"]
    print(f"\nhooks: {hk['wakeups_logged']} wake-ups queued, {hk['passes']} passes, starting at "
          f"{hk['pass_starts_after_first_hook_s']} s after the first hook "
          f"(bound: at most {hk['passes_bound']}, one per debounce window; within: {hk['passes_within_bound']})")  # fmt: skip
    kb = [ld["rss_kib_before"], ld["rss_kib_after_healthz"], ld["rss_kib_after_hooks"]]
    print("agent VmRSS KiB before / after healthz / after hooks: " + " / ".join(str(x["VmRSS"]) for x in kb)
          + f"; VmHWM {kb[-1]['VmHWM']}")  # fmt: skip
    print(
        "\n| debounce | reps | POST→running median (min–max) s | debounce wait | ACR API | pull (approx.) | replace→running |"
    )
    print("|---|---:|---|---:|---:|---:|---:|")
    for value, p in r["push_to_running"].items():
        t = p["post_to_running_s"]
        print(f"| {value} | {p['reps']} | {t['median']:.2f} ({t['min']:.2f}–{t['max']:.2f}) | "
              f"{p['debounce_wait_s']['median']:.2f} | {p['api_s']['median']:.3f} | {p['pull_s']['median']:.2f} | "
              f"{p['replace_to_running_s']['median']:.2f} |")  # fmt: skip
    print(f"\nagent exit codes: {r.get('exit_codes')}")


if __name__ == "__main__":
    sys.exit(main())
