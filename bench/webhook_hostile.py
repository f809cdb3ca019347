"""The webhook server under hostile clients, with no Docker: import time, idle RSS, throughput,
64 slow connections, and the memory attack of issue 9 item 6.

The server runs in a subprocess (`serve` below) with a no-op waker, so its RSS is its own. Point
`--tree` at another checkout (e.g. `git archive main | tar -x -C /tmp/main`) to measure that code.

    python -m bench.webhook_hostile                     # this checkout
    python -m bench.webhook_hostile --tree /tmp/main    # another checkout's agent/
    python -m bench.webhook_hostile --json-out out.json
    python -m bench.webhook_hostile --phases throughput --seconds 2   # one phase only

Phases:
1. import: `python -X importtime`, the cumulative µs of agent.webhook, and of http.server and h11
   each alone (median of 5);
2. throughput: `GET /healthz` from one client thread, then `POST /hooks/aliyun/<token>` from four,
   3 s each (one request per connection, as the server closes each);
3. slow: 64 connections send half a request head and stall; then a fresh `GET /healthz`: its status;
4. attack: 64 connections each send `GET /healthz` with 99 header lines of 65 KB; the server's
   VmRSS is sampled every 20 ms; reported: idle, peak, 2 s after, and the statuses the attackers got;
5. guess: four threads POST hooks with wrong tokens from 127.0.0.1 for `--seconds`; reported: the
   statuses, and how many guesses were really checked (404) per second; then 20 hooks with the right
   token from 127.0.0.2 (another client address): their statuses.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef"
PAYLOAD = json.dumps(
    {"repository": {"namespace": "shop", "name": "web"}, "push_data": {"tag": "latest"}}
).encode()

_SERVE = """
import sys, threading
from agent.metrics import Metrics
from agent.secret import Secret
from agent.webhook import WatchTarget, WebhookServer
class Waker:
    def wake(self, containers, reason): pass
server = WebhookServer("127.0.0.1:0", token=Secret(sys.argv[1]), targets=[WatchTarget("web", "shop", "web", "latest")],
                       waker=Waker(), health=lambda: {"watching": 1}, metrics=Metrics())
server.start()
import agent.webhook
print(server.address[1], agent.webhook.__file__, flush=True)
sys.stdin.read()
server.stop()
"""


def log(msg: str) -> None:
    print(f"[webhook-hostile {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) / 1024 if m else 0.0


def import_us(env: dict[str, str]) -> dict[str, float]:
    """Median cumulative import µs (of 5 runs, each a fresh interpreter) of the whole webhook package,
    and of each framing alone: the stdlib's http.server (the old one) and h11 (the new one)."""
    runs: dict[str, list[float]] = {}
    for module in ("agent.webhook", "http.server", "h11"):
        for _ in range(5):
            out = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", f"import {module}"],
                env=env, cwd=env["PYTHONPATH"], capture_output=True, text=True, check=True,
            ).stderr  # fmt: skip
            line = next(x for x in out.splitlines() if x.split("|")[-1].strip() == module)
            runs.setdefault(module, []).append(float(line.split("|")[1]))
    return {name: statistics.median(values) for name, values in runs.items()}


def request(port: int, method: str, path: str, body: bytes | None = None, source: str | None = None) -> int:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0) if source else None
    )
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def throughput(port: int, method: str, path: str, body: bytes | None, threads: int, seconds: float) -> dict:
    counts: Counter[int] = Counter()
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < end:
            try:
                status = request(port, method, path, body)
            except OSError:
                status = 0
            with lock:
                counts[status] += 1

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = sum(counts.values())
    return {"requests_per_s": round(total / seconds, 1), "statuses": dict(counts)}


def slow_connections(port: int, n: int = 64) -> dict:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    time.sleep(0.5)  # let the server take them all in
    t0 = time.monotonic()
    try:
        status = request(port, "GET", "/healthz")
    except OSError as e:
        status = repr(e)  # type: ignore[assignment]
    took = time.monotonic() - t0
    for s in socks:
        s.close()
    return {"healthz_status": status, "healthz_seconds": round(took, 3)}


def attack(port: int, pid: int, conns: int = 64, lines: int = 99, size: int = 65_000) -> dict:
    line = b"X-Pad-%d: " + b"a" * size + b"\r\n"
    statuses: Counter[str] = Counter()
    lock = threading.Lock()

    def one() -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\n")
                for i in range(lines):
                    s.sendall(line % i)
                s.sendall(b"\r\n")
                data = s.recv(4096)
                got = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
        except OSError as e:
            got = type(e).__name__
        with lock:
            statuses[got] += 1

    idle = rss_mb(pid)
    peak = idle
    workers = [threading.Thread(target=one) for _ in range(conns)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        peak = max(peak, rss_mb(pid))
        time.sleep(0.02)
    time.sleep(2.0)
    return {
        "idle_rss_mb": round(idle, 1),
        "peak_rss_mb": round(peak, 1),
        "after_rss_mb": round(rss_mb(pid), 1),
        "hwm_mb": round(rss_mb(pid, "VmHWM"), 1),
        "statuses": dict(statuses),
    }


def guessing(port: int, seconds: float) -> dict:
    """Wrong tokens as fast as four threads go, then the right one from another loopback address."""
    wrong = throughput(port, "POST", "/hooks/aliyun/guess-0123456789abcdef0123456789", PAYLOAD, 4, seconds)
    checked = wrong["statuses"].get(404, 0)
    other: Counter[int] = Counter(
        request(port, "POST", f"/hooks/aliyun/{TOKEN}", PAYLOAD, source="127.0.0.2") for _ in range(20)
    )
    return {**wrong, "guesses_checked": checked, "guesses_checked_per_s": round(checked / seconds, 1),
            "right_token_from_127.0.0.2": dict(other)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose agent/ is measured")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each throughput phase")
    ap.add_argument("--phases", default="import,throughput,slow,attack,guess", help="which phases to run")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    phases = set(args.phases.split(","))
    # The working directory comes first on sys.path (before an editable install's finder), PYTHONPATH too.
    env = {**os.environ, "PYTHONPATH": str(args.tree.resolve())}
    results: dict[str, Any] = {"tree": str(args.tree)}
    if "import" in phases:
        log("import time")
        results["import_us"] = import_us(env)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, TOKEN],
        env=env,
        cwd=args.tree,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port_text, results["module"] = proc.stdout.readline().split(maxsplit=1)
        port = int(port_text)
        results["module"] = results["module"].strip()
        time.sleep(0.5)
        results["idle_rss_mb"] = round(rss_mb(proc.pid), 1)
        if "throughput" in phases:
            log("throughput")
            results["healthz"] = throughput(port, "GET", "/healthz", None, 1, args.seconds)
            results["hooks"] = throughput(port, "POST", f"/hooks/aliyun/{TOKEN}", PAYLOAD, 4, args.seconds)
        if "slow" in phases:
            log("64 slow connections")
            results["slow"] = slow_connections(port)
            time.sleep(1.0)
        if "attack" in phases:
            log("memory attack")
            results["attack"] = attack(port, proc.pid)
        if "guess" in phases:
            log("guessing the token")
            results["guess"] = guessing(port, args.seconds)
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
